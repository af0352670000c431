/** wansteer_flows_aged_total and wansteer_flow_ageing_errors_total: what flow ageing removed, and failed runs. */
import { Counter, type Registry } from 'prom-client';
import type { FlowAgeing } from '../steering/ageing.js';

export function registerFlowsAged(registry: Registry, ageing: Pick<FlowAgeing, 'aged' | 'errors'>): void {
  new Counter({
    name: 'wansteer_flows_aged_total',
    help: 'Flow entries removed for being idle longer than datapath.flowIdleSeconds.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(ageing.aged);
    },
  });
  new Counter({
    name: 'wansteer_flow_ageing_errors_total',
    help: 'Flow ageing runs that failed.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(ageing.errors);
    },
  });
}
