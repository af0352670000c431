/**
 * The link monitor's measurements as the engine holds them, per link, over the probe window:
 * wansteer_link_rtt_seconds, wansteer_link_loss_ratio, wansteer_link_jitter_seconds.
 * A link without a probe (or before its first sample) has no series.
 */
import { Gauge, type Registry } from 'prom-client';
import type { SteeringEngine } from '../steering/types.js';

export function registerLinkHealth(registry: Registry, engine: Pick<SteeringEngine, 'links'>): void {
  const gauge = (name: string, help: string, read: (l: ReturnType<SteeringEngine['links']>[number]) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['link'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const l of engine.links()) {
          const v = read(l);
          if (v !== undefined) this.set({ link: l.name }, v);
        }
      },
    });
  gauge('wansteer_link_rtt_seconds', 'Mean probe round-trip time over the probe window.', (l) => (l.rttMs === undefined ? undefined : l.rttMs / 1000));
  gauge('wansteer_link_loss_ratio', 'Share of probes lost over the probe window (0..1).', (l) => (l.lossPercent === undefined ? undefined : l.lossPercent / 100));
  gauge('wansteer_link_jitter_seconds', 'Mean difference of consecutive probe RTTs over the probe window.', (l) => (l.jitterMs === undefined ? undefined : l.jitterMs / 1000));
}
