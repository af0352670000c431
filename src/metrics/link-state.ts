/**
 * wansteer_link_up{link}: 1 when the link can carry traffic (interface found, health up).
 * wansteer_link_active{link,policy}: 1 when the link carries the policy's traffic now, 0 for the
 * other links of the policy's preference — a failover shows as the 1 moving.
 */
import { Gauge, type Registry } from 'prom-client';
import type { PolicyStatus } from '../steering/engine.js';
import type { SteeringEngine } from '../steering/types.js';
import { linkGauge } from './per-link.js';

export function registerLinkState(
  registry: Registry,
  engine: Pick<SteeringEngine, 'links'> & { policyStatus(): PolicyStatus[] },
): void {
  linkGauge(registry, 'wansteer_link_up', 'Whether the WAN link can carry traffic (1) or not (0).', () => engine.links().map((l) => [l.name, l.up ? 1 : 0] as const));
  new Gauge({
    name: 'wansteer_link_active',
    help: 'Whether the link carries the policy\'s traffic now (1), or is a standby in its preference (0).',
    labelNames: ['link', 'policy'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of engine.policyStatus()) {
        for (const link of p.links) this.set({ link, policy: p.name }, link === p.link ? 1 : 0);
      }
    },
  });
}
