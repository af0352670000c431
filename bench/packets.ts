/** Minimal Ethernet frames for the benchmarks (the tests have the full builder). */
import { parseAddress } from '../src/datapath/addr.js';

interface Tuple {
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

function addr(s: string): Uint8Array {
  const a = parseAddress(s);
  if (!a) throw new Error(`bad address ${s}`);
  return a.bytes;
}

/** Ethernet + IPv4 (valid checksum) + UDP with 18 bytes of payload. */
export function ipv4Udp(t: Tuple): Buffer {
  const p = Buffer.alloc(14 + 20 + 8 + 18);
  p.writeUInt16BE(0x0800, 12);
  p[14] = 0x45;
  p.writeUInt16BE(p.length - 14, 16);
  p[22] = 64;
  p[23] = 17;
  p.set(addr(t.src).subarray(0, 4), 26);
  p.set(addr(t.dst).subarray(0, 4), 30);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += p.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  p.writeUInt16BE(~sum & 0xffff, 24);
  p.writeUInt16BE(t.sport, 34);
  p.writeUInt16BE(t.dport, 36);
  p.writeUInt16BE(26, 38);
  return p;
}

/** Ethernet + IPv6 + TCP header (20 bytes), no payload. */
export function ipv6Tcp(t: Tuple): Buffer {
  const p = Buffer.alloc(14 + 40 + 20);
  p.writeUInt16BE(0x86dd, 12);
  p.writeUInt32BE(0x60012345, 14);
  p.writeUInt16BE(20, 18);
  p[20] = 6;
  p[21] = 64;
  p.set(addr(t.src), 22);
  p.set(addr(t.dst), 38);
  p.writeUInt16BE(t.sport, 54);
  p.writeUInt16BE(t.dport, 56);
  p[66] = 0x50;
  return p;
}
