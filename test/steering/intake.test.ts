// Proves the pure intake: Envoy-style endpoints parsed to canonical addresses, and the spoof check.
import { describe, expect, it } from 'vitest';
import { CallerPolicy, canonicalIp, emptySession, parseEndpoint, parseSession, spoofProblem } from '../../src/steering/intake.js';
import type { SessionReport } from '../../src/steering/types.js';

describe('parseEndpoint', () => {
  const good: [string, string, number, 4 | 6][] = [
    ['10.0.0.5:8080', '10.0.0.5', 8080, 4],
    ['[fd00::5]:8080', 'fd00::5', 8080, 6],
    ['[FD00:0:0:0::5]:1', 'fd00::5', 1, 6],
    ['[2001:db8:0:0:1:0:0:1]:443', '2001:db8::1:0:0:1', 443, 6],
    ['[::ffff:10.0.0.5]:65535', '10.0.0.5', 65535, 4],
    ['[::FFFF:a00:5]:80', '10.0.0.5', 80, 4],
    ['[fe80::1%eth0]:80', 'fe80::1', 80, 6],
    ['[::1]:80', '::1', 80, 6],
  ];
  for (const [text, ip, port, family] of good) {
    it(`reads ${text}`, () => {
      // Proves one accepted form and its canonical address.
      const out = { ip: '', port: 0, family: 4 as 4 | 6 };
      expect(parseEndpoint(text, out)).toBe(true);
      expect(out).toEqual({ ip, port, family });
    });
  }

  it('refuses everything that is not ip:port', () => {
    // Proves the rejects: no port, port 0 or too big, bare IPv6, names, unspecified and leading-zero addresses.
    const out = { ip: '', port: 0, family: 4 as 4 | 6 };
    for (const bad of ['10.0.0.5', '10.0.0.5:0', '10.0.0.5:65536', '10.0.0.5:8o', 'fd00::5:80', '[fd00::5]', '[fd00::5]80', 'host:80', '0.0.0.0:1', '[::]:1', '01.0.0.5:1', '1.2.3:4', '']) {
      expect(parseEndpoint(bad, out), bad).toBe(false);
    }
  });

  it('keeps the given string for dotted-quad IPv4 (no allocation on the hot path)', () => {
    // Proves canonicalIp returns the input itself for the common case.
    const s = '192.0.2.77';
    expect(canonicalIp(s)?.ip).toBe(s);
    expect(canonicalIp('[2001:0db8::0001]')).toEqual({ ip: '2001:db8::1', family: 6 });
    expect(canonicalIp('nope')).toBeNull();
  });
});

describe('parseSession and the spoof check', () => {
  const r = (local: string, remote: string, protocol?: 'tcp' | 'udp'): SessionReport => ({
    direction: 'inbound', local, remote, ...(protocol ? { protocol } : {}), request: { authority: 'a', path: '/', method: 'GET' },
  });

  it('takes tcp by default and refuses mixed families', () => {
    // Proves protocol default and the family rule.
    const s = emptySession();
    expect(parseSession(r('10.0.0.5:1', '10.0.0.6:2', 'udp'), s)).toBeNull();
    expect(s.protocol).toBe('udp');
    expect(parseSession(r('10.0.0.5:1', '10.0.0.6:2'), s)).toBeNull();
    expect(s.protocol).toBe('tcp');
    expect(parseSession(r('10.0.0.5:1', '[fd00::6]:2'), s)).toMatchObject({ reason: 'bad-address', message: expect.stringContaining('different address families') });
    expect(parseSession({ ...r('10.0.0.5:1', '10.0.0.6:2'), protocol: 'sctp' as 'tcp' }, s)).toMatchObject({ reason: 'bad-address' });
  });

  it('lets a caller report only its own local address, unless it is an allowed proxy', () => {
    // Proves the spoof rule with canonical comparison on both sides.
    const callers = new CallerPolicy(['10.0.0.200', 'FD00::200', 'garbage']);
    const s = emptySession();
    parseSession(r('[fd00:0::5]:1', '[fd00::6]:2'), s);
    expect(spoofProblem(callers.caller('fd00::5'), s)).toBeNull();
    expect(spoofProblem(callers.caller('fd00::7'), s)).toMatchObject({ reason: 'spoofed-local' });
    expect(spoofProblem(callers.caller('fd00::200'), s)).toBeNull();
    parseSession(r('10.0.0.5:1', '10.0.0.6:2'), s);
    expect(spoofProblem(callers.caller('::ffff:10.0.0.5'), s)).toBeNull();
    expect(spoofProblem(callers.caller('::ffff:10.0.0.200'), s)).toBeNull();
    expect(spoofProblem(callers.caller(''), s)).toMatchObject({ reason: 'spoofed-local' });
  });
});
