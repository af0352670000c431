/**
 * Encode and decode map keys and values (the layouts in abi.ts) from and to typed objects.
 * Pure: validates its input and throws DatapathError(INVALID) with the field that is wrong.
 */
import {
  ACT_REDIRECT,
  ACT_SET_DSCP,
  DSCP_VALUES,
  FAMILY_IPV4,
  LINK_INTERNET,
  FAMILY_IPV6,
  Layout,
  MAX_LINKS,
  MAX_POLICIES,
} from './abi.js';
import { formatAddress, parseAddress, writeIPv4, type Family } from './addr.js';
import { invalid } from './errors.js';

/** IP protocol numbers by name; any number 0..255 is accepted too. */
export const Protocols: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58, sctp: 132 };
const PORTED = new Set([6, 17, 132]);

/** A flow as its packets entered the node, before any NAT (what the session's proxy saw): src is the local end. */
export interface FlowKey {
  protocol: number | string;
  src: string;
  dst: string;
  /** Required for TCP/UDP/SCTP, ignored (zero) for other protocols. */
  sport?: number;
  dport?: number;
}

/** A flow key as read back from the table: addresses normalised, protocol as a number. */
export interface FlowKeyView {
  family: 4 | 6;
  protocol: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

export function protocolNumber(p: number | string): number {
  const n = typeof p === 'number' ? p : (Protocols[p] ?? Protocols[p.toLowerCase()] ?? Number.NaN);
  if (!Number.isInteger(n) || n < 0 || n > 255) throw invalid('flow key', `unknown protocol ${JSON.stringify(p)}`);
  return n;
}

function port(v: number | undefined, field: string): number {
  if (v === undefined || !Number.isInteger(v) || v < 1 || v > 65535) {
    throw invalid('flow key', `${field} must be an integer 1..65535, got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * Write `key` into its family's layout: struct ws_flow4_key (16 bytes) at `off4` of `out4`
 * for IPv4, struct ws_flow6_key (40 bytes) at `off6` of `out6` for IPv6. Returns the family,
 * i.e. which buffer now holds it (and which flow table it belongs in). Every byte of the
 * written key is set, padding included.
 */
export function encodeFlowKey(key: FlowKey, out4: Buffer, off4: number, out6: Buffer, off6: number): Family {
  const proto = protocolNumber(key.protocol);
  const ported = PORTED.has(proto);
  const sport = ported ? port(key.sport, 'sport') : 0;
  const dport = ported ? port(key.dport, 'dport') : 0;
  // IPv4 straight into the buffer (the hot case for batch writes); anything else parsed fully.
  if (writeIPv4(key.src, out4, off4 + Layout.flow4Key.saddr) && writeIPv4(key.dst, out4, off4 + Layout.flow4Key.daddr)) {
    writeTail(out4, off4 + Layout.flow4Key.sport, sport, dport, proto);
    return FAMILY_IPV4;
  }
  const src = parseAddress(key.src);
  const dst = parseAddress(key.dst);
  if (!src) throw invalid('flow key', `src is not an IP address: ${JSON.stringify(key.src)}`);
  if (!dst) throw invalid('flow key', `dst is not an IP address: ${JSON.stringify(key.dst)}`);
  if (src.family !== dst.family) throw invalid('flow key', `src ${key.src} and dst ${key.dst} are different families`);
  if (src.family === FAMILY_IPV4) {
    out4.set(src.bytes.subarray(0, 4), off4 + Layout.flow4Key.saddr);
    out4.set(dst.bytes.subarray(0, 4), off4 + Layout.flow4Key.daddr);
    writeTail(out4, off4 + Layout.flow4Key.sport, sport, dport, proto);
    return FAMILY_IPV4;
  }
  out6.set(src.bytes, off6 + Layout.flow6Key.saddr);
  out6.set(dst.bytes, off6 + Layout.flow6Key.daddr);
  writeTail(out6, off6 + Layout.flow6Key.sport, sport, dport, proto);
  return FAMILY_IPV6;
}

/** sport, dport (network byte order), proto, three pad bytes: the same tail in both keys. */
function writeTail(out: Buffer, at: number, sport: number, dport: number, proto: number): void {
  // Plain stores: Buffer#write* and #fill cross into C++ and cost more than these 8 bytes.
  out[at] = sport >> 8;
  out[at + 1] = sport & 0xff;
  out[at + 2] = dport >> 8;
  out[at + 3] = dport & 0xff;
  out[at + 4] = proto;
  out[at + 5] = 0;
  out[at + 6] = 0;
  out[at + 7] = 0;
}

/** Read a key of `family`'s layout (struct ws_flow4_key or ws_flow6_key) at `off` of `b`. */
export function decodeFlowKey(family: Family, b: Buffer, off = 0): FlowKeyView {
  const L = family === FAMILY_IPV6 ? Layout.flow6Key : Layout.flow4Key;
  return {
    family,
    protocol: b[off + L.proto]!,
    src: formatAddress(family, b, off + L.saddr),
    sport: b.readUInt16BE(off + L.sport),
    dst: formatAddress(family, b, off + L.daddr),
    dport: b.readUInt16BE(off + L.dport),
  };
}

// A u64 into bytes without BigInt arithmetic: one store into a 64-bit typed array, read back as
// two 32-bit words. Buffer#writeBigUInt64LE allocates BigInts on the way and cost a single flow
// write more than the rest of its encoding together.
const u64 = new BigUint64Array(1);
const u32 = new Uint32Array(u64.buffer);
const [LO, HI] = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? [0, 1] : [1, 0];
const U64_MAX = (1n << 64n) - 1n;

export function encodeFlowValue(policyId: number, lastSeenNs: bigint, out: Buffer, off = 0): void {
  checkPolicyId(policyId);
  checkLastSeen(lastSeenNs);
  const L = Layout.flowVal;
  writeU32LE(out, off + L.policyId, policyId);
  writeU32LE(out, off + L.flags, 0);
  u64[0] = lastSeenNs;
  writeU32LE(out, off + L.lastSeenNs, u32[LO]!);
  writeU32LE(out, off + L.lastSeenNs + 4, u32[HI]!);
}

export function checkLastSeen(lastSeenNs: bigint): void {
  if (lastSeenNs < 0n || lastSeenNs > U64_MAX) throw invalid('flow value', `lastSeenNs must fit in 64 bits, got ${lastSeenNs}`);
}

/** Plain stores, as in writeTail: Buffer#writeUInt32LE checks its arguments at every call. */
export function writeU32LE(out: Buffer, at: number, v: number): void {
  out[at] = v;
  out[at + 1] = v >>> 8;
  out[at + 2] = v >>> 16;
  out[at + 3] = v >>> 24;
}

export function decodeFlowValue(b: Buffer, off = 0): { policyId: number; lastSeenNs: bigint } {
  const L = Layout.flowVal;
  return { policyId: b.readUInt32LE(off + L.policyId), lastSeenNs: b.readBigUInt64LE(off + L.lastSeenNs) };
}

/** What a policy does to the packets of its sessions. At least one of the two. */
export interface PolicyAction {
  /** Send the packets out of this link (id in the link table). */
  redirectLink?: number;
  /** Set this DSCP (0..63), keeping the ECN bits. */
  dscp?: number;
}

export function checkPolicyId(id: number): void {
  if (!Number.isInteger(id) || id < 1 || id >= MAX_POLICIES) {
    throw invalid('policy', `policy id must be an integer 1..${MAX_POLICIES - 1}, got ${id}`);
  }
}

export function checkLinkId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id >= MAX_LINKS) {
    throw invalid('link', `link id must be an integer 0..${MAX_LINKS - 1}, got ${id}`);
  }
}

export function checkDscp(dscp: number): void {
  if (!Number.isInteger(dscp) || dscp < 0 || dscp >= DSCP_VALUES) {
    throw invalid('dscp', `DSCP must be an integer 0..${DSCP_VALUES - 1}, got ${dscp}`);
  }
}

export function encodePolicy(a: PolicyAction, out: Buffer): void {
  out.fill(0);
  let action = 0;
  if (a.redirectLink !== undefined) {
    checkLinkId(a.redirectLink);
    action |= ACT_REDIRECT;
    out.writeUInt32LE(a.redirectLink, Layout.policy.linkId);
  }
  if (a.dscp !== undefined) {
    checkDscp(a.dscp);
    action |= ACT_SET_DSCP;
    out[Layout.policy.dscp] = a.dscp;
  }
  if (action === 0) throw invalid('policy', 'a policy needs redirectLink, dscp, or both');
  out.writeUInt32LE(action, Layout.policy.action);
}

export function decodePolicy(b: Buffer): PolicyAction | null {
  const action = b.readUInt32LE(Layout.policy.action);
  if (action === 0) return null;
  const out: PolicyAction = {};
  if (action & ACT_REDIRECT) out.redirectLink = b.readUInt32LE(Layout.policy.linkId);
  if (action & ACT_SET_DSCP) out.dscp = b[Layout.policy.dscp]!;
  return out;
}

/** A WAN link as the datapath knows it. */
export interface LinkEntry {
  ifindex: number;
  up: boolean;
  /** IPv4 next hop on the link; absent: the kernel's FIB picks one (or the IPv6 one is used). */
  nextHop4?: string;
  /** IPv6 next hop on the link; absent: the kernel's FIB picks one. */
  nextHop6?: string;
  /** An internet link (own address, NAT on the node): the datapath never redirects to it. */
  internet?: boolean;
}

export function encodeLink(l: LinkEntry, out: Buffer): void {
  out.fill(0);
  if (!Number.isInteger(l.ifindex) || l.ifindex < 1) throw invalid('link', `ifindex must be >= 1, got ${l.ifindex}`);
  const L = Layout.link;
  out.writeUInt32LE(l.ifindex, L.ifindex);
  out[L.up] = l.up ? 1 : 0;
  out[L.flags] = l.internet ? LINK_INTERNET : 0;
  if (l.nextHop4 !== undefined) {
    const nh = parseAddress(l.nextHop4);
    if (nh?.family !== FAMILY_IPV4 || nh.bytes.every((b) => b === 0)) {
      throw invalid('link', `nextHop4 must be a non-zero IPv4 address, got ${JSON.stringify(l.nextHop4)}`);
    }
    out.set(nh.bytes.subarray(0, 4), L.nh4);
  }
  if (l.nextHop6 !== undefined) {
    const nh = parseAddress(l.nextHop6);
    if (nh?.family !== FAMILY_IPV6 || nh.bytes.every((b) => b === 0)) {
      throw invalid('link', `nextHop6 must be a non-zero IPv6 address, got ${JSON.stringify(l.nextHop6)}`);
    }
    out.set(nh.bytes, L.nh6);
  }
}

export function decodeLink(b: Buffer): LinkEntry | null {
  const L = Layout.link;
  const ifindex = b.readUInt32LE(L.ifindex);
  if (ifindex === 0) return null;
  const out: LinkEntry = { ifindex, up: b[L.up] === 1 };
  if (b[L.flags]! & LINK_INTERNET) out.internet = true;
  if (b.readUInt32LE(L.nh4) !== 0) out.nextHop4 = formatAddress(FAMILY_IPV4, b, L.nh4);
  if (!b.subarray(L.nh6, L.nh6 + 16).every((x) => x === 0)) out.nextHop6 = formatAddress(FAMILY_IPV6, b, L.nh6);
  return out;
}
