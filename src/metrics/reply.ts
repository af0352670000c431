/**
 * The metrics of an agent in reply-by-arrival mode (the cloud end of overlay links), in a
 * registry of their own, computed at scrape time from the reply datapath's per-CPU counters
 * (read once per scrape):
 *
 *   wansteer_reply_link_up{link}
 *   wansteer_reply_arrived_packets_total{link}, wansteer_reply_arrived_bytes_total{link}
 *   wansteer_reply_sent_packets_total{link}, wansteer_reply_sent_bytes_total{link}
 *   wansteer_reply_datapath_packets_total{reason}   (redirected, on_link, no_match, link_down, …)
 *   wansteer_reply_arrivals                         (learned flows in the tables)
 *   wansteer_flows_aged_total, wansteer_flow_ageing_errors_total
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { Reasons, type ReplyCounters, type ReplyDatapathPort } from '../datapath/index.js';
import type { FlowAgeing } from '../steering/ageing.js';
import type { ReplyEnd } from '../steering/reply-end.js';
import { registerFlowsAged } from './flows-aged.js';
import { linkCounter, linkGauge } from './per-link.js';

export interface ReplyMetricsSources {
  end: Pick<ReplyEnd, 'linkNames' | 'status'>;
  datapath: Pick<ReplyDatapathPort, 'counters' | 'countArrivals'>;
  ageing?: Pick<FlowAgeing, 'aged' | 'errors'>;
  now?: () => number;
}

export function createReplyRegistry(sources: ReplyMetricsSources): Registry {
  const registry = new Registry();
  const { end, datapath } = sources;
  const now = sources.now ?? Date.now;
  let at = -Infinity;
  let cached: ReplyCounters | undefined;
  const counters = (): ReplyCounters => {
    if (!cached || now() - at >= 1000) {
      cached = datapath.counters();
      at = now();
    }
    return cached;
  };
  const perLink = (which: 'arrived' | 'replied', field: 'packets' | 'bytes') => () =>
    [...end.linkNames()].map(([id, link]) => [link, Number(counters()[which].get(id)?.[field] ?? 0n)] as const);

  linkGauge(registry, 'wansteer_reply_link_up', 'Whether replies are sent back by this link (1) or take the routed path (0).', () =>
    end.status().map((s) => [s.name, s.up ? 1 : 0] as const),
  );
  linkCounter(registry, 'wansteer_reply_arrived_packets_total', 'Packets that arrived by each link (their flows\' replies go back by it).', perLink('arrived', 'packets'));
  linkCounter(registry, 'wansteer_reply_arrived_bytes_total', 'Bytes that arrived by each link.', perLink('arrived', 'bytes'));
  linkCounter(registry, 'wansteer_reply_sent_packets_total', 'Replies that left by the link their flow arrived on.', perLink('replied', 'packets'));
  linkCounter(registry, 'wansteer_reply_sent_bytes_total', 'Bytes of replies that left by the link their flow arrived on.', perLink('replied', 'bytes'));
  new Counter({
    name: 'wansteer_reply_datapath_packets_total',
    help: 'Packets the reply program handled at egress, by outcome or pass reason.',
    labelNames: ['reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const reasons = counters().reasons;
      for (const reason of Reasons) this.inc({ reason }, Number(reasons[reason]?.packets ?? 0n));
    },
  });
  new Gauge({
    name: 'wansteer_reply_arrivals',
    help: 'Flows whose arrival link is known (both families).',
    registers: [registry],
    collect() {
      this.set(datapath.countArrivals());
    },
  });
  if (sources.ageing) registerFlowsAged(registry, sources.ageing);
  return registry;
}
