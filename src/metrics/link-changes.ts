/**
 * wansteer_link_changes_total{policy,kind}: times a policy's traffic moved to another link —
 * kind="failover" (to a later link of its preference, or to its original path when none is
 * usable) or kind="failback" (to an earlier one).
 */
import { Counter, type Registry } from 'prom-client';
import type { LinkChangeKind } from '../steering/engine.js';

export interface LinkChangeSource {
  linkChanges(): { policy: string; kind: LinkChangeKind; count: number }[];
}

export function registerLinkChanges(registry: Registry, engine: LinkChangeSource): void {
  new Counter({
    name: 'wansteer_link_changes_total',
    help: 'Policy moves between links: failover (to a later link of its preference or its original path), failback (to an earlier one).',
    labelNames: ['policy', 'kind'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const c of engine.linkChanges()) this.inc({ policy: c.policy, kind: c.kind }, c.count);
    },
  });
}
