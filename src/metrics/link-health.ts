/**
 * The link monitor's measurements as the engine holds them, per link, over the probe window:
 * wansteer_link_rtt_seconds, wansteer_link_loss_ratio, wansteer_link_jitter_seconds.
 * A link without a probe (or before its first sample) has no series.
 */
import type { Registry } from 'prom-client';
import type { SteeringEngine } from '../steering/types.js';
import { linkGauge, type LinkValues } from './per-link.js';

export function registerLinkHealth(registry: Registry, engine: Pick<SteeringEngine, 'links'>): void {
  /** The engine's figure in the unit Prometheus wants (ms → s, percent → ratio). */
  const scaled = (field: 'rttMs' | 'lossPercent' | 'jitterMs', divisor: number): LinkValues => () =>
    engine.links().map((l) => [l.name, l[field] === undefined ? undefined : l[field] / divisor] as const);
  linkGauge(registry, 'wansteer_link_rtt_seconds', 'Mean probe round-trip time over the probe window.', scaled('rttMs', 1000));
  linkGauge(registry, 'wansteer_link_loss_ratio', 'Share of probes lost over the probe window (0..1).', scaled('lossPercent', 100));
  linkGauge(registry, 'wansteer_link_jitter_seconds', 'Mean difference of consecutive probe RTTs over the probe window.', scaled('jitterMs', 1000));
}
