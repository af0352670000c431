/**
 * Resetting the connections of a dead internet link at once, idle ones too. Deleting their
 * conntrack entries is not enough on its own: a connection resets only when its inside end
 * next sends, which for a download (the inside end only receives) or a request lost on the
 * dying link (retransmitted after the RTO, 200 ms or more) is late or never. So, for each
 * connection:
 *
 *   1. its inside end's 4-tuple goes into the nftables set `dead4`/`dead6` (a short timeout):
 *      the next packet that end sends is answered with a TCP reset the kernel builds (nf_reject),
 *      whose sequence number is the one that packet acknowledges, so the socket takes it;
 *   2. a SYN "from" its remote end is sent to the inside end (untracked, by a raw socket): an
 *      established socket answers any SYN with a challenge ACK (RFC 5961) at once — the packet
 *      step 1 answers with the reset.
 *
 * Which end is inside (a pod, a host socket) follows from the NAT conntrack applied: an
 * outbound connection was source-NATed (its original source is inside), an inbound one through
 * a NodePort was destination-NATed (its reply source is inside); without NAT, the end whose
 * address is the node's own.
 */
import type { ConntrackEntry } from '../../../native/conntrack.js';
import { NFT_TABLE } from './layout.js';

const IPS_SRC_NAT = 1 << 4;
const IPS_DST_NAT = 1 << 5;
const IPPROTO_TCP = 6;

export interface Endpoint {
  addr: Buffer;
  port: number;
}

/** A connection as its inside end sees it: its own address and port, and its peer's. */
export interface DeadConnection {
  family: 4 | 6;
  inside: Endpoint;
  remote: Endpoint;
}

/** The TCP connections of `entries` from their inside end; `isLocal` says whether an address is the node's. */
export function deadConnections(entries: readonly ConntrackEntry[], isLocal: (addr: Buffer) => boolean): DeadConnection[] {
  const out: DeadConnection[] = [];
  for (const e of entries) {
    if (e.proto !== IPPROTO_TCP) continue;
    const { orig, reply } = e;
    let inside: Endpoint;
    let remote: Endpoint;
    if (e.status & IPS_DST_NAT) {
      inside = { addr: reply.src, port: reply.sport };
      remote = { addr: reply.dst, port: reply.dport };
    } else if (!(e.status & IPS_SRC_NAT) && !isLocal(orig.src) && isLocal(orig.dst)) {
      inside = { addr: orig.dst, port: orig.dport };
      remote = { addr: orig.src, port: orig.sport };
    } else {
      inside = { addr: orig.src, port: orig.sport };
      remote = { addr: orig.dst, port: orig.dport };
    }
    out.push({ family: e.family, inside, remote });
  }
  return out;
}

/** nft statements adding the connections to the dead sets (their inside end's 4-tuples). */
export function deadSetScript(dead: readonly DeadConnection[]): string {
  const lines: string[] = [];
  for (const family of [4, 6] as const) {
    const els = dead.filter((d) => d.family === family).map((d) => `${fmt(d.inside.addr)} . ${d.inside.port} . ${fmt(d.remote.addr)} . ${d.remote.port}`);
    if (els.length > 0) lines.push(`add element inet ${NFT_TABLE} dead${family} { ${els.join(', ')} }`);
  }
  return lines.length > 0 ? lines.join('\n') + '\n' : '';
}

/** The address as text (IPv6 fully written out: nft takes it). */
export function fmt(addr: Buffer): string {
  if (addr.length === 4) return [...addr].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(addr.readUInt16BE(i).toString(16));
  return groups.join(':');
}

/** A SYN from the remote end to the inside end, IP header included (what the raw socket sends). */
export function pokePacket(d: DeadConnection, seq: number): Buffer {
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(d.remote.port, 0);
  tcp.writeUInt16BE(d.inside.port, 2);
  tcp.writeUInt32BE(seq >>> 0, 4);
  tcp[12] = 5 << 4; // data offset: 5 words
  tcp[13] = 0x02; // SYN
  tcp.writeUInt16BE(65535, 14);
  const pseudo =
    d.family === 4
      ? Buffer.concat([d.remote.addr, d.inside.addr, Buffer.from([0, IPPROTO_TCP, 0, 20])])
      : Buffer.concat([d.remote.addr, d.inside.addr, Buffer.from([0, 0, 0, 20, 0, 0, 0, IPPROTO_TCP])]);
  tcp.writeUInt16BE(checksum(Buffer.concat([pseudo, tcp])), 16);
  if (d.family === 4) {
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(40, 2);
    ip[8] = 64;
    ip[9] = IPPROTO_TCP;
    d.remote.addr.copy(ip, 12);
    d.inside.addr.copy(ip, 16);
    ip.writeUInt16BE(checksum(ip), 10);
    return Buffer.concat([ip, tcp]);
  }
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(20, 4);
  ip[6] = IPPROTO_TCP;
  ip[7] = 64;
  d.remote.addr.copy(ip, 8);
  d.inside.addr.copy(ip, 24);
  return Buffer.concat([ip, tcp]);
}

/** The Internet checksum (RFC 1071). */
function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
