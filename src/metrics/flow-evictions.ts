/**
 * wansteer_flow_table_evictions_total{family}: flows the LRU evicted from a full flow table while
 * they were still active (not idle long enough for ageing), so their sessions lost their steering.
 * Counted from the walks of the table (src/datapath/flow-census.ts): an upper bound, exact unless
 * duplicate reports were written while the table was full.
 */
import { Counter, type Registry } from 'prom-client';
import type { DatapathPort } from '../datapath/index.js';
import type { ScrapeCache } from './scrape-cache.js';

export function registerFlowEvictions(registry: Registry, datapath: Pick<DatapathPort, 'flowTables'>, scrape: ScrapeCache): void {
  new Counter({
    name: 'wansteer_flow_table_evictions_total',
    help: 'Flows the LRU evicted from a full flow table before they were idle: steering lost. Raise datapath.flowTableSize when it grows.',
    labelNames: ['family'] as const,
    registers: [registry],
    collect() {
      scrape.flowCount(); // the scrape's one walk of the tables, which also counts evictions
      this.reset();
      for (const t of datapath.flowTables(Infinity)) this.inc({ family: `ipv${t.family}` }, t.evicted);
    },
  });
}
