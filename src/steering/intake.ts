/**
 * Session intake, the pure part: turn a report's Envoy-style endpoints into a canonical
 * 5-tuple, and decide whether the caller may report it at all.
 *
 *   parseEndpoint('10.0.0.5:8080')            -> 10.0.0.5, 8080
 *   parseEndpoint('[fd00:0::5]:8080')         -> fd00::5, 8080      (RFC 5952 text)
 *   parseEndpoint('[::ffff:10.0.0.5]:8080')   -> 10.0.0.5, 8080     (a dual-stack socket sends IPv4)
 *
 * Addresses are canonical text so that "is this the caller's own address" is a string compare
 * and the flow key the datapath stores is the one the kernel sees. The hot case (dotted-quad
 * IPv4) is checked in place and returns the very string it was given: no allocation.
 */
import { isIPv6 } from 'node:net';
import type { RejectReason, SessionReport } from './types.js';

export interface Endpoint {
  ip: string;
  port: number;
  family: 4 | 6;
}

/** A report reduced to what the flow entry needs. Reused across reports by the engine. */
export interface ParsedSession {
  protocol: 'tcp' | 'udp';
  local: Endpoint;
  remote: Endpoint;
}

export interface IntakeProblem {
  reason: RejectReason;
  message: string;
}

export function emptySession(): ParsedSession {
  return { protocol: 'tcp', local: { ip: '', port: 0, family: 4 }, remote: { ip: '', port: 0, family: 4 } };
}

/** Dotted-quad IPv4 without leading zeros (inet_pton's rule: `010` is not ten). */
export function isDottedQuad(s: string): boolean {
  const n = s.length;
  if (n < 7 || n > 15) return false;
  let parts = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || parts > 3) return false;
      parts++;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return false;
      value = value * 10 + (c - 48);
      if (value > 255) return false;
      digits++;
    } else {
      return false;
    }
  }
  return parts === 4;
}

/**
 * An IP address in canonical text: IPv4 dotted quad, IPv6 per RFC 5952, IPv4-mapped IPv6 as
 * IPv4. Brackets and a zone (`%eth0`) are accepted and dropped. Null when not an address.
 */
export function canonicalIp(text: string): { ip: string; family: 4 | 6 } | null {
  if (isDottedQuad(text)) return { ip: text, family: 4 };
  let s = text;
  if (s.length > 1 && s.charCodeAt(0) === 91 /* [ */ && s.charCodeAt(s.length - 1) === 93 /* ] */) s = s.slice(1, -1);
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (isDottedQuad(s)) return { ip: s, family: 4 };
  if (!isIPv6(s)) return null;
  const w = ipv6Words(s);
  if (w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0 && w[4] === 0 && w[5] === 0xffff) {
    return { ip: `${w[6]! >> 8}.${w[6]! & 0xff}.${w[7]! >> 8}.${w[7]! & 0xff}`, family: 4 };
  }
  return { ip: formatIPv6(w), family: 6 };
}

/** Eight 16-bit words of an address node:net already called valid IPv6. */
function ipv6Words(s: string): number[] {
  const parse = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
      } else {
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const gap = s.indexOf('::');
  if (gap < 0) return parse(s);
  const head = parse(s.slice(0, gap));
  const tail = parse(s.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** RFC 5952: lower-case hex, no leading zeros, the longest run (≥ 2) of zero words as `::`. */
function formatIPv6(w: readonly number[]): string {
  let bestAt = -1;
  let bestLen = 1;
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
  const hex = (xs: readonly number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(w);
  return `${hex(w.slice(0, bestAt))}::${hex(w.slice(bestAt + bestLen))}`;
}

function parsePort(s: string, from: number): number {
  const n = s.length - from;
  if (n < 1 || n > 5) return 0;
  let v = 0;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return 0;
    v = v * 10 + (c - 48);
  }
  return v <= 65535 ? v : 0;
}

/**
 * Parse `ip:port` or `[ipv6]:port` into `out`. False when it is neither, the port is not
 * 1..65535, or the address is unspecified (0.0.0.0, ::): no packet leaves from or to it.
 */
export function parseEndpoint(text: string, out: Endpoint): boolean {
  if (typeof text !== 'string') return false;
  let host: string;
  let portAt: number;
  if (text.charCodeAt(0) === 91 /* [ */) {
    const close = text.indexOf(']:');
    if (close < 0) return false;
    host = text.slice(1, close);
    portAt = close + 2;
  } else {
    const colon = text.lastIndexOf(':');
    // A bare IPv6 address with a port is ambiguous; Envoy always brackets it.
    if (colon < 0 || text.indexOf(':') !== colon) return false;
    host = text.slice(0, colon);
    portAt = colon + 1;
  }
  const port = parsePort(text, portAt);
  if (port === 0) return false;
  if (isDottedQuad(host)) {
    if (host === '0.0.0.0') return false;
    out.ip = host;
    out.family = 4;
  } else {
    const c = canonicalIp(host);
    if (!c || c.ip === '::' || c.ip === '0.0.0.0') return false;
    out.ip = c.ip;
    out.family = c.family;
  }
  out.port = port;
  return true;
}

/** Parse a report's 5-tuple into `out`; a problem (and `out` half-filled) when it is unusable. */
export function parseSession(report: SessionReport, out: ParsedSession): IntakeProblem | null {
  if (report === null || typeof report !== 'object') return { reason: 'bad-address', message: 'a report must be an object' };
  const protocol = report.protocol ?? 'tcp';
  if (protocol !== 'tcp' && protocol !== 'udp') {
    return { reason: 'bad-address', message: `protocol must be tcp or udp, got ${JSON.stringify(protocol)}` };
  }
  out.protocol = protocol;
  if (!parseEndpoint(report.local, out.local)) {
    return { reason: 'bad-address', message: `local is not ip:port or [ipv6]:port: ${JSON.stringify(report.local)}` };
  }
  if (!parseEndpoint(report.remote, out.remote)) {
    return { reason: 'bad-address', message: `remote is not ip:port or [ipv6]:port: ${JSON.stringify(report.remote)}` };
  }
  if (out.local.family !== out.remote.family) {
    return { reason: 'bad-address', message: `local ${report.local} and remote ${report.remote} are different address families` };
  }
  return null;
}

/**
 * Who may report what: a caller reports only sessions whose local end is its own address,
 * unless it is one of the node's allowed proxies (gateways), which report for any address.
 */
export class CallerPolicy {
  private readonly proxies: ReadonlySet<string>;

  constructor(allowedProxies: readonly string[]) {
    const set = new Set<string>();
    for (const p of allowedProxies) {
      const c = canonicalIp(p);
      if (c) set.add(c.ip);
    }
    this.proxies = set;
  }

  /** The caller as the check needs it: canonical address (null: not an address) and whether it is a proxy. */
  caller(address: string): { ip: string | null; proxy: boolean } {
    const c = typeof address === 'string' ? canonicalIp(address) : null;
    return { ip: c?.ip ?? null, proxy: c !== null && this.proxies.has(c.ip) };
  }
}

/** The spoof check for one parsed report. */
export function spoofProblem(caller: { ip: string | null; proxy: boolean }, session: ParsedSession): IntakeProblem | null {
  if (caller.proxy || (caller.ip !== null && caller.ip === session.local.ip)) return null;
  return {
    reason: 'spoofed-local',
    message: `caller ${caller.ip ?? '(not an IP address)'} may not report sessions of local address ${session.local.ip}`,
  };
}
