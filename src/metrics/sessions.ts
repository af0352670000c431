/**
 * wansteer_sessions_total{outcome,reason}: every session report the engine answered, by
 * outcome (steered, unmatched, rejected) and, for the last two, the reason. Their sum is the
 * reports received; steered is the reports accepted. Every reason is exported from the start.
 */
import { Counter, type Registry } from 'prom-client';
import type { SteeringStats } from '../steering/stats.js';
import { RejectReasons, UnmatchedReasons } from '../steering/types.js';

export function registerSessions(registry: Registry, engine: Pick<SteeringStats, 'sessions'>): void {
  new Counter({
    name: 'wansteer_sessions_total',
    help: 'Session reports by outcome (steered, unmatched, rejected) and reason.',
    labelNames: ['outcome', 'reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const s = engine.sessions;
      this.inc({ outcome: 'steered', reason: '' }, s.steered);
      UnmatchedReasons.forEach((reason, i) => this.inc({ outcome: 'unmatched', reason }, s.unmatched[i]!));
      RejectReasons.forEach((reason, i) => this.inc({ outcome: 'rejected', reason }, s.rejected[i]!));
    },
  });
}
