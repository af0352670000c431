/**
 * The steering program, packet by packet (Katran-style table): each row is a crafted packet, the
 * map entries it meets, and the verdict, reason counters and exact bytes that must come out. The
 * loaded programs run under BPF_PROG_TEST_RUN; one Datapath (own pin dir) serves the whole file.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as native from '../../native/libbpf.js';
import { Datapath, monotonicNs, Reasons, testRun, type Counters, type Reason } from '../../src/datapath/index.js';
import { SKB_CTX_SIZE } from '../../src/datapath/test-run.js';
import type { FlowKey, LinkEntry } from '../../src/datapath/codec.js';
import {
  checksum,
  dscpRewriteProblems,
  eth,
  EtherType,
  ethIpv4,
  ethIpv6,
  ext,
  icmpEcho,
  ipv4,
  ipv4HeaderChecksum,
  ipv4HeaderValid,
  ipv6,
  l3Offset,
  onesSum,
  prng,
  Proto,
  rawL4,
  tcp,
  trafficClass,
  udp,
  untagged,
  v6,
  withDscp,
  type Ext,
  type Ipv4Spec,
  type Ipv6Spec,
} from '../helpers/packet.js';
import { describePrivileged } from '../helpers/privilege.js';

const TC_ACT_OK = 0;
const TC_ACT_REDIRECT = 7;

// ---- the maps every row meets --------------------------------------------------------------

/** Link slots: 1 a fake remote ifindex (redirect), 2 = lo (the test run's own skb->ifindex). */
const LINKS = {
  1: { ifindex: 1000, up: true },
  2: { ifindex: 1, up: true },
  3: { ifindex: 1001, up: false },
  // 4: never set (link_unset)
  5: { ifindex: 1002, up: true, nextHop6: 'fd00::1' },
  6: { ifindex: 1003, up: true, nextHop4: '192.0.2.1' },
  7: { ifindex: 1004, up: true, nextHop4: '192.0.2.1', nextHop6: 'fd00::1' },
  8: { ifindex: 1005, up: true, nextHop4: '192.0.2.1', internet: true },
  9: { ifindex: 1, up: true, internet: true },
} satisfies Record<number, LinkEntry>;

const P = {
  redirect: 1, // link 1
  dscp: 2, // DSCP 46 only
  both: 3, // link 1 + DSCP 10
  onLink: 4, // link 2 (lo)
  down: 5, // link 3 (down)
  unset: 6, // link 4 (no interface)
  empty: 7, // never written
  bothDown: 8, // link 3 (down) + DSCP 26
  v6NextHop: 9, // link 5
  v4NextHop: 10, // link 6
  bothOnLink: 11, // link 2 (lo) + DSCP 18
  dualNextHop: 12, // link 7
  internet: 13, // link 8 (internet link elsewhere)
  internetDscp: 14, // link 8 + DSCP 34
  internetOnLink: 15, // link 9 (internet, lo)
} as const;

const POLICIES: Record<number, { redirectLink?: number; dscp?: number }> = {
  [P.redirect]: { redirectLink: 1 },
  [P.dscp]: { dscp: 46 },
  [P.both]: { redirectLink: 1, dscp: 10 },
  [P.onLink]: { redirectLink: 2 },
  [P.down]: { redirectLink: 3 },
  [P.unset]: { redirectLink: 4 },
  [P.bothDown]: { redirectLink: 3, dscp: 26 },
  [P.v6NextHop]: { redirectLink: 5 },
  [P.v4NextHop]: { redirectLink: 6 },
  [P.bothOnLink]: { redirectLink: 2, dscp: 18 },
  [P.dualNextHop]: { redirectLink: 7 },
  [P.internet]: { redirectLink: 8 },
  [P.internetDscp]: { redirectLink: 8, dscp: 34 },
  [P.internetOnLink]: { redirectLink: 9 },
};

// ---- flows and the packets that belong to them ---------------------------------------------

interface Tuple {
  family: 4 | 6;
  protocol: 'tcp' | 'udp';
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

let nextPort = 20_000;
/** A fresh 5-tuple (a new source port each time), so no row meets another row's flow. */
function tuple(family: 4 | 6, protocol: 'tcp' | 'udp' = 'tcp'): Tuple {
  const [src, dst] = family === 4 ? ['10.0.0.5', '198.51.100.9'] : ['fd00:0:0:1::5', '2001:db8::9'];
  return { family, protocol, src, sport: nextPort++, dst, dport: 443 };
}

const key = (t: Tuple): FlowKey => ({ protocol: t.protocol, src: t.src, sport: t.sport, dst: t.dst, dport: t.dport });
const seg = (t: Tuple) => (t.protocol === 'tcp' ? tcp(t.sport, t.dport) : udp(t.sport, t.dport));

/** The raw IP packet of tuple `t`; `o` overrides header fields (each family takes its own). */
function ip(t: Tuple, o: Partial<Ipv4Spec & Ipv6Spec> = {}): Buffer {
  return t.family === 4 ? ipv4({ src: t.src, dst: t.dst, l4: seg(t), ...o }) : ipv6({ src: t.src, dst: t.dst, l4: seg(t), ...o });
}

/** The Ethernet frame of tuple `t`, with optional VLAN tags. */
function frame(t: Tuple, o: Partial<Ipv4Spec & Ipv6Spec> = {}, tags: number[] = []): Buffer {
  return eth(ip(t, o), t.family === 4 ? EtherType.ipv4 : EtherType.ipv6, tags);
}

/** DSCP and ECN as the IPv4 TOS / IPv6 traffic class byte. */
const tc = (dscp: number, ecn = 0) => (dscp << 2) | ecn;
const tos = (dscp: number, ecn = 0): Partial<Ipv4Spec & Ipv6Spec> => ({ tos: tc(dscp, ecn), tclass: tc(dscp, ecn) });

// ---- expected output -------------------------------------------------------------------------

type Out = (input: Buffer) => Buffer;
const same: Out = (b) => b;
const dscpTo = (d: number): Out => (b) => withDscp(b, l3Offset(b), d);
const rawDscpTo = (d: number): Out => (b) => withDscp(b, 0, d);
const untag: Out = (b) => untagged(b);
const then = (...fs: Out[]): Out => (b) => fs.reduce((x, f) => f(x), b);
/** A redirect from a raw-IP device makes room for the L2 header bpf_redirect_neigh writes. */
const pushedL2: Out = (b) => Buffer.concat([Buffer.alloc(14), b]);

// ---- the table -------------------------------------------------------------------------------

interface Row {
  description: string;
  packet: Buffer;
  /** Entry point: Ethernet (default) or raw IP. */
  prog?: 'eth' | 'l3';
  flows?: Array<[FlowKey, number]>;
  /** Mark mode: DSCP -> policy id. */
  dscpMap?: Array<[number, number]>;
  verdict: number;
  /** Reason counter deltas (packets); every reason not named must stay put. */
  reasons: Partial<Record<Reason, number>>;
  /** The policy the packet met; its counter moves when the packet passes with it. */
  policy?: number;
  out: Out;
  /** The DSCP a rewrite must leave: checks ECN, checksum, flow label and the other bytes one by one. */
  dscp?: number;
  /** skb gso_size (set through the test-run context): a GSO packet. */
  gsoSize?: number;
  /** A known defect: the row states the right behaviour and runs as it.fails until it is fixed. */
  knownDefect?: string;
}

const rows: Row[] = [];
const row = (r: Row) => rows.push(r);
const flow = (t: Tuple, policy: number): Array<[FlowKey, number]> => [[key(t), policy]];

// IPv4/IPv6 x TCP/UDP x each action, hit and miss.
const ACTIONS = [
  { name: 'redirect', policy: P.redirect, verdict: TC_ACT_REDIRECT, reasons: { redirected: 1 }, dscp: undefined },
  { name: 'DSCP only', policy: P.dscp, verdict: TC_ACT_OK, reasons: { marked: 1, dscp_rewritten: 1 }, dscp: 46 },
  { name: 'redirect + DSCP', policy: P.both, verdict: TC_ACT_REDIRECT, reasons: { redirected: 1, dscp_rewritten: 1 }, dscp: 10 },
];
for (const family of [4, 6] as const) {
  for (const protocol of ['tcp', 'udp'] as const) {
    const name = `IPv${family} ${protocol.toUpperCase()}`;
    for (const a of ACTIONS) {
      const t = tuple(family, protocol);
      row({
        description: `${name} flow hit, ${a.name}`,
        packet: frame(t),
        flows: flow(t, a.policy),
        verdict: a.verdict,
        reasons: a.reasons,
        policy: a.policy,
        out: a.dscp === undefined ? same : dscpTo(a.dscp),
        dscp: a.dscp,
      });
    }
    const t = tuple(family, protocol);
    row({
      description: `${name} miss (a flow on another source port exists): passes untouched`,
      packet: frame(t),
      flows: flow({ ...t, sport: t.sport + 10_000 }, P.redirect),
      verdict: TC_ACT_OK,
      reasons: { no_match: 1 },
      out: same,
    });
    const r = tuple(family, protocol);
    row({
      description: `${name} reply direction of a steered flow (keys are directional): no_match`,
      packet: frame({ ...r, src: r.dst, dst: r.src, sport: r.dport, dport: r.sport }),
      flows: flow(r, P.redirect),
      verdict: TC_ACT_OK,
      reasons: { no_match: 1 },
      out: same,
    });
  }
}

// DSCP rewrite keeps each ECN codepoint, from a DSCP-0 and a DSCP-34 input.
for (const family of [4, 6] as const) {
  for (const ecn of [0, 1, 2, 3]) {
    for (const [policy, d] of [[P.dscp, 46], [P.both, 10]] as const) {
      const t = tuple(family, ecn % 2 ? 'udp' : 'tcp');
      const from = ecn < 2 ? 0 : 34;
      row({
        description: `IPv${family} DSCP ${from} -> ${d} keeps ECN ${ecn} (policy ${policy})`,
        packet: frame(t, { ...tos(from, ecn), ttl: 3 + ecn, flowLabel: 0xabcde - ecn }),
        flows: flow(t, policy),
        verdict: policy === P.both ? TC_ACT_REDIRECT : TC_ACT_OK,
        reasons: policy === P.both ? { redirected: 1, dscp_rewritten: 1 } : { marked: 1, dscp_rewritten: 1 },
        policy,
        out: dscpTo(d),
        dscp: d,
      });
    }
  }
}

// Outcomes other than a plain redirect.
{
  const t4 = tuple(4);
  const t6 = tuple(6, 'udp');
  const cases: Array<[string, Tuple, number, number, Partial<Record<Reason, number>>, Out, number?]> = [
    ['already leaving by its link (lo): on_link', t4, P.onLink, TC_ACT_OK, { on_link: 1 }, same],
    ['already leaving by its link (lo): on_link', t6, P.onLink, TC_ACT_OK, { on_link: 1 }, same],
    ['on its link with a DSCP action: marked there, on_link', tuple(4), P.bothOnLink, TC_ACT_OK, { on_link: 1, dscp_rewritten: 1 }, dscpTo(18), 18],
    ['link down: passes on the original link', tuple(4), P.down, TC_ACT_OK, { link_down: 1 }, same],
    ['link down: passes on the original link', tuple(6), P.down, TC_ACT_OK, { link_down: 1 }, same],
    ['link down, policy with DSCP: passes, still marked', tuple(4, 'udp'), P.bothDown, TC_ACT_OK, { link_down: 1, dscp_rewritten: 1 }, dscpTo(26), 26],
    // internet links are chosen before routing: never redirected to, whatever link the packet leaves by
    ['policy on an internet link, packet on another link: bound, not redirected', tuple(4), P.internet, TC_ACT_OK, { bound: 1 }, same],
    ['policy on an internet link, packet on another link: bound, not redirected', tuple(6), P.internet, TC_ACT_OK, { bound: 1 }, same],
    ['policy on an internet link with a DSCP: bound, still marked', tuple(4, 'udp'), P.internetDscp, TC_ACT_OK, { bound: 1, dscp_rewritten: 1 }, dscpTo(34), 34],
    ['policy on an internet link, packet on that link: on_link', tuple(6, 'udp'), P.internetOnLink, TC_ACT_OK, { on_link: 1 }, same],
    ['link slot without interface: link_unset', tuple(4), P.unset, TC_ACT_OK, { link_unset: 1 }, same],
    ['link slot without interface: link_unset', tuple(6, 'udp'), P.unset, TC_ACT_OK, { link_unset: 1 }, same],
    ['flow points at an empty policy: no_policy', tuple(4), P.empty, TC_ACT_OK, { no_policy: 1 }, same],
    ['flow points at an empty policy: no_policy', tuple(6), P.empty, TC_ACT_OK, { no_policy: 1 }, same],
    // each next-hop branch of ws_redirect (a bad bpf_redir_neigh would turn into TC_ACT_SHOT)
    ['link with only a v6 next hop (RFC 5549 for v4): redirected', tuple(4), P.v6NextHop, TC_ACT_REDIRECT, { redirected: 1 }, same],
    ['link with only a v6 next hop: redirected', tuple(6), P.v6NextHop, TC_ACT_REDIRECT, { redirected: 1 }, same],
    ['link with only a v4 next hop: redirected', tuple(4, 'udp'), P.v4NextHop, TC_ACT_REDIRECT, { redirected: 1 }, same],
    ['link with only a v4 next hop (FIB picks for v6): redirected', tuple(6, 'udp'), P.v4NextHop, TC_ACT_REDIRECT, { redirected: 1 }, same],
    ['link with both next hops: redirected', tuple(4), P.dualNextHop, TC_ACT_REDIRECT, { redirected: 1 }, same],
    ['link with both next hops: redirected', tuple(6), P.dualNextHop, TC_ACT_REDIRECT, { redirected: 1 }, same],
  ];
  for (const [what, t, policy, verdict, reasons, out, dscp] of cases) {
    row({ description: `IPv${t.family} ${what}`, packet: frame(t), flows: flow(t, policy), verdict, reasons, policy, out, dscp });
  }
}

// Mark mode: no flow entry, the packet's DSCP picks the policy.
{
  const t = () => tuple(4, 'udp');
  row({ description: 'mark mode IPv4: DSCP 34 -> DSCP-only policy, rewritten to 46, ECN 1 kept', packet: frame(t(), tos(34, 1)), dscpMap: [[34, P.dscp]], verdict: TC_ACT_OK, reasons: { marked: 1, dscp_rewritten: 1 }, policy: P.dscp, out: dscpTo(46), dscp: 46 });
  row({ description: 'mark mode IPv6: DSCP 34 -> redirect + DSCP 10, ECN 2 kept', packet: frame(tuple(6), tos(34, 2)), dscpMap: [[34, P.both]], verdict: TC_ACT_REDIRECT, reasons: { redirected: 1, dscp_rewritten: 1 }, policy: P.both, out: dscpTo(10), dscp: 10 });
  row({ description: 'mark mode IPv4: DSCP 12 -> redirect only', packet: frame(t(), tos(12, 3)), dscpMap: [[12, P.redirect]], verdict: TC_ACT_REDIRECT, reasons: { redirected: 1 }, policy: P.redirect, out: same });
  row({ description: 'mark mode: packet already carries the policy DSCP: marked, bytes untouched, no rewrite counted', packet: frame(t(), tos(46, 1)), dscpMap: [[46, P.dscp]], verdict: TC_ACT_OK, reasons: { marked: 1 }, policy: P.dscp, out: same });
  row({ description: 'mark mode: DSCP 35 with only 34 mapped: no_match', packet: frame(t(), tos(35)), dscpMap: [[34, P.dscp]], verdict: TC_ACT_OK, reasons: { no_match: 1 }, out: same });
  row({ description: 'mark mode: DSCP mapped to an empty policy: no_policy', packet: frame(tuple(6), tos(20)), dscpMap: [[20, P.empty]], verdict: TC_ACT_OK, reasons: { no_policy: 1 }, out: same });
  const f = t();
  row({ description: 'a flow entry beats the DSCP table', packet: frame(f, tos(34)), flows: flow(f, P.redirect), dscpMap: [[34, P.dscp]], verdict: TC_ACT_REDIRECT, reasons: { redirected: 1 }, policy: P.redirect, out: same });
}

// IPv4 with options: every IHL from 6 to 15, redirect + DSCP (the checksum covers the options).
for (let ihl = 6; ihl <= 15; ihl++) {
  const t = tuple(4, ihl % 2 ? 'udp' : 'tcp');
  const options = Buffer.alloc((ihl - 5) * 4, 1); // NOPs ...
  options.set([0x94, 0x04, 0x00, 0x00]); // ... after a Router Alert
  row({
    description: `IPv4 IHL ${ihl} (options) flow hit: redirect + DSCP 10`,
    packet: frame(t, { options, ...tos(3, ihl % 4) }),
    flows: flow(t, P.both),
    verdict: TC_ACT_REDIRECT,
    reasons: { redirected: 1, dscp_rewritten: 1 },
    policy: P.both,
    out: dscpTo(10),
    dscp: 10,
  });
}

// VLAN tags in the packet data (no offload under test run): parsed through, popped on redirect.
{
  const Q = EtherType.vlan;
  const AD = EtherType.qinq;
  const cases: Array<[string, Tuple, number[], number, number, Partial<Record<Reason, number>>, Out, number?]> = [
    ['802.1Q redirect: tag popped', tuple(4), [Q], P.redirect, TC_ACT_REDIRECT, { redirected: 1 }, untag],
    ['802.1Q DSCP only: marked, tag kept', tuple(6, 'udp'), [Q], P.dscp, TC_ACT_OK, { marked: 1, dscp_rewritten: 1 }, dscpTo(46), 46],
    ['802.1Q redirect + DSCP: marked, tag popped', tuple(4, 'udp'), [Q], P.both, TC_ACT_REDIRECT, { redirected: 1, dscp_rewritten: 1 }, then(dscpTo(10), untag), 10],
    ['802.1Q on its link: on_link, tag kept', tuple(4), [Q], P.onLink, TC_ACT_OK, { on_link: 1 }, same],
    ['802.1ad + 802.1Q redirect: both tags popped', tuple(4), [AD, Q], P.redirect, TC_ACT_REDIRECT, { redirected: 1 }, untag],
    ['802.1Q + 802.1Q redirect: both tags popped', tuple(6), [Q, Q], P.redirect, TC_ACT_REDIRECT, { redirected: 1 }, untag],
    ['802.1ad + 802.1Q DSCP only: marked, tags kept', tuple(6), [AD, Q], P.dscp, TC_ACT_OK, { marked: 1, dscp_rewritten: 1 }, dscpTo(46), 46],
    ['802.1ad + 802.1Q redirect + DSCP', tuple(4, 'udp'), [AD, Q], P.both, TC_ACT_REDIRECT, { redirected: 1, dscp_rewritten: 1 }, then(dscpTo(10), untag), 10],
    ['three tags (more than walked): not_ip, untouched', tuple(4), [AD, Q, Q], P.redirect, TC_ACT_OK, { not_ip: 1 }, same],
  ];
  for (const [what, t, tags, policy, verdict, reasons, out, dscp] of cases) {
    const hit = !reasons.not_ip;
    row({ description: `IPv${t.family} ${what}`, packet: frame(t, tos(0, 1), tags), flows: flow(t, policy), verdict, reasons, policy: hit ? policy : undefined, out, dscp });
  }
}

// Raw-IP devices: the l3 entry reads the IP header at offset 0.
{
  const l3 = (r: Omit<Row, 'prog'>) => row({ ...r, prog: 'l3', description: `raw IP: ${r.description}` });
  const a = tuple(4);
  l3({ description: 'IPv4 TCP redirect: 14 bytes of L2 room pushed', packet: ip(a), flows: flow(a, P.redirect), verdict: TC_ACT_REDIRECT, reasons: { redirected: 1 }, policy: P.redirect, out: pushedL2 });
  const b = tuple(6, 'udp');
  l3({ description: 'IPv6 UDP redirect + DSCP 10', packet: ip(b, tos(7, 3)), flows: flow(b, P.both), verdict: TC_ACT_REDIRECT, reasons: { redirected: 1, dscp_rewritten: 1 }, policy: P.both, out: then(rawDscpTo(10), pushedL2), dscp: 10 });
  const c = tuple(4, 'udp');
  l3({ description: 'IPv4 UDP DSCP only, ECN 2 kept', packet: ip(c, tos(0, 2)), flows: flow(c, P.dscp), verdict: TC_ACT_OK, reasons: { marked: 1, dscp_rewritten: 1 }, policy: P.dscp, out: rawDscpTo(46), dscp: 46 });
  const d = tuple(6);
  l3({ description: 'IPv6 on its link: on_link', packet: ip(d), flows: flow(d, P.onLink), verdict: TC_ACT_OK, reasons: { on_link: 1 }, policy: P.onLink, out: same });
  l3({ description: 'IPv4 miss: no_match', packet: ip(tuple(4)), verdict: TC_ACT_OK, reasons: { no_match: 1 }, out: same });
  const e = tuple(4);
  l3({ description: 'IPv4 mark mode: DSCP 34 -> 46', packet: ip(e, tos(34, 1)), dscpMap: [[34, P.dscp]], verdict: TC_ACT_OK, reasons: { marked: 1, dscp_rewritten: 1 }, policy: P.dscp, out: rawDscpTo(46), dscp: 46 });
  l3({ description: 'version nibble 5: not_ip', packet: Buffer.from(ip(tuple(4))).fill(0x55, 0, 1), verdict: TC_ACT_OK, reasons: { not_ip: 1 }, out: same });
  l3({ description: 'an Ethernet frame on a raw-IP device (nibble 0): not_ip', packet: frame(tuple(4)), verdict: TC_ACT_OK, reasons: { not_ip: 1 }, out: same });
  l3({ description: 'IPv4 header cut at 19 bytes: truncated', packet: ip(tuple(4)).subarray(0, 19), verdict: TC_ACT_OK, reasons: { truncated: 1 }, out: same });
  l3({ description: 'IPv6 header cut at 39 bytes: truncated', packet: ip(tuple(6)).subarray(0, 39), verdict: TC_ACT_OK, reasons: { truncated: 1 }, out: same });
  const f = tuple(4);
  l3({ description: 'IPv4 first fragment (MF): fragment', packet: ip(f, { fragOff: 0x2000 }), flows: flow(f, P.redirect), verdict: TC_ACT_OK, reasons: { fragment: 1 }, out: same });
  l3({ description: 'IPv4 IHL 4: bad_header', packet: ip(tuple(4), { ihl: 4 }), verdict: TC_ACT_OK, reasons: { bad_header: 1 }, out: same });
}

// Truncated at each layer (every row's tuple is steered, so only the cut can make it pass).
{
  const cut = (what: string, t: Tuple, whole: Buffer, len: number, reason: Reason = 'truncated') =>
    row({ description: `cut ${what} (${len} of ${whole.length} bytes): ${reason}`, packet: whole.subarray(0, len), flows: flow(t, P.both), verdict: TC_ACT_OK, reasons: { [reason]: 1 }, out: same });
  const t4 = tuple(4);
  const t6 = tuple(6);
  const u4 = tuple(4, 'udp');
  const u6 = tuple(6, 'udp');
  cut('inside an 802.1Q tag', t4, frame(t4, {}, [EtherType.vlan]), 16);
  cut('inside an 802.1Q tag', t4, frame(t4, {}, [EtherType.vlan]), 17);
  cut('inside the inner tag of 802.1ad + 802.1Q', t6, frame(t6, {}, [EtherType.qinq, EtherType.vlan]), 20);
  // untagged, the kernel refuses these before the program runs (see kernelRefuses): cut behind a tag
  const q = [EtherType.vlan];
  cut('after an 802.1Q tag (inner ethertype IPv4)', t4, frame(t4, {}, q), 18);
  cut('inside the IPv4 header, 802.1Q', t4, frame(t4, {}, q), 18 + 19);
  cut('inside the IPv4 header, 802.1Q', t4, frame(t4, {}, q), 18 + 1);
  cut('inside the IPv6 header, 802.1Q', t6, frame(t6, {}, q), 18 + 39);
  cut('inside the IPv6 header, 802.1Q', t6, frame(t6, {}, q), 18 + 8);
  cut('after the IPv6 header, hop-by-hop announced', t6, frame(t6, { ext: [ext('hop')] }), 14 + 40);
  cut('inside a hop-by-hop header', t6, frame(t6, { ext: [ext('hop')] }), 14 + 41);
  cut('inside AH after hop-by-hop', t6, frame(t6, { ext: [ext('hop'), ext('ah')] }), 14 + 48 + 1);
  cut('inside the IPv6 TCP ports', t6, frame(t6), 14 + 40 + 3);
  cut('inside the IPv6 UDP ports', u6, frame(u6), 14 + 40 + 2);
  cut('inside the TCP ports after destination options', t6, frame(t6, { ext: [ext('dest')] }), 14 + 48 + 3);
  cut('right before the IPv6 UDP header', u6, frame(u6), 14 + 40);
  // IPv4 below the header: tot_len is checked against the skb first
  const short4 = tuple(4);
  row({ description: 'IPv4 TCP ports cut, tot_len says so (23): truncated', packet: ethIpv4({ src: short4.src, dst: short4.dst, l4: rawL4(Proto.tcp, seg(short4).bytes.subarray(0, 3)) }), flows: flow(short4, P.both), verdict: TC_ACT_OK, reasons: { truncated: 1 }, out: same });
  const shortU = tuple(4, 'udp');
  row({ description: 'IPv4 UDP, no L4 byte, tot_len 20: truncated', packet: ethIpv4({ src: shortU.src, dst: shortU.dst, l4: rawL4(Proto.udp, Buffer.alloc(0)) }), flows: flow(shortU, P.both), verdict: TC_ACT_OK, reasons: { truncated: 1 }, out: same });
  cut('inside the IPv4 UDP ports, tot_len of the whole datagram', u4, frame(u4), 14 + 20 + 3, 'bad_header');
  const opt = tuple(4);
  cut('inside IPv4 options (IHL 15), tot_len of the whole datagram', opt, frame(opt, { options: Buffer.alloc(40, 1) }), 14 + 40, 'bad_header');
}

// Fragments are never steered: every piece keeps one path.
{
  const frag = (what: string, t: Tuple, o: Partial<Ipv4Spec & Ipv6Spec>) =>
    row({ description: `IPv${t.family} ${what}: fragment, untouched though the flow is steered`, packet: frame(t, o), flows: flow(t, P.both), verdict: TC_ACT_OK, reasons: { fragment: 1 }, out: same });
  frag('first fragment (MF, offset 0)', tuple(4), { fragOff: 0x2000 });
  frag('middle fragment (MF, offset 185)', tuple(4, 'udp'), { fragOff: 0x2000 | 185 });
  frag('last fragment (offset 185)', tuple(4), { fragOff: 185 });
  frag('fragment header', tuple(6), { ext: [ext('fragment', 0, true)] });
  frag('fragment header, offset 100', tuple(6, 'udp'), { ext: [ext('fragment', 100, false)] });
  frag('hop-by-hop + dest options + fragment header', tuple(6), { ext: [ext('hop'), ext('dest'), ext('fragment', 0, true)] });
  frag('atomic fragment (offset 0, no M)', tuple(6), { ext: [ext('fragment', 0, false)] });
  const nf = tuple(4);
  row({ description: 'IPv4 without DF and not fragmented: hits', packet: frame(nf, { fragOff: 0 }), flows: flow(nf, P.redirect), verdict: TC_ACT_REDIRECT, reasons: { redirected: 1 }, policy: P.redirect, out: same });
}

// IPv6 extension headers before the L4 header are walked (up to six).
{
  const chains: Array<[string, Ext[]]> = [
    ['hop-by-hop', [ext('hop')]],
    ['routing', [ext('routing')]],
    ['destination options', [ext('dest')]],
    ['AH', [ext('ah')]],
    ['hop-by-hop, dest, routing, AH', [ext('hop'), ext('dest'), ext('routing'), ext('ah')]],
    ['six headers', [ext('hop'), ext('dest'), ext('routing'), ext('ah'), ext('dest'), ext('dest')]],
  ];
  for (const [what, chain] of chains) {
    const t = tuple(6, chain.length % 2 ? 'tcp' : 'udp');
    row({ description: `IPv6 ${what} before ${t.protocol.toUpperCase()}: hit, redirect + DSCP 10`, packet: frame(t, { ext: chain, ...tos(1, 1) }), flows: flow(t, P.both), verdict: TC_ACT_REDIRECT, reasons: { redirected: 1, dscp_rewritten: 1 }, policy: P.both, out: dscpTo(10), dscp: 10 });
  }
  const t = tuple(6);
  row({ description: 'IPv6 seven extension headers: ext_headers, untouched', packet: frame(t, { ext: [ext('hop'), ext('dest'), ext('routing'), ext('ah'), ext('dest'), ext('dest'), ext('dest')] }), flows: flow(t, P.both), verdict: TC_ACT_OK, reasons: { ext_headers: 1 }, out: same });
}

// Not IP, or not valid IP.
{
  const arp = Buffer.from('0001080006040001020000000001c0a80001000000000000c0a80002', 'hex');
  const lldp = Buffer.from('020704020000000001040302000106020078fe060080c2010001', 'hex');
  row({ description: 'ARP: not_ip', packet: eth(arp, EtherType.arp), verdict: TC_ACT_OK, reasons: { not_ip: 1 }, out: same });
  row({ description: 'LLDP: not_ip', packet: eth(lldp, EtherType.lldp), verdict: TC_ACT_OK, reasons: { not_ip: 1 }, out: same });
  row({ description: '802.1Q-tagged ARP: not_ip', packet: eth(arp, EtherType.arp, [EtherType.vlan]), verdict: TC_ACT_OK, reasons: { not_ip: 1 }, out: same });
  row({ description: '802.3 length field instead of an ethertype: not_ip', packet: eth(Buffer.alloc(46, 0xaa), 46), verdict: TC_ACT_OK, reasons: { not_ip: 1 }, out: same });
  const bad = (what: string, packet: Buffer, t: Tuple) =>
    row({ description: `${what}: bad_header, untouched`, packet, flows: flow(t, P.both), verdict: TC_ACT_OK, reasons: { bad_header: 1 }, out: same });
  const t = tuple(4);
  for (const ihl of [0, 1, 4]) bad(`IPv4 IHL ${ihl}`, frame(t, { ihl }), t);
  bad('ethertype IPv4, version 6', frame(t, { version: 6 }), t);
  bad('ethertype IPv4, version 0', frame(t, { version: 0 }), t);
  bad('ethertype IPv6 carrying an IPv4 packet', eth(Buffer.concat([ip(t), Buffer.alloc(20)]), EtherType.ipv6), t);
  const t6 = tuple(6);
  bad('IPv6, version 4 in the header', frame(t6, { version: 4 }), t6);
  bad('IPv4 tot_len 19 (< IHL * 4)', frame(t, { totLen: 19 }), t);
  bad('IPv4 tot_len beyond the frame', frame(t, { totLen: 1500 }), t);
  const pad = tuple(4, 'udp');
  const small = frame(pad);
  row({ description: 'IPv4 UDP in a frame padded to 60 bytes (tot_len < frame): hits, padding kept', packet: Buffer.concat([small, Buffer.alloc(60 - small.length)]), flows: flow(pad, P.both), verdict: TC_ACT_REDIRECT, reasons: { redirected: 1, dscp_rewritten: 1 }, policy: P.both, out: dscpTo(10), dscp: 10 });
}

// BIG TCP: GSO packets over 64 KiB carry tot_len / payload_len 0.
{
  const a = tuple(4);
  row({ description: 'IPv4 tot_len 0 on a GSO skb (BIG TCP): hits', packet: frame(a, { totLen: 0 }), gsoSize: 1448, flows: flow(a, P.both), verdict: TC_ACT_REDIRECT, reasons: { redirected: 1, dscp_rewritten: 1 }, policy: P.both, out: dscpTo(10), dscp: 10 });
  const b = tuple(4);
  row({ description: 'IPv4 tot_len 0 without GSO: bad_header', packet: frame(b, { totLen: 0 }), flows: flow(b, P.both), verdict: TC_ACT_OK, reasons: { bad_header: 1 }, out: same });
  const c = tuple(6);
  row({ description: 'IPv6 payload_len 0 on a GSO skb (BIG TCP): hits', packet: frame(c, { payloadLen: 0 }), gsoSize: 1428, flows: flow(c, P.both), verdict: TC_ACT_REDIRECT, reasons: { redirected: 1, dscp_rewritten: 1 }, policy: P.both, out: dscpTo(10), dscp: 10 });
}

// Protocols without ports: keyed by addresses and protocol, ports 0.
{
  const [s4, d4, s6, d6] = ['10.0.0.5', '198.51.100.9', 'fd00:0:0:1::5', '2001:db8::9'];
  row({ description: 'ICMP echo flow (ports 0): redirect', packet: ethIpv4({ src: s4, dst: d4, l4: icmpEcho() }), flows: [[{ protocol: 'icmp', src: s4, dst: d4 }, P.redirect]], verdict: TC_ACT_REDIRECT, reasons: { redirected: 1 }, policy: P.redirect, out: same });
  row({ description: 'ICMP to another host: no_match', packet: ethIpv4({ src: s4, dst: '198.51.100.10', l4: icmpEcho() }), flows: [[{ protocol: 'icmp', src: s4, dst: d4 }, P.redirect]], verdict: TC_ACT_OK, reasons: { no_match: 1 }, out: same });
  row({ description: 'ICMPv6 echo flow: redirect + DSCP 10', packet: ethIpv6({ src: s6, dst: d6, l4: icmpEcho(true), tclass: tc(0, 1) }), flows: [[{ protocol: 'icmpv6', src: s6, dst: d6 }, P.both]], verdict: TC_ACT_REDIRECT, reasons: { redirected: 1, dscp_rewritten: 1 }, policy: P.both, out: dscpTo(10), dscp: 10 });
  const gre = rawL4(Proto.gre, Buffer.concat([Buffer.from([0, 0, 0x08, 0x00]), ipv4({ src: '172.16.0.1', dst: '172.16.0.2', l4: udp(1, 2) })]));
  row({ description: 'GRE flow (protocol 47): DSCP only', packet: ethIpv4({ src: s4, dst: d4, l4: gre }), flows: [[{ protocol: 47, src: s4, dst: d4 }, P.dscp]], verdict: TC_ACT_OK, reasons: { marked: 1, dscp_rewritten: 1 }, policy: P.dscp, out: dscpTo(46), dscp: 46 });
  row({ description: 'GRE over IPv6 after a dest-options header: redirect', packet: ethIpv6({ src: s6, dst: d6, l4: gre, ext: [ext('dest')] }), flows: [[{ protocol: 47, src: s6, dst: d6 }, P.redirect]], verdict: TC_ACT_REDIRECT, reasons: { redirected: 1 }, policy: P.redirect, out: same });
  const sctp = rawL4(Proto.sctp, Buffer.from('138896cc0000000100000000', 'hex')); // ports 5000 -> 38604
  row({
    description: 'SCTP flow written through the facade (which requires its ports): redirect',
    packet: ethIpv4({ src: s4, dst: d4, l4: sctp }),
    flows: [[{ protocol: 'sctp', src: s4, sport: 5000, dst: d4, dport: 38604 }, P.redirect]],
    verdict: TC_ACT_REDIRECT,
    reasons: { redirected: 1 },
    policy: P.redirect,
    out: same,
  });
}

// ---- running it ------------------------------------------------------------------------------

interface Deltas {
  verdict: number;
  reasons: Partial<Record<Reason, number>>;
  policies: Record<number, number>;
  links: Record<number, number>;
}

function packetDeltas(before: Counters, after: Counters): Omit<Deltas, 'verdict'> & { reasonBytes: Partial<Record<Reason, number>> } {
  const reasons: Partial<Record<Reason, number>> = {};
  const reasonBytes: Partial<Record<Reason, number>> = {};
  for (const r of Reasons) {
    const d = Number(after.reasons[r].packets - before.reasons[r].packets);
    if (d) reasons[r] = d;
    const b = Number(after.reasons[r].bytes - before.reasons[r].bytes);
    if (b) reasonBytes[r] = b;
  }
  const diff = (a: Counters['links'], b: Counters['links']) => {
    const out: Record<number, number> = {};
    for (const [id, c] of a) {
      const d = Number(c.packets - (b.get(id)?.packets ?? 0n));
      if (d) out[id] = d;
    }
    return out;
  };
  return { reasons, reasonBytes, policies: diff(after.policies, before.policies), links: diff(after.links, before.links) };
}

/** Outcomes after which the packet passes with its policy: the policy (and on_link, the link) count it. */
const PASS_WITH_POLICY: Reason[] = ['on_link', 'marked', 'link_down', 'link_unset', 'bound'];

function expectedDeltas(r: Row): Deltas {
  const outcome = (Object.keys(r.reasons) as Reason[]).find((x) => x !== 'dscp_rewritten');
  const counted = r.policy !== undefined && outcome !== undefined && PASS_WITH_POLICY.includes(outcome);
  const link = POLICIES[r.policy ?? 0]?.redirectLink;
  return {
    verdict: r.verdict,
    reasons: r.reasons,
    policies: counted ? { [r.policy!]: 1 } : {},
    links: outcome === 'on_link' && link !== undefined ? { [link]: 1 } : {},
  };
}

describe('packet helper (pure)', () => {
  // Proves the checksum code against RFC 1071's worked example header (checksum 0xb861).
  it('computes the IPv4 header checksum of a known header', () => {
    const h = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
    expect(checksum(h)).toBe(0xb861);
    h.writeUInt16BE(0xb861, 10);
    expect(ipv4HeaderValid(h, 0)).toBe(true);
    expect(ipv4HeaderChecksum(h, 0)).toBe(0xb861);
  });

  // Proves the builders give valid L3 and L4 checksums and the fields the table relies on.
  it('builds packets with valid checksums, and withDscp is a clean rewrite', () => {
    const p4 = ipv4({ src: '10.0.0.5', dst: '198.51.100.9', l4: tcp(1, 2), tos: tc(34, 3), options: Buffer.from([0x94, 4, 0, 0]) });
    expect(ipv4HeaderValid(p4, 0)).toBe(true);
    expect(l4ChecksumValid(p4)).toBe(true);
    expect(l4ChecksumValid(ipv4({ src: '10.0.0.5', dst: '10.0.0.6', l4: udp(53, 5353) }))).toBe(true);
    expect(trafficClass(p4, 0)).toBe(tc(34, 3));
    const p6 = ipv6({ src: 'fd00::5', dst: '2001:db8::9', l4: udp(1, 2), tclass: tc(34, 2), flowLabel: 0xfedcb });
    expect(trafficClass(p6, 0)).toBe(tc(34, 2));
    expect(p6.readUInt32BE(0) & 0xfffff).toBe(0xfedcb);
    expect(v6('2001:db8::9').toString('hex')).toBe('20010db8000000000000000000000009');
    expect(dscpRewriteProblems(p4, withDscp(p4, 0, 10), 0, 10)).toEqual([]);
    expect(dscpRewriteProblems(p6, withDscp(p6, 0, 63), 0, 63)).toEqual([]);
    expect(dscpRewriteProblems(p4, p4, 0, 10)).toEqual(['DSCP 34, expected 10']);
    expect(untagged(eth(p4, EtherType.ipv4, [EtherType.qinq, EtherType.vlan]))).toEqual(eth(p4, EtherType.ipv4));
  });
});

/** The TCP/UDP checksum of an IPv4 packet (pseudo-header included) is valid. */
function l4ChecksumValid(p: Buffer): boolean {
  const seg = p.subarray((p[0]! & 0xf) * 4);
  const pseudo = Buffer.concat([p.subarray(12, 20), Buffer.from([0, p[9]!, seg.length >> 8, seg.length & 0xff])]);
  return onesSum(seg, onesSum(pseudo)) === 0xffff;
}

/**
 * What BPF_PROG_TEST_RUN refuses with EINVAL before any program runs (kernel 6.18): less than an
 * Ethernet header, or bytes 12-13 saying IPv4/IPv6 (the kernel runs eth_type_trans on every
 * input, raw-IP ones included) with less than a full IPv4/IPv6 header behind them.
 */
function kernelRefuses(p: Uint8Array): boolean {
  if (p.length < 14) return true;
  const type = (p[12]! << 8) | p[13]!;
  return (type === EtherType.ipv4 && p.length < 14 + 20) || (type === EtherType.ipv6 && p.length < 14 + 40);
}

/** testRun with skb gso_size set (struct __sk_buff offset 176): the BIG TCP case. */
function testRunGso(progFd: number, packet: Buffer, gsoSize: number): { verdict: number; packet: Buffer } {
  const ctx = Buffer.alloc(SKB_CTX_SIZE);
  ctx.writeUInt32LE(gsoSize, 176);
  const out = Buffer.alloc(packet.length + 256);
  const r: native.TestRunResult = { retval: 0, durationNs: 0, dataSizeOut: 0, ctxSizeOut: 0 };
  const rc = native.progTestRun(progFd, packet, out, 1, r, ctx, null);
  if (rc < 0) throw new Error(`BPF_PROG_TEST_RUN with gso_size: errno ${-rc}`);
  return { verdict: r.retval, packet: out.subarray(0, r.dataSizeOut) };
}

function refusedByKernel(run: () => unknown): boolean {
  try {
    run();
    return false;
  } catch (err) {
    if ((err as { code?: string; errno?: number }).code === 'WS_DATAPATH_TEST_RUN' && (err as { errno?: number }).errno === 22) return true;
    throw err;
  }
}

describePrivileged('datapath: the steering program, packet by packet (BPF_PROG_TEST_RUN)', () => {
  const pinDir = `/sys/fs/bpf/wst-pkt-${process.pid}`;
  let dp: Datapath;
  const fd = (prog: 'eth' | 'l3' = 'eth') => (prog === 'eth' ? dp.programFds.eth : dp.programFds.l3);

  beforeAll(() => {
    dp = Datapath.open({ pinDir, flowTableSize: 8192 });
    for (const [id, l] of Object.entries(LINKS)) dp.setLink(Number(id), l);
    for (const [id, p] of Object.entries(POLICIES)) dp.setPolicy(Number(id), p);
  });

  afterAll(() => {
    try {
      dp?.destroy();
    } finally {
      rmSync(pinDir, { recursive: true, force: true });
    }
  });

  /** Write the row's entries, run it once, take them away again. */
  function run(r: Row): { verdict: number; out: Buffer; deltas: ReturnType<typeof packetDeltas> } {
    for (const [k, p] of r.flows ?? []) dp.upsertFlow(k, p);
    for (const [d, p] of r.dscpMap ?? []) dp.setDscpPolicy(d, p);
    try {
      const before = dp.counters();
      const res = r.gsoSize ? testRunGso(fd(r.prog), r.packet, r.gsoSize) : testRun(fd(r.prog), r.packet);
      return { verdict: res.verdict, out: Buffer.from(res.packet), deltas: packetDeltas(before, dp.counters()) };
    } finally {
      for (const [k] of r.flows ?? []) dp.deleteFlow(k);
      for (const [d] of r.dscpMap ?? []) dp.setDscpPolicy(d, null);
    }
  }

  /** The IP packet inside a program's input or output (for the DSCP checks). */
  function ipOf(r: Row, b: Buffer, isOutput: boolean): Buffer {
    if (r.prog === 'l3') return isOutput ? b.subarray(b.length - r.packet.length) : b;
    return b.subarray(l3Offset(b));
  }

  // Each row proves what its description says: verdict, reason/policy/link counters, exact bytes.
  describe('table', () => {
    for (const r of rows) {
      const test = r.knownDefect ? it.fails : it;
      test(r.knownDefect ? `${r.description} [known defect: ${r.knownDefect}]` : r.description, () => {
        const { verdict, out, deltas } = run(r);
        expect({ verdict, reasons: deltas.reasons, policies: deltas.policies, links: deltas.links }).toEqual(expectedDeltas(r));
        // bytes are counted as the packet arrived (skb->len)
        for (const [reason, n] of Object.entries(r.reasons)) expect(deltas.reasonBytes[reason as Reason]).toBe(n * r.packet.length);
        if (r.dscp !== undefined) expect(dscpRewriteProblems(ipOf(r, r.packet, false), ipOf(r, out, true), 0, r.dscp)).toEqual([]);
        expect(out.toString('hex')).toBe(r.out(r.packet).toString('hex'));
      });
    }
  });

  // Proves which inputs BPF_PROG_TEST_RUN refuses (EINVAL) before the program runs, for both
  // entry points: under 14 bytes, and untagged IPv4/IPv6 ethertypes without a full IP header.
  // So "cut inside Ethernet" and an untagged "cut inside the IP header" cannot reach the program.
  it('refuses exactly the frames kernelRefuses() describes', () => {
    for (const whole of [frame(tuple(4)), frame(tuple(6)), frame(tuple(4), {}, [EtherType.vlan]), eth(Buffer.alloc(40), EtherType.arp)]) {
      for (let len = 0; len <= 60; len++) {
        const p = whole.subarray(0, len);
        for (const prog of ['eth', 'l3'] as const) {
          const refused = refusedByKernel(() => testRun(fd(prog), p));
          expect(refused, `${prog} ${p.toString('hex')}`).toBe(kernelRefuses(p));
        }
      }
    }
  });

  // Proves the incremental IPv4 checksum update (RFC 1624) matches a full recompute on random
  // headers, including the edge cases where the old or the new checksum is 0x0000.
  it('rewrites DSCP with a correct IPv4 checksum on random headers and checksum edge cases', () => {
    const rand = prng(0xc5c5);
    const byte = () => Math.floor(rand() * 256);
    const randomSpec = (): Ipv4Spec => ({
      src: `${byte()}.${byte()}.${byte()}.${byte()}`,
      dst: `${byte()}.${byte()}.${byte()}.${byte()}`,
      l4: udp(1 + byte(), 53),
      tos: tc(byte() % 46, byte() % 4), // never 46 already: every packet is rewritten
      ttl: byte(),
      id: byte() * 256 + byte(),
      options: Buffer.alloc(Math.floor(rand() * 11) * 4, byte()),
    });
    /** The IP id that makes the header's checksum 0x0000 when it carries `tos`. */
    const idForZeroChecksum = (spec: Ipv4Spec, tos: number) => {
      const h = ipv4({ ...spec, tos, id: 0 });
      h.writeUInt16BE(0, 10);
      return 0xffff - onesSum(h.subarray(0, (h[0]! & 0xf) * 4));
    };
    const packets: Buffer[] = [];
    for (let i = 0; i < 300; i++) packets.push(ipv4(randomSpec()));
    for (let i = 0; i < 30; i++) {
      const spec = randomSpec();
      packets.push(ipv4({ ...spec, id: idForZeroChecksum(spec, spec.tos!) })); // old checksum 0x0000
      packets.push(ipv4({ ...spec, id: idForZeroChecksum(spec, tc(46, spec.tos! & 3)) })); // new checksum 0x0000
    }
    expect(packets.filter((p) => p.readUInt16BE(10) === 0)).toHaveLength(30);
    expect(packets.filter((p) => withDscp(p, 0, 46).readUInt16BE(10) === 0)).toHaveLength(30);
    for (let d = 0; d < 64; d++) dp.setDscpPolicy(d, P.dscp);
    try {
      for (const p of packets) {
        const frameIn = eth(p, EtherType.ipv4);
        const res = testRun(fd('eth'), frameIn);
        const out = Buffer.from(res.packet);
        expect(res.verdict).toBe(TC_ACT_OK);
        expect(dscpRewriteProblems(frameIn, out, 14, 46), frameIn.toString('hex')).toEqual([]);
        expect(out.toString('hex')).toBe(withDscp(frameIn, 14, 46).toString('hex'));
      }
    } finally {
      for (let d = 0; d < 64; d++) dp.setDscpPolicy(d, null);
    }
  });

  // Proves the program never drops and counts exactly one outcome per packet, for any bytes.
  it('fuzz: random and damaged frames are never dropped, each counted under exactly one outcome', () => {
    const rand = prng(0xf00d);
    const int = (n: number) => Math.floor(rand() * n);
    const seeds: Buffer[] = [];
    const keys: Array<[FlowKey, number]> = [];
    const policies = [P.redirect, P.dscp, P.both, P.onLink, P.down, P.bothDown, P.empty];
    for (let i = 0; i < 24; i++) {
      const t = tuple(i % 2 ? 4 : 6, i % 4 < 2 ? 'tcp' : 'udp');
      const exts = [[], [ext('hop')], [ext('ah'), ext('dest')], [ext('fragment', 0, true)]][i % 4]!;
      const tags = [[], [EtherType.vlan], [EtherType.qinq, EtherType.vlan]][i % 3]!;
      const o = { ...tos(int(64), int(4)), ext: exts, options: i % 5 ? undefined : Buffer.alloc(8, 1) };
      seeds.push(frame(t, o, tags));
      keys.push([key(t), policies[i % policies.length]!]);
    }
    for (const [k, p] of keys) dp.upsertFlow(k, p);
    dp.setDscpPolicy(34, P.both);
    dp.setDscpPolicy(12, P.dscp);
    const N = 4000;
    let redirects = 0;
    let changedPasses = 0;
    let refused = 0;
    try {
      const before = dp.counters();
      for (let i = 0; i < N; i++) {
        const prog = i % 4 === 3 ? 'l3' : 'eth';
        let p: Buffer;
        const seed = seeds[int(seeds.length)]!;
        const body = prog === 'l3' ? seed.subarray(l3Offset(seed)) : seed;
        switch (i % 3) {
          case 0: // random bytes, any length the kernel accepts
            p = Buffer.from(Array.from({ length: 14 + int(120) }, () => int(256)));
            break;
          case 1: // a real packet cut anywhere
            p = Buffer.from(body.subarray(0, Math.max(14, int(body.length + 1))));
            break;
          default: // a real packet with a few bytes changed
            p = Buffer.from(body);
            for (let j = 0, n = 1 + int(4); j < n; j++) p[int(Math.min(p.length, 70))] = int(256);
        }
        if (kernelRefuses(p)) {
          expect(refusedByKernel(() => testRun(fd(prog), p))).toBe(true);
          refused++;
          continue;
        }
        const res = testRun(fd(prog), p);
        expect([TC_ACT_OK, TC_ACT_REDIRECT], `verdict for ${p.toString('hex')} (${prog})`).toContain(res.verdict);
        if (res.verdict === TC_ACT_REDIRECT) {
          redirects++;
          continue;
        }
        // a pass leaves the packet as it was, except for a DSCP rewrite
        const out = Buffer.from(res.packet);
        expect(out.length).toBe(p.length);
        if (!out.equals(p)) {
          changedPasses++;
          const l3 = prog === 'l3' ? 0 : l3Offset(p);
          const inputValid = p[l3]! >> 4 !== 4 || ipv4HeaderValid(p, l3);
          const problems = dscpRewriteProblems(p, out, l3, trafficClass(out, l3) >> 2).filter((x) => inputValid || !x.startsWith('IPv4'));
          expect(problems, `pass changed ${p.toString('hex')} (${prog})`).toEqual([]);
        }
      }
      const d = packetDeltas(before, dp.counters());
      const outcomes = Object.entries(d.reasons).filter(([r]) => r !== 'dscp_rewritten').reduce((s, [, n]) => s + n, 0);
      expect(outcomes).toBe(N - refused);
      expect(refused).toBeLessThan(N / 10);
      expect(d.reasons.redirected ?? 0).toBe(redirects);
      expect(d.reasons.dscp_rewritten ?? 0).toBeGreaterThanOrEqual(changedPasses);
      // the mix really reached every stage
      for (const r of ['redirected', 'marked', 'no_match', 'truncated', 'not_ip', 'bad_header', 'fragment'] as const) {
        expect(d.reasons[r], r).toBeGreaterThan(0);
      }
    } finally {
      for (const [k] of keys) dp.deleteFlow(k);
      dp.setDscpPolicy(34, null);
      dp.setDscpPolicy(12, null);
    }
  });

  // Proves a packet refreshes last_seen of a flow not seen for over a second (idle ageing works).
  it('refreshes last_seen of a flow last seen 5 s ago', () => {
    const t = tuple(4);
    const old = monotonicNs() - 5_000_000_000n;
    dp.upsertFlow(key(t), P.redirect, old);
    try {
      expect(testRun(fd(), frame(t)).verdict).toBe(TC_ACT_REDIRECT);
      const seen = dp.getFlow(key(t))!.lastSeenNs;
      expect(seen).toBeGreaterThan(old + 4_000_000_000n);
      expect(seen).toBeLessThanOrEqual(monotonicNs());
    } finally {
      dp.deleteFlow(key(t));
    }
  });

  // Proves the stamp follows the clock, which each CPU reads once per tick and caches
  // (bpf/lib/clock.h): refreshes some ticks apart stamp ever later times. Four of them on at
  // most two CPUs make one CPU stamp twice, so a cache that stopped moving would show.
  it('stamps a later time at each later refresh', async () => {
    const t = tuple(4);
    const stamps: bigint[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 30)); // a few ticks at any HZ
        dp.upsertFlow(key(t), P.redirect, monotonicNs() - 5_000_000_000n);
        expect(testRun(fd(), frame(t)).verdict).toBe(TC_ACT_REDIRECT);
        stamps.push(dp.getFlow(key(t))!.lastSeenNs);
      }
    } finally {
      dp.deleteFlow(key(t));
    }
    for (let i = 1; i < stamps.length; i++) expect(stamps[i]).toBeGreaterThan(stamps[i - 1]!);
    expect(stamps[3]).toBeLessThanOrEqual(monotonicNs());
  });

  // Proves last_seen is written at most once a second: an entry written just now, half a second
  // ago, or slightly ahead of the coarse clock is left exactly as user space wrote it.
  it('leaves last_seen alone for a flow seen less than a second ago', () => {
    for (const ahead of [0n, -500_000_000n, 500_000_000n]) {
      const t = tuple(6, 'udp');
      const now = monotonicNs() + ahead;
      dp.upsertFlow(key(t), P.dscp, now);
      try {
        expect(testRun(fd(), frame(t), { repeat: 50 }).verdict).toBe(TC_ACT_OK);
        expect(dp.getFlow(key(t))!.lastSeenNs).toBe(now);
      } finally {
        dp.deleteFlow(key(t));
      }
    }
  });

  // Proves repeat runs count once per run: the kernel's loop, not one count per call.
  it('counts every repeated run once', () => {
    const t = tuple(4, 'udp');
    dp.upsertFlow(key(t), P.onLink);
    try {
      const before = dp.counters();
      expect(testRun(fd(), frame(t), { repeat: 1000, ifindex: 1 }).verdict).toBe(TC_ACT_OK);
      const d = packetDeltas(before, dp.counters());
      expect(d.reasons).toEqual({ on_link: 1000 });
      expect(d.policies).toEqual({ [P.onLink]: 1000 });
      expect(d.links).toEqual({ 2: 1000 });
    } finally {
      dp.deleteFlow(key(t));
    }
  });
});
