// Proves the metrics registry: every family is in the scrape text, with the values the engine and
// the datapath's counters hold at scrape time.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Counters } from '../../src/datapath/index.js';
import { MemoryDatapath } from '../../src/datapath/index.js';
import { createRegistry } from '../../src/metrics/registry.js';
import { FlowAgeing } from '../../src/steering/ageing.js';
import { BOSS, boss, IFINDEX, MINION, minion, report, startedEngine, tempStateDir, VOICE } from '../steering/fixtures.js';

/** The in-memory datapath with BPF counters a test sets (packets never pass through it). */
class CountingDatapath extends MemoryDatapath {
  packets: Partial<Counters> = {};
  counterReads = 0;
  override counters(): Counters {
    this.counterReads++;
    const base = super.counters();
    return { links: this.packets.links ?? base.links, policies: this.packets.policies ?? base.policies, reasons: { ...base.reasons, ...this.packets.reasons } };
  }
}

let state: ReturnType<typeof tempStateDir>;
beforeEach(() => {
  state = tempStateDir();
});
afterEach(() => state.remove());

/** `name{labels} value` lines of the scrape, as a map. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe('createRegistry', () => {
  it('exports every family with the values after some activity', async () => {
    // Proves names, labels and values of each family, read at scrape time.
    const dp = new CountingDatapath(4096, IFINDEX);
    const engine = startedEngine(dp, state.dir, { policies: [BOSS, MINION, VOICE] });
    const ageing = new FlowAgeing({ datapath: dp, idleSeconds: 300 });
    const registry = createRegistry({ engine, datapath: dp, ageing });
    engine.reportSessions([boss(1), boss(2), minion(3), boss(4, '10.0.0.9'), report('10.0.0.5:5', '1.2.3.4:80', {}, 'nope'), report('x', 'y')], '10.0.0.5');
    engine.setLinkHealth('lte', { up: false });
    const ids = engine.policyNames();
    const idOf = (name: string) => [...ids].find(([, n]) => n === name)![0];
    dp.packets = {
      links: new Map([[0, { packets: 10n, bytes: 1500n }]]),
      policies: new Map([[idOf('boss-to-fibre'), { packets: 7n, bytes: 700n }]]),
      reasons: { redirected: { packets: 10n, bytes: 1500n }, link_down: { packets: 3n, bytes: 300n } } as Counters['reasons'],
    };
    const text = await registry.metrics();
    const s = samples(text);
    expect(s.get('wansteer_link_packets_total{link="fibre"}')).toBe(10);
    expect(s.get('wansteer_link_bytes_total{link="fibre"}')).toBe(1500);
    expect(s.get('wansteer_link_packets_total{link="lte"}')).toBe(0);
    expect(s.get('wansteer_link_up{link="fibre"}')).toBe(1);
    expect(s.get('wansteer_link_up{link="lte"}')).toBe(0);
    expect(s.get('wansteer_link_active{link="fibre",policy="minion-to-lte"}')).toBe(1);
    expect(s.get('wansteer_link_active{link="lte",policy="minion-to-lte"}')).toBe(0);
    expect(s.get('wansteer_policy_packets_total{policy="boss-to-fibre"}')).toBe(7);
    expect(s.get('wansteer_policy_bytes_total{policy="minion-to-lte"}')).toBe(0);
    expect(s.get('wansteer_policy_sessions_total{policy="boss-to-fibre"}')).toBe(2);
    expect(s.get('wansteer_policy_sessions_total{policy="minion-to-lte"}')).toBe(1);
    expect(s.get('wansteer_policy_flows{policy="boss-to-fibre"}')).toBe(2);
    expect(s.get('wansteer_policy_flows{policy="voice-ef"}')).toBe(0);
    expect(s.get('wansteer_sessions_total{outcome="steered",reason=""}')).toBe(3);
    expect(s.get('wansteer_sessions_total{outcome="unmatched",reason="no-virtual-service"}')).toBe(1);
    expect(s.get('wansteer_sessions_total{outcome="rejected",reason="spoofed-local"}')).toBe(1);
    expect(s.get('wansteer_sessions_total{outcome="rejected",reason="bad-address"}')).toBe(1);
    expect(s.get('wansteer_sessions_total{outcome="rejected",reason="rate-limited"}')).toBe(0);
    expect(s.get('wansteer_report_to_datapath_seconds_count')).toBe(3);
    expect(s.get('wansteer_report_to_datapath_seconds_bucket{le="+Inf"}')).toBe(3);
    expect(s.get('wansteer_report_to_datapath_seconds_bucket{le="1"}')).toBe(3);
    expect(s.get('wansteer_report_to_datapath_seconds_sum')).toBeGreaterThan(0);
    expect(s.get('wansteer_flow_table_entries')).toBe(3);
    expect(s.get('wansteer_flow_table_capacity')).toBe(4096);
    expect(s.get('wansteer_flow_table_evictions_total{family="ipv4"}')).toBe(0);
    expect(s.get('wansteer_flow_table_evictions_total{family="ipv6"}')).toBe(0);
    expect(s.get('wansteer_datapath_write_errors_total{table="flows"}')).toBe(0);
    expect(s.get('wansteer_datapath_packets_total{reason="link_down"}')).toBe(3);
    expect(s.get('wansteer_datapath_bytes_total{reason="redirected"}')).toBe(1500);
    expect(s.get('wansteer_datapath_packets_total{reason="no_match"}')).toBe(0);
    expect(s.get('wansteer_flows_aged_total')).toBe(0);
    expect(text).toContain('# TYPE wansteer_report_to_datapath_seconds histogram');
    expect(text).toContain('# TYPE wansteer_link_packets_total counter');
    expect(dp.counterReads).toBe(1); // three families, one read of the BPF counters
  });

  it('counts the flows a full table evicted, per family', async () => {
    // Proves wansteer_flow_table_evictions_total follows the datapath's eviction count per family.
    const dp = new CountingDatapath(2, IFINDEX);
    const registry = createRegistry({ engine: startedEngine(dp, state.dir), datapath: dp });
    const flow = (sport: number, [src, dst] = ['10.0.0.5', '1.2.3.4']) => ({ key: { protocol: 'tcp' as const, src, sport, dst, dport: 443 }, policyId: 1 });
    dp.upsertFlows([flow(1), flow(2), flow(3), flow(4, ['fd00::5', 'fd00::1']), flow(5)]);
    const s = samples(await registry.metrics());
    expect(s.get('wansteer_flow_table_evictions_total{family="ipv4"}')).toBe(3);
    expect(s.get('wansteer_flow_table_evictions_total{family="ipv6"}')).toBe(0);
  });

  it('counts the connections reset when an internet link died, per link', async () => {
    // Proves wansteer_connection_resets_total reads the engine's count at scrape time.
    const dp = new CountingDatapath(4096, IFINDEX);
    const engine = startedEngine(dp, state.dir);
    const registry = createRegistry({ engine, datapath: dp });
    expect(samples(await registry.metrics()).get('wansteer_connection_resets_total{link="lte"}')).toBeUndefined();
    engine.connectionResets.set('lte', 12);
    expect(samples(await registry.metrics()).get('wansteer_connection_resets_total{link="lte"}')).toBe(12);
  });

  it('exports the link monitor\'s figures in seconds and ratios, with no series for a figure not measured', async () => {
    // Proves wansteer_link_rtt_seconds, _loss_ratio and _jitter_seconds: units, labels, absence.
    const dp = new CountingDatapath(4096, IFINDEX);
    const engine = startedEngine(dp, state.dir);
    const registry = createRegistry({ engine, datapath: dp });
    expect([...samples(await registry.metrics()).keys()].filter((k) => /^wansteer_link_(rtt|loss|jitter)/.test(k))).toEqual([]);
    engine.setLinkHealth('fibre', { up: true, rttMs: 12.5, lossPercent: 2, jitterMs: 1.5 });
    engine.setLinkHealth('lte', { up: false, rttMs: 80 });
    const text = await registry.metrics();
    const s = samples(text);
    expect(s.get('wansteer_link_rtt_seconds{link="fibre"}')).toBe(0.0125);
    expect(s.get('wansteer_link_rtt_seconds{link="lte"}')).toBe(0.08);
    expect(s.get('wansteer_link_loss_ratio{link="fibre"}')).toBe(0.02);
    expect(s.get('wansteer_link_jitter_seconds{link="fibre"}')).toBe(0.0015);
    expect(s.has('wansteer_link_loss_ratio{link="lte"}')).toBe(false);
    expect(s.has('wansteer_link_jitter_seconds{link="lte"}')).toBe(false);
    expect(text).toContain('# TYPE wansteer_link_rtt_seconds gauge');
    expect(text).toContain('# HELP wansteer_link_loss_ratio Share of probes lost over the probe window (0..1).');
  });

  it('bounds the per-policy flow walk: at most once per interval, never above the size limit', async () => {
    // Proves the cost bound of wansteer_policy_flows.
    const dp = new CountingDatapath(4096, IFINDEX);
    const engine = startedEngine(dp, state.dir, { policies: [BOSS] });
    let now = 0;
    let walks = 0;
    const countFlowsByPolicy = dp.countFlowsByPolicy.bind(dp);
    dp.countFlowsByPolicy = () => {
      walks++;
      return countFlowsByPolicy();
    };
    const registry = createRegistry({ engine, datapath: dp, now: () => now, policyFlows: { intervalMs: 60_000, maxEntries: 2 } });
    engine.reportSessions([boss(1)], '10.0.0.5');
    expect(samples(await registry.metrics()).get('wansteer_policy_flows{policy="boss-to-fibre"}')).toBe(1);
    engine.reportSessions([boss(2)], '10.0.0.5');
    now += 30_000;
    expect(samples(await registry.metrics()).get('wansteer_policy_flows{policy="boss-to-fibre"}')).toBe(1); // last count, reused
    expect(walks).toBe(1);
    engine.reportSessions([boss(3)], '10.0.0.5');
    now += 31_000;
    const s = samples(await registry.metrics());
    expect(s.has('wansteer_policy_flows{policy="boss-to-fibre"}')).toBe(false); // 3 > maxEntries: not walked
    expect(walks).toBe(1);
    expect(s.get('wansteer_flow_table_entries')).toBe(3);
  });

  it('starts fresh per registry (no global state)', async () => {
    // Proves each call gets its own Registry, so two engines (or tests) never share series.
    const dp = new CountingDatapath(4096, IFINDEX);
    const engine = startedEngine(dp, state.dir);
    const a = createRegistry({ engine, datapath: dp });
    const b = createRegistry({ engine, datapath: dp });
    expect(a).not.toBe(b);
    expect(await a.metrics()).toContain('wansteer_flow_table_capacity 4096');
    expect(await b.metrics()).toContain('wansteer_flow_table_capacity 4096');
  });
});
