/**
 * wansteer_link_packets_total{link}, wansteer_link_bytes_total{link}: what the datapath sent
 * out of each link (redirected to it, or steered flows already on it), from the per-CPU BPF
 * counters summed at scrape time. Every configured link is exported, with 0 until it carries.
 */
import type { Registry } from 'prom-client';
import type { SteeringStats } from '../steering/stats.js';
import { linkCounter, type LinkValues } from './per-link.js';
import type { ScrapeCache } from './scrape-cache.js';

export function registerLinkTraffic(registry: Registry, engine: Pick<SteeringStats, 'linkNames'>, scrape: ScrapeCache): void {
  const sent = (field: 'packets' | 'bytes'): LinkValues => () => {
    const links = scrape.counters().links;
    return [...engine.linkNames()].map(([id, link]) => [link, Number(links.get(id)?.[field] ?? 0n)] as const);
  };
  linkCounter(registry, 'wansteer_link_packets_total', 'Packets the datapath steered out of each WAN link.', sent('packets'));
  linkCounter(registry, 'wansteer_link_bytes_total', 'Bytes the datapath steered out of each WAN link.', sent('bytes'));
}
