/**
 * IP address strings <-> bytes in network order: 16 for IPv6, and for IPv4 the first four of 16
 * (the other twelve zero); the IPv4 flow key and link next hop take just those four.
 * Pure functions: no DNS, no I/O.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { FAMILY_IPV4, FAMILY_IPV6 } from './abi.js';

export type Family = typeof FAMILY_IPV4 | typeof FAMILY_IPV6;

export interface ParsedAddress {
  family: Family;
  /** 16 bytes; IPv4 in bytes 0..3. */
  bytes: Uint8Array;
}

/**
 * Fast path for the common case, dotted-quad IPv4: write its four bytes at `off` of `out`
 * without allocating. False (nothing written) when `s` is anything else — then use
 * parseAddress. Leading zeros are refused, as inet_pton does (`010` would be octal elsewhere).
 */
export function writeIPv4(s: string, out: Uint8Array, off: number): boolean {
  const n = s.length;
  if (n < 7 || n > 15) return false;
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? s.charCodeAt(i) : 46; /* '.' ends the last part */
    if (c === 46) {
      if (digits === 0 || part > 3) return false;
      out[off + part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return false; // leading zero
      value = value * 10 + (c - 48);
      if (value > 255) return false;
      digits++;
    } else {
      return false;
    }
  }
  return part === 4;
}

/**
 * Parse an IPv4 or IPv6 literal. IPv4-mapped IPv6 (`::ffff:10.0.0.1`) becomes IPv4: a dual-stack
 * socket with such an address sends IPv4 packets, and that is what the datapath sees.
 * Brackets (`[fd00::1]`) and a zone (`fe80::1%eth0`) are accepted and dropped. Returns null when
 * the text is not an address.
 */
export function parseAddress(text: string): ParsedAddress | null {
  let s = text.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  const bytes = new Uint8Array(16);
  if (isIPv4(s)) {
    writeV4(s, bytes, 0);
    return { family: FAMILY_IPV4, bytes };
  }
  if (!isIPv6(s)) return null;
  writeV6(s, bytes);
  if (isV4Mapped(bytes)) {
    bytes.copyWithin(0, 12, 16);
    bytes.fill(0, 4);
    return { family: FAMILY_IPV4, bytes };
  }
  return { family: FAMILY_IPV6, bytes };
}

function writeV4(s: string, out: Uint8Array, off: number): void {
  const parts = s.split('.');
  for (let i = 0; i < 4; i++) out[off + i] = Number(parts[i]);
}

/** `s` is known valid (node:net said so); expand `::` and an embedded IPv4 tail. */
function writeV6(s: string, out: Uint8Array): void {
  const words: number[] = [];
  const [head = '', tail] = s.split('::');
  const parse = (part: string): number[] => {
    if (part === '') return [];
    const out16: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const v4 = new Uint8Array(4);
        writeV4(g, v4, 0);
        out16.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        out16.push(parseInt(g, 16));
      }
    }
    return out16;
  };
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  words.push(...h);
  if (tail !== undefined) for (let i = h.length + t.length; i < 8; i++) words.push(0);
  words.push(...t);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = (words[i]! >> 8) & 0xff;
    out[2 * i + 1] = words[i]! & 0xff;
  }
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** Format 16 address bytes of `family` as text (RFC 5952 for IPv6: lowercase, longest zero run as `::`). */
export function formatAddress(family: number, b: Uint8Array, off = 0): string {
  if (family === FAMILY_IPV4) return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((b[off + 2 * i]! << 8) | b[off + 2 * i + 1]!);
  let bestAt = -1;
  let bestLen = 1; // a single zero word is not compressed
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(w);
  return `${hex(w.slice(0, bestAt))}::${hex(w.slice(bestAt + bestLen))}`;
}
