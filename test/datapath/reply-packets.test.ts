/**
 * The reply-by-arrival programs (bpf/reply.bpf.c), packet by packet under BPF_PROG_TEST_RUN:
 * what the ingress program learns from a packet (the link it arrived on, keyed in the reply
 * direction), and what the egress program does with a reply (verdict, reason and per-link
 * counters, exact bytes). One ReplyDatapath (own pin dir) serves the whole file.
 *
 * A test run's skb sits on lo (ifindex 1): lo is link 2 here, so a packet "arrives" on link 2,
 * and a reply whose flow arrived on link 1 (a fake ifindex) is redirected there.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { monotonicNs, ReplyDatapath, Reasons, testRun, type Reason, type ReplyCounters } from '../../src/datapath/index.js';
import type { FlowKey, LinkEntry } from '../../src/datapath/codec.js';
import { eth, EtherType, ipv4, ipv6, prng, tcp, udp, untagged } from '../helpers/packet.js';
import { describePrivileged } from '../helpers/privilege.js';

const TC_ACT_OK = 0;
const TC_ACT_REDIRECT = 7;

const LINKS = {
  1: { ifindex: 1000, up: true, nextHop4: '10.10.2.1', nextHop6: 'fd10:2::1' },
  2: { ifindex: 1, up: true },
  3: { ifindex: 1001, up: false, nextHop4: '10.10.3.1' },
  // 4: never set (link_unset)
} satisfies Record<number, LinkEntry>;

interface Tuple {
  family: 4 | 6;
  protocol: 'tcp' | 'udp';
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

let nextPort = 30_000;
/** A reply's tuple (src = this end, the cloud service), a fresh port each time. */
function reply(family: 4 | 6, protocol: 'tcp' | 'udp' = 'tcp'): Tuple {
  const [src, dst] = family === 4 ? ['10.20.0.1', '10.10.1.1'] : ['fd20::1', 'fd10:1::1'];
  return { family, protocol, src, sport: 8000, dst, dport: nextPort++ };
}
const turned = (t: Tuple): Tuple => ({ ...t, src: t.dst, dst: t.src, sport: t.dport, dport: t.sport });
const key = (t: Tuple): FlowKey => ({ protocol: t.protocol, src: t.src, sport: t.sport, dst: t.dst, dport: t.dport });
function ip(t: Tuple): Buffer {
  const l4 = t.protocol === 'tcp' ? tcp(t.sport, t.dport) : udp(t.sport, t.dport);
  return t.family === 4 ? ipv4({ src: t.src, dst: t.dst, l4 }) : ipv6({ src: t.src, dst: t.dst, l4 });
}
const frame = (t: Tuple, tags: number[] = []) => eth(ip(t), t.family === 4 ? EtherType.ipv4 : EtherType.ipv6, tags);

type Deltas = { reasons: Partial<Record<Reason, number>>; arrived: Record<number, number>; replied: Record<number, number> };
function deltas(a: ReplyCounters, b: ReplyCounters): Deltas {
  const out: Deltas = { reasons: {}, arrived: {}, replied: {} };
  for (const r of Reasons) {
    const n = Number(b.reasons[r].packets - a.reasons[r].packets);
    if (n) out.reasons[r] = n;
  }
  for (const k of ['arrived', 'replied'] as const) {
    for (const [id, c] of b[k]) {
      const n = Number(c.packets - (a[k].get(id)?.packets ?? 0n));
      if (n) out[k][id] = n;
    }
  }
  return out;
}

interface EgressRow {
  description: string;
  packet: Buffer;
  prog?: 'eth' | 'l3';
  /** The flow's arrival link (keyed by the reply's own tuple), if any. */
  arrival?: [FlowKey, number];
  verdict: number;
  reasons: Partial<Record<Reason, number>>;
  replied?: Record<number, number>;
  out: (b: Buffer) => Buffer;
}

const same = (b: Buffer) => b;
const rows: EgressRow[] = [];
for (const family of [4, 6] as const) {
  for (const protocol of ['tcp', 'udp'] as const) {
    const name = `IPv${family} ${protocol.toUpperCase()}`;
    const a = reply(family, protocol);
    rows.push({ description: `${name} reply of a flow that arrived on link 1: redirected there`, packet: frame(a), arrival: [key(a), 1], verdict: TC_ACT_REDIRECT, reasons: { redirected: 1 }, out: same });
    const b = reply(family, protocol);
    rows.push({ description: `${name} reply already leaving by its arrival link (lo): on_link, counted as replied`, packet: frame(b), arrival: [key(b), 2], verdict: TC_ACT_OK, reasons: { on_link: 1 }, replied: { 2: 1 }, out: same });
    const c = reply(family, protocol);
    rows.push({ description: `${name} reply of a flow that never arrived: no_match, routed as ever`, packet: frame(c), verdict: TC_ACT_OK, reasons: { no_match: 1 }, out: same });
    const d = reply(family, protocol);
    rows.push({ description: `${name} packet in the arrival's own direction (keys are directional): no_match`, packet: frame(turned(d)), arrival: [key(d), 1], verdict: TC_ACT_OK, reasons: { no_match: 1 }, out: same });
  }
  rows.push({ description: `IPv${family} arrival link down: passes on its routed link`, packet: frame(reply(family)), verdict: TC_ACT_OK, reasons: { link_down: 1 }, out: same });
  rows.push({ description: `IPv${family} arrival link slot without interface: link_unset`, packet: frame(reply(family)), verdict: TC_ACT_OK, reasons: { link_unset: 1 }, out: same });
}
// the two rows above need their arrivals: link 3 (down) and link 4 (unset)
for (const r of rows) {
  if (r.reasons.link_down) r.arrival = [keyOfFrame(r.packet), 3];
  if (r.reasons.link_unset) r.arrival = [keyOfFrame(r.packet), 4];
}
{
  const q = reply(4);
  rows.push({ description: 'IPv4 802.1Q-tagged reply redirected: tag popped', packet: frame(q, [EtherType.vlan]), arrival: [key(q), 1], verdict: TC_ACT_REDIRECT, reasons: { redirected: 1 }, out: (b) => untagged(b) });
  const r = reply(6, 'udp');
  rows.push({ description: 'raw IP: IPv6 reply redirected: 14 bytes of L2 room pushed', prog: 'l3', packet: ip(r), arrival: [key(r), 1], verdict: TC_ACT_REDIRECT, reasons: { redirected: 1 }, out: (b) => Buffer.concat([Buffer.alloc(14), b]) });
  const s = reply(4, 'udp');
  rows.push({ description: 'raw IP: IPv4 reply on its link: on_link', prog: 'l3', packet: ip(s), arrival: [key(s), 2], verdict: TC_ACT_OK, reasons: { on_link: 1 }, replied: { 2: 1 }, out: same });
  const arp = Buffer.from('0001080006040001020000000001c0a80001000000000000c0a80002', 'hex');
  rows.push({ description: 'ARP: not_ip', packet: eth(arp, EtherType.arp), verdict: TC_ACT_OK, reasons: { not_ip: 1 }, out: same });
  const f = reply(4);
  rows.push({ description: 'IPv4 fragment of a flow with an arrival: fragment, untouched', packet: eth(ipv4({ src: f.src, dst: f.dst, l4: tcp(f.sport, f.dport), fragOff: 0x2000 }), EtherType.ipv4), arrival: [key(f), 1], verdict: TC_ACT_OK, reasons: { fragment: 1 }, out: same });
}

/** The 5-tuple of a reply frame this file built (addresses at their fixed offsets). */
function keyOfFrame(b: Buffer): FlowKey {
  const v6 = b.readUInt16BE(12) === EtherType.ipv6;
  const l3 = 14;
  const l4 = l3 + (v6 ? 40 : 20);
  const addr = (off: number) =>
    v6 ? Array.from({ length: 8 }, (_, i) => b.readUInt16BE(off + 2 * i).toString(16)).join(':') : [...b.subarray(off, off + 4)].join('.');
  return {
    protocol: b[l3 + (v6 ? 6 : 9)] === 6 ? 'tcp' : 'udp',
    src: addr(l3 + (v6 ? 8 : 12)),
    dst: addr(l3 + (v6 ? 24 : 16)),
    sport: b.readUInt16BE(l4),
    dport: b.readUInt16BE(l4 + 2),
  };
}

describePrivileged('datapath: reply-by-arrival, packet by packet (BPF_PROG_TEST_RUN)', () => {
  const pinDir = `/sys/fs/bpf/wst-reply-${process.pid}`;
  let dp: ReplyDatapath;
  const egress = (prog: 'eth' | 'l3' = 'eth') => (prog === 'eth' ? dp.programFds.replyEth : dp.programFds.replyL3);
  const ingress = (prog: 'eth' | 'l3' = 'eth') => (prog === 'eth' ? dp.programFds.arriveEth : dp.programFds.arriveL3);

  beforeAll(() => {
    dp = ReplyDatapath.open({ pinDir, arrivalTableSize: 4096 });
    for (const [id, l] of Object.entries(LINKS)) dp.setLink(Number(id), l);
  });

  afterAll(() => {
    try {
      dp?.destroy();
    } finally {
      rmSync(pinDir, { recursive: true, force: true });
    }
  });

  describe('egress: a reply leaves by the link its flow arrived on', () => {
    for (const r of rows) {
      it(r.description, () => {
        if (r.arrival) dp.setArrival(r.arrival[0], r.arrival[1]);
        const before = dp.counters();
        const res = testRun(egress(r.prog), r.packet);
        const d = deltas(before, dp.counters());
        expect({ verdict: res.verdict, reasons: d.reasons, replied: d.replied, arrived: d.arrived }).toEqual({
          verdict: r.verdict, reasons: r.reasons, replied: r.replied ?? {}, arrived: {},
        });
        expect(Buffer.from(res.packet).toString('hex')).toBe(r.out(r.packet).toString('hex'));
      });
    }
  });

  describe('ingress: a packet teaches the link it arrived on', () => {
    // Proves the arrival is keyed in the reply direction, on the arriving link, packet untouched.
    for (const [family, protocol, prog] of [[4, 'tcp', 'eth'], [6, 'udp', 'eth'], [4, 'udp', 'l3'], [6, 'tcp', 'l3']] as const) {
      it(`IPv${family} ${protocol.toUpperCase()} (${prog}): learned on link 2, reply direction, packet passed untouched`, () => {
        const r = reply(family, protocol);
        const packet = prog === 'eth' ? frame(turned(r)) : ip(turned(r));
        const before = dp.counters();
        const res = testRun(ingress(prog), packet);
        expect(res.verdict).toBe(TC_ACT_OK);
        expect(Buffer.from(res.packet).equals(packet)).toBe(true);
        expect(dp.getArrival(key(r))?.linkId).toBe(2);
        expect(dp.getArrival(key(turned(r)))).toBeNull();
        expect(deltas(before, dp.counters())).toEqual({ reasons: {}, arrived: { 2: 1 }, replied: {} });
      });
    }

    // Proves a flow the edge moved to another link moves at the next packet, and its reply follows.
    it('a flow that arrived on link 1 and now arrives on link 2: moved, and its reply stays on link 2', () => {
      const r = reply(4);
      dp.setArrival(key(r), 1);
      expect(testRun(egress(), frame(r)).verdict).toBe(TC_ACT_REDIRECT);
      testRun(ingress(), frame(turned(r)));
      expect(dp.getArrival(key(r))?.linkId).toBe(2);
      const before = dp.counters();
      expect(testRun(egress(), frame(r)).verdict).toBe(TC_ACT_OK);
      expect(deltas(before, dp.counters()).reasons).toEqual({ on_link: 1 });
    });

    // Proves a packet on an interface that is not a link teaches nothing.
    it('a packet arriving on an interface that is no link: nothing learned', () => {
      const r = reply(6);
      dp.deleteLink(2);
      try {
        const before = dp.counters();
        expect(testRun(ingress(), frame(turned(r))).verdict).toBe(TC_ACT_OK);
        expect(dp.getArrival(key(r))).toBeNull();
        expect(deltas(before, dp.counters()).arrived).toEqual({});
      } finally {
        dp.setLink(2, LINKS[2]);
      }
    });

    // Proves last_seen is refreshed when older than a second, and left alone within it.
    it('refreshes last_seen of an arrival seen 5 s ago, not of one seen just now', () => {
      const old = reply(4);
      const fresh = reply(4, 'udp');
      const then = monotonicNs() - 5_000_000_000n;
      const now = monotonicNs();
      dp.setArrival(key(old), 2, then);
      dp.setArrival(key(fresh), 2, now);
      testRun(ingress(), frame(turned(old)));
      testRun(ingress(), frame(turned(fresh)), { repeat: 20 });
      expect(dp.getArrival(key(old))!.lastSeenNs).toBeGreaterThan(then + 4_000_000_000n);
      expect(dp.getArrival(key(fresh))!.lastSeenNs).toBe(now);
    });

    // Proves ageing removes arrivals idle longer than the limit and keeps the others.
    it('ages out idle arrivals only', () => {
      const idle = reply(6, 'udp');
      const busy = reply(6, 'udp');
      dp.setArrival(key(idle), 1, monotonicNs() - 10_000_000_000n);
      testRun(ingress(), frame(turned(busy)));
      const n = dp.ageFlows(5_000_000_000n);
      expect(n).toBeGreaterThanOrEqual(1);
      expect(dp.getArrival(key(idle))).toBeNull();
      expect(dp.getArrival(key(busy))?.linkId).toBe(2);
    });
  });

  // Proves neither program drops anything and egress counts exactly one outcome per packet.
  it('fuzz: random and damaged frames are never dropped, egress counts one outcome each', () => {
    const rand = prng(0xa771);
    const int = (n: number) => Math.floor(rand() * n);
    const seeds: Buffer[] = [];
    for (let i = 0; i < 16; i++) {
      const r = reply(i % 2 ? 4 : 6, i % 4 < 2 ? 'tcp' : 'udp');
      dp.setArrival(key(r), [1, 2, 3][i % 3]!);
      seeds.push(frame(r, i % 5 ? [] : [EtherType.vlan]));
    }
    const N = 1500;
    let redirects = 0;
    const before = dp.counters();
    for (let i = 0; i < N; i++) {
      const seed = seeds[int(seeds.length)]!;
      let p: Buffer;
      if (i % 2) {
        // a real reply with a few bytes changed past the ethertype
        p = Buffer.from(seed);
        for (let j = 0, n = 1 + int(3); j < n; j++) p[14 + int(Math.min(p.length - 14, 46))] = int(256);
      } else {
        // random bytes behind an IP ethertype, so the parser goes deep
        p = Buffer.from(Array.from({ length: 60 + int(60) }, () => int(256)));
        p.writeUInt16BE(i % 4 === 0 ? EtherType.ipv6 : EtherType.ipv4, 12);
      }
      const inRes = testRun(ingress(), p);
      expect(inRes.verdict).toBe(TC_ACT_OK);
      expect(Buffer.from(inRes.packet).equals(p)).toBe(true);
      const outRes = testRun(egress(), p);
      expect([TC_ACT_OK, TC_ACT_REDIRECT]).toContain(outRes.verdict);
      if (outRes.verdict === TC_ACT_REDIRECT) redirects++;
      else expect(Buffer.from(outRes.packet).equals(p)).toBe(true);
    }
    const d = deltas(before, dp.counters());
    expect(Object.values(d.reasons).reduce((s, n) => s + n, 0)).toBe(N);
    expect(d.reasons.redirected ?? 0).toBe(redirects);
    expect(redirects).toBeGreaterThan(0);
  });
});
