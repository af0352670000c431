/** wansteer_policy_sessions_total{policy}: session reports steered by each policy (its hits). */
import { Counter, type Registry } from 'prom-client';
import type { SteeringStats } from '../steering/stats.js';

export function registerPolicySessions(registry: Registry, engine: Pick<SteeringStats, 'policyCounts'>): void {
  new Counter({
    name: 'wansteer_policy_sessions_total',
    help: 'Session reports steered by each policy (flow entries written for it).',
    labelNames: ['policy'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [policy, c] of engine.policyCounts()) this.inc({ policy }, c.hits);
    },
  });
}
