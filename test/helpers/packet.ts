/**
 * Packets for the datapath tables: build Ethernet (+ VLAN tags) or raw-IP frames carrying IPv4
 * (options, fragments) or IPv6 (extension headers) and TCP/UDP/ICMP with real checksums, and
 * read back what the program handed over. Pure byte work with its own address parser and
 * checksum code, so the tables never check the code under test with itself.
 */

export const EtherType = { ipv4: 0x0800, ipv6: 0x86dd, arp: 0x0806, lldp: 0x88cc, vlan: 0x8100, qinq: 0x88a8 } as const;
export const Proto = {
  hop: 0, icmp: 1, tcp: 6, udp: 17, routing: 43, fragment: 44, gre: 47, ah: 51, icmpv6: 58, noNext: 59, dest: 60, sctp: 132,
} as const;

const DST_MAC = Buffer.from('020000000002', 'hex');
const SRC_MAC = Buffer.from('020000000001', 'hex');

// ---- checksums (RFC 1071) ---------------------------------------------------------------

/** One's complement sum of big-endian 16-bit words (odd tail padded with zero), folded. */
export function onesSum(b: Uint8Array, start = 0): number {
  let sum = start;
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (b.length % 2) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The Internet checksum of the concatenated parts (each part of even length but the last). */
export function checksum(...parts: Uint8Array[]): number {
  return ~parts.reduce((s, p) => onesSum(p, s), 0) & 0xffff;
}

/** IPv4 header checksum computed from scratch (checksum field taken as zero). */
export function ipv4HeaderChecksum(pkt: Uint8Array, l3Off: number): number {
  const h = Buffer.from(pkt.subarray(l3Off, l3Off + (pkt[l3Off]! & 0xf) * 4));
  h.writeUInt16BE(0, 10);
  return checksum(h);
}

/** A received IPv4 header is valid when its words, checksum included, sum to 0xffff. */
export function ipv4HeaderValid(pkt: Uint8Array, l3Off: number): boolean {
  return onesSum(pkt.subarray(l3Off, l3Off + (pkt[l3Off]! & 0xf) * 4)) === 0xffff;
}

// ---- addresses ---------------------------------------------------------------------------

export function v4(s: string): Buffer {
  return Buffer.from(s.split('.').map(Number));
}

/** IPv6 text (hex groups, optional `::`) to 16 bytes. */
export function v6(s: string): Buffer {
  const [head = '', tail] = s.split('::');
  const words = (p: string) => (p ? p.split(':').map((g) => parseInt(g, 16)) : []);
  const h = words(head);
  const t = tail === undefined ? [] : words(tail);
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, 2 * i));
  return out;
}

// ---- L4 ----------------------------------------------------------------------------------

/** An L4 segment; `csumAt` is where its checksum goes (pseudo-header included unless ICMPv4). */
export interface L4 {
  proto: number;
  bytes: Buffer;
  csumAt?: number;
  pseudo?: boolean;
}

export function tcp(sport: number, dport: number, payload: Uint8Array = Buffer.from('wansteer')): L4 {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt32BE(0x01020304, 4); // seq
  h[12] = 5 << 4; // data offset
  h[13] = 0x18; // PSH, ACK
  h.writeUInt16BE(64240, 14); // window
  return { proto: Proto.tcp, bytes: Buffer.concat([h, payload]), csumAt: 16, pseudo: true };
}

export function udp(sport: number, dport: number, payload: Uint8Array = Buffer.from('wansteer')): L4 {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt16BE(8 + payload.length, 4);
  return { proto: Proto.udp, bytes: Buffer.concat([h, payload]), csumAt: 6, pseudo: true };
}

/** ICMP (or ICMPv6) echo request: no ports, the flow key carries zeros. */
export function icmpEcho(v6Family = false): L4 {
  const b = Buffer.from([v6Family ? 128 : 8, 0, 0, 0, 0x12, 0x34, 0, 1, 0xde, 0xad, 0xbe, 0xef]);
  return { proto: v6Family ? Proto.icmpv6 : Proto.icmp, bytes: b, csumAt: 2, pseudo: v6Family };
}

/** Any other protocol's bytes, as given (GRE, SCTP, or a cut-off TCP header). */
export function rawL4(proto: number, bytes: Uint8Array): L4 {
  return { proto, bytes: Buffer.from(bytes) };
}

function fillL4Checksum(l4: L4, pseudo: Buffer): Buffer {
  const b = Buffer.from(l4.bytes);
  if (l4.csumAt === undefined || l4.csumAt + 2 > b.length) return b;
  b.writeUInt16BE(0, l4.csumAt);
  let c = l4.pseudo ? checksum(pseudo, b) : checksum(b);
  if (c === 0 && l4.proto === Proto.udp) c = 0xffff; // UDP sends 0 as all ones
  b.writeUInt16BE(c, l4.csumAt);
  return b;
}

// ---- IPv4 --------------------------------------------------------------------------------

export interface Ipv4Spec {
  src: string;
  dst: string;
  l4: L4;
  /** DSCP << 2 | ECN */
  tos?: number;
  ttl?: number;
  id?: number;
  /** Flags (DF 0x4000, MF 0x2000) | fragment offset in 8-byte units. */
  fragOff?: number;
  /** Option bytes, padded with NOPs to a multiple of 4 (IHL 6..15). */
  options?: Uint8Array;
  /** Overrides for malformed headers. */
  ihl?: number;
  version?: number;
  totLen?: number;
}

export function ipv4(s: Ipv4Spec): Buffer {
  const opts = Buffer.alloc(Math.ceil((s.options?.length ?? 0) / 4) * 4, 1 /* NOP */);
  if (s.options) opts.set(s.options);
  const h = Buffer.alloc(20 + opts.length);
  const saddr = v4(s.src);
  const daddr = v4(s.dst);
  const l4 = fillL4Checksum(s.l4, Buffer.concat([saddr, daddr, Buffer.from([0, s.l4.proto]), u16(s.l4.bytes.length)]));
  h[0] = ((s.version ?? 4) << 4) | (s.ihl ?? h.length / 4);
  h[1] = s.tos ?? 0;
  h.writeUInt16BE(s.totLen ?? h.length + l4.length, 2);
  h.writeUInt16BE(s.id ?? 0x4242, 4);
  h.writeUInt16BE(s.fragOff ?? 0x4000, 6);
  h[8] = s.ttl ?? 64;
  h[9] = s.l4.proto;
  saddr.copy(h, 12);
  daddr.copy(h, 16);
  opts.copy(h, 20);
  h.writeUInt16BE(checksum(h), 10);
  return Buffer.concat([h, l4]);
}

// ---- IPv6 --------------------------------------------------------------------------------

/** One IPv6 extension header; its next-header byte is filled in by ipv6(). */
export interface Ext {
  proto: number;
  bytes: Buffer;
}

/** Hop-by-hop, routing (segments left 0), destination options, AH, or fragment (offset, M). */
export function ext(kind: 'hop' | 'routing' | 'dest' | 'ah' | 'fragment', fragOff = 0, more = false): Ext {
  switch (kind) {
    case 'hop':
    case 'dest':
      // 8 bytes: next, len 0, PadN option of 4 bytes
      return { proto: kind === 'hop' ? Proto.hop : Proto.dest, bytes: Buffer.from([0, 0, 1, 4, 0, 0, 0, 0]) };
    case 'routing':
      // 24 bytes (len 2): type 4 (SRH-like shape), segments left 0
      return { proto: Proto.routing, bytes: Buffer.concat([Buffer.from([0, 2, 4, 0, 0, 0, 0, 0]), Buffer.alloc(16, 0xab)]) };
    case 'ah':
      // 24 bytes: payload len = 24/4 - 2 = 4; SPI, sequence, 12-byte ICV
      return { proto: Proto.ah, bytes: Buffer.concat([Buffer.from([0, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 7]), Buffer.alloc(12, 0xcd)]) };
    case 'fragment': {
      const b = Buffer.from([0, 0, 0, 0, 0xca, 0xfe, 0xf0, 0x0d]);
      b.writeUInt16BE((fragOff << 3) | (more ? 1 : 0), 2);
      return { proto: Proto.fragment, bytes: b };
    }
  }
}

export interface Ipv6Spec {
  src: string;
  dst: string;
  l4: L4;
  /** DSCP << 2 | ECN */
  tclass?: number;
  flowLabel?: number;
  hopLimit?: number;
  ext?: Ext[];
  version?: number;
  /** Override (0 = a BIG TCP GSO packet). */
  payloadLen?: number;
}

export function ipv6(s: Ipv6Spec): Buffer {
  const exts = (s.ext ?? []).map((e, i, all) => {
    const b = Buffer.from(e.bytes);
    b[0] = all[i + 1]?.proto ?? s.l4.proto;
    return b;
  });
  const saddr = v6(s.src);
  const daddr = v6(s.dst);
  const l4 = fillL4Checksum(s.l4, Buffer.concat([saddr, daddr, u32(s.l4.bytes.length), Buffer.from([0, 0, 0, s.l4.proto])]));
  const payload = Buffer.concat([...exts, l4]);
  const h = Buffer.alloc(40);
  h.writeUInt32BE((((s.version ?? 6) << 28) | ((s.tclass ?? 0) << 20) | ((s.flowLabel ?? 0x12345) & 0xfffff)) >>> 0, 0);
  h.writeUInt16BE(s.payloadLen ?? payload.length, 4);
  h[6] = s.ext?.[0]?.proto ?? s.l4.proto;
  h[7] = s.hopLimit ?? 64;
  saddr.copy(h, 8);
  daddr.copy(h, 24);
  return Buffer.concat([h, payload]);
}

// ---- Ethernet ----------------------------------------------------------------------------

/** An Ethernet frame; `tags` are the TPIDs of VLAN tags, outermost first (VIDs 100, 101, ...). */
export function eth(payload: Uint8Array, ethertype: number, tags: number[] = []): Buffer {
  const parts: Buffer[] = [DST_MAC, SRC_MAC];
  tags.forEach((tpid, i) => parts.push(u16(tpid), u16(100 + i)));
  parts.push(u16(ethertype), Buffer.from(payload));
  return Buffer.concat(parts);
}

export function ethIpv4(s: Ipv4Spec, tags: number[] = []): Buffer {
  return eth(ipv4(s), EtherType.ipv4, tags);
}

export function ethIpv6(s: Ipv6Spec, tags: number[] = []): Buffer {
  return eth(ipv6(s), EtherType.ipv6, tags);
}

// ---- reading frames back -----------------------------------------------------------------

/** Offset of the IP header in an Ethernet frame: after the MACs and any VLAN tags. */
export function l3Offset(frame: Uint8Array): number {
  let off = 12;
  while (off + 2 <= frame.length) {
    const t = (frame[off]! << 8) | frame[off + 1]!;
    if (t !== EtherType.vlan && t !== EtherType.qinq) break;
    off += 4;
  }
  return off + 2;
}

/** IPv4 TOS or IPv6 traffic class (DSCP << 2 | ECN) of the packet at l3Off. */
export function trafficClass(pkt: Uint8Array, l3Off: number): number {
  if (pkt[l3Off]! >> 4 === 4) return pkt[l3Off + 1]!;
  return ((pkt[l3Off]! & 0xf) << 4) | (pkt[l3Off + 1]! >> 4);
}

/** The frame without its VLAN tags (what a redirect hands the next link). */
export function untagged(frame: Uint8Array): Buffer {
  const l3 = l3Offset(frame);
  return Buffer.concat([frame.subarray(0, 12), frame.subarray(l3 - 2)]);
}

/** What a correct DSCP rewrite makes of `pkt`: new DSCP, same ECN, IPv4 checksum recomputed. */
export function withDscp(pkt: Uint8Array, l3Off: number, dscp: number): Buffer {
  const out = Buffer.from(pkt);
  const tclass = (dscp << 2) | (trafficClass(pkt, l3Off) & 3);
  if (out[l3Off]! >> 4 === 4) {
    out[l3Off + 1] = tclass;
    out.writeUInt16BE(ipv4HeaderChecksum(out, l3Off), l3Off + 10);
  } else {
    out[l3Off] = (out[l3Off]! & 0xf0) | (tclass >> 4);
    out[l3Off + 1] = ((tclass & 0xf) << 4) | (out[l3Off + 1]! & 0x0f);
  }
  return out;
}

/**
 * Everything that can be wrong with `output` as a DSCP rewrite of `input`, one line each
 * (empty: correct). Checks each promise on its own so a failure names the broken one.
 */
export function dscpRewriteProblems(input: Uint8Array, output: Uint8Array, l3Off: number, dscp: number): string[] {
  const p: string[] = [];
  if (output.length !== input.length) return [`length ${output.length}, expected ${input.length}`];
  const tIn = trafficClass(input, l3Off);
  const tOut = trafficClass(output, l3Off);
  if (tOut >> 2 !== dscp) p.push(`DSCP ${tOut >> 2}, expected ${dscp}`);
  if ((tOut & 3) !== (tIn & 3)) p.push(`ECN ${tOut & 3}, expected ${tIn & 3} (input's)`);
  const isV4 = input[l3Off]! >> 4 === 4;
  if (output[l3Off]! >> 4 !== input[l3Off]! >> 4) p.push(`IP version nibble changed`);
  if (isV4) {
    if (!ipv4HeaderValid(output, l3Off)) p.push(`IPv4 header checksum invalid after rewrite`);
    else if (((output[l3Off + 10]! << 8) | output[l3Off + 11]!) !== ipv4HeaderChecksum(output, l3Off)) {
      p.push(`IPv4 checksum valid but not the canonical value (0x0000/0xffff form)`);
    }
  } else {
    const label = (b: Uint8Array) => ((b[l3Off + 1]! & 0xf) << 16) | (b[l3Off + 2]! << 8) | b[l3Off + 3]!;
    if (label(output) !== label(input)) p.push(`flow label ${label(output).toString(16)}, expected ${label(input).toString(16)}`);
  }
  // every other byte: TOS + checksum (v4) or the two tclass-bearing bytes (v6) may change
  const mayChange = isV4 ? [l3Off + 1, l3Off + 10, l3Off + 11] : [l3Off, l3Off + 1];
  for (let i = 0; i < input.length; i++) {
    if (!mayChange.includes(i) && input[i] !== output[i]) p.push(`byte ${i} changed 0x${hex(input[i]!)} -> 0x${hex(output[i]!)}`);
  }
  return p;
}

// ---- misc --------------------------------------------------------------------------------

/** Deterministic PRNG (mulberry32): same seed, same packets, every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}
