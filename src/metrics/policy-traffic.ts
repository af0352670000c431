/**
 * wansteer_policy_packets_total{policy}, wansteer_policy_bytes_total{policy}: packets of each
 * policy's sessions the datapath handled (steered, marked, or passed because its link is down),
 * from the per-CPU BPF counters at scrape time.
 */
import { Counter, type Registry } from 'prom-client';
import type { SteeringStats } from '../steering/stats.js';
import type { ScrapeCache } from './scrape-cache.js';

export function registerPolicyTraffic(registry: Registry, engine: Pick<SteeringStats, 'policyNames'>, scrape: ScrapeCache): void {
  const series = (name: string, help: string, field: 'packets' | 'bytes') =>
    new Counter({
      name,
      help,
      labelNames: ['policy'] as const,
      registers: [registry],
      collect() {
        this.reset();
        const policies = scrape.counters().policies;
        for (const [id, policy] of engine.policyNames()) this.inc({ policy }, Number(policies.get(id)?.[field] ?? 0n));
      },
    });
  series('wansteer_policy_packets_total', 'Packets of each policy\'s sessions seen by the datapath.', 'packets');
  series('wansteer_policy_bytes_total', 'Bytes of each policy\'s sessions seen by the datapath.', 'bytes');
}
