/**
 * wansteer_policies_refused{reason}: the WanPolicies in the cluster this node leaves out now, by
 * the WS_POLICY_* code of why (an invalid spec, a duplicate match, …). Each is also logged, shown
 * by `wansteer status` and recorded as a Kubernetes Event on the object.
 */
import { Gauge, type Registry } from 'prom-client';
import type { SourceStates } from '../steering/source-states.js';

export function registerRefusedPolicies(registry: Registry, sources: Pick<SourceStates, 'refused'>): void {
  new Gauge({
    name: 'wansteer_policies_refused',
    help: 'WanPolicies left out on this node now, by reason (the WS_POLICY_* code).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      const byReason = new Map<string, number>();
      for (const r of sources.refused()) byReason.set(r.code, (byReason.get(r.code) ?? 0) + 1);
      for (const [reason, n] of byReason) this.set({ reason }, n);
    },
  });
}
