/** wansteer_datapath_write_errors_total{table}: datapath writes that failed, by table. */
import { Counter, type Registry } from 'prom-client';
import type { SteeringStats } from '../steering/stats.js';

export function registerWriteErrors(registry: Registry, engine: Pick<SteeringStats, 'writeErrors'>): void {
  new Counter({
    name: 'wansteer_datapath_write_errors_total',
    help: 'Datapath writes that failed, by table (flows, policies, links, dscp; classes: the class rules of internet links; neighbours: releasing a link traffic moved off).',
    labelNames: ['table'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [table, n] of Object.entries(engine.writeErrors)) this.inc({ table }, n);
    },
  });
}
