/**
 * wansteer_datapath_packets_total{reason}, wansteer_datapath_bytes_total{reason}: every packet
 * the program saw, by what it did (redirected, marked, on_link) or why it passed untouched
 * (no_match, link_down, not_ip, …). dscp_rewritten is counted in addition to the outcome.
 */
import { Counter, type Registry } from 'prom-client';
import { Reasons } from '../datapath/index.js';
import type { ScrapeCache } from './scrape-cache.js';

export function registerPassReasons(registry: Registry, scrape: ScrapeCache): void {
  const series = (name: string, help: string, field: 'packets' | 'bytes') =>
    new Counter({
      name,
      help,
      labelNames: ['reason'] as const,
      registers: [registry],
      collect() {
        this.reset();
        const reasons = scrape.counters().reasons;
        for (const reason of Reasons) this.inc({ reason }, Number(reasons[reason]?.[field] ?? 0n));
      },
    });
  series('wansteer_datapath_packets_total', 'Packets the steering program handled, by outcome or pass reason.', 'packets');
  series('wansteer_datapath_bytes_total', 'Bytes the steering program handled, by outcome or pass reason.', 'bytes');
}
