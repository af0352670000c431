/**
 * wansteer_flow_table_entries and wansteer_flow_table_capacity: how full the flow tables are.
 * Counting walks both tables in batched reads (no key decoding), at most once per scrape.
 */
import { Gauge, type Registry } from 'prom-client';
import type { DatapathPort } from '../datapath/index.js';
import type { ScrapeCache } from './scrape-cache.js';

export function registerFlowTable(registry: Registry, datapath: Pick<DatapathPort, 'flowTableSize'>, scrape: ScrapeCache): void {
  new Gauge({
    name: 'wansteer_flow_table_entries',
    help: 'Flow entries in the datapath (IPv4 and IPv6 tables together).',
    registers: [registry],
    collect() {
      this.set(scrape.flowCount());
    },
  });
  new Gauge({
    name: 'wansteer_flow_table_capacity',
    help: 'Flow entries each flow table holds before the least recently used are evicted.',
    registers: [registry],
    collect() {
      this.set(datapath.flowTableSize);
    },
  });
}
