/**
 * wansteer_link_packets_total{link}, wansteer_link_bytes_total{link}: what the datapath sent
 * out of each link (redirected to it, or steered flows already on it), from the per-CPU BPF
 * counters summed at scrape time. Every configured link is exported, with 0 until it carries.
 */
import { Counter, type Registry } from 'prom-client';
import type { SteeringStats } from '../steering/stats.js';
import type { ScrapeCache } from './scrape-cache.js';

export function registerLinkTraffic(registry: Registry, engine: Pick<SteeringStats, 'linkNames'>, scrape: ScrapeCache): void {
  const series = (name: string, help: string, field: 'packets' | 'bytes') =>
    new Counter({
      name,
      help,
      labelNames: ['link'] as const,
      registers: [registry],
      collect() {
        this.reset();
        const links = scrape.counters().links;
        for (const [id, link] of engine.linkNames()) this.inc({ link }, Number(links.get(id)?.[field] ?? 0n));
      },
    });
  series('wansteer_link_packets_total', 'Packets the datapath steered out of each WAN link.', 'packets');
  series('wansteer_link_bytes_total', 'Bytes the datapath steered out of each WAN link.', 'bytes');
}
