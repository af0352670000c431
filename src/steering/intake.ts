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
import { formatAddress, parseAddress, writeIPv4 } from '../datapath/index.js';
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
  return writeIPv4(s, QUAD, 0);
}
const QUAD = new Uint8Array(4);

/**
 * An IP address in canonical text: IPv4 dotted quad, IPv6 per RFC 5952, IPv4-mapped IPv6 as
 * IPv4. Brackets and a zone (`%eth0`) are accepted and dropped. Null when not an address.
 * The datapath's parser and formatter, so the text is exactly what a flow listing shows.
 */
export function canonicalIp(text: string): { ip: string; family: 4 | 6 } | null {
  if (isDottedQuad(text)) return { ip: text, family: 4 };
  const a = parseAddress(text);
  if (!a) return null;
  return { ip: formatAddress(a.family, a.bytes), family: a.family };
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
