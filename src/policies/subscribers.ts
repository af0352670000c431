/** The listeners of a store: each gets the full list after every change; one that throws is logged and does not stop the rest. */
import { silentLogger, type Logger } from '../base/logger.js';
import type { WanPolicy } from './model.js';

export type PolicyListener = (policies: readonly WanPolicy[]) => void;

export class Subscribers {
  private readonly listeners = new Set<PolicyListener>();

  constructor(private readonly logger: Logger = silentLogger) {}

  add(listener: PolicyListener): () => void {
    // Wrapped, so the same function subscribed twice is two subscriptions with two unsubscribes.
    const entry: PolicyListener = (policies) => listener(policies);
    this.listeners.add(entry);
    return () => void this.listeners.delete(entry);
  }

  notify(policies: readonly WanPolicy[]): void {
    const frozen = Object.freeze([...policies]);
    for (const listener of this.listeners) {
      try {
        listener(frozen);
      } catch (err) {
        this.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'a policy listener threw; others still run');
      }
    }
  }
}
