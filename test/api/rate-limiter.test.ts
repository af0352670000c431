// Proves the per-client token bucket and the caller-address normalisation both intakes use.
import { describe, expect, it } from 'vitest';
import { callerAddress, grpcPeerAddress } from '../../src/api/caller.js';
import { ReportRateLimiter } from '../../src/api/rate-limiter.js';

describe('ReportRateLimiter', () => {
  it('charges by reports, refills at the rate, and caps at the burst', () => {
    // Proves the bucket arithmetic on a controlled clock.
    let now = 0;
    const limiter = new ReportRateLimiter({ ratePerSecond: 10, burst: 20, now: () => now });
    expect(limiter.take('a', 20)).toBe(true);
    expect(limiter.take('a', 1)).toBe(false);
    expect(limiter.secondsUntil('a', 5)).toBe(1);
    now += 500; // +5 tokens
    expect(limiter.take('a', 6)).toBe(false); // all or nothing: takes none
    expect(limiter.take('a', 5)).toBe(true);
    now += 60_000;
    expect(limiter.takeUpTo('a', 50)).toBe(20); // capped at the burst
    expect(limiter.take('b', 20)).toBe(true); // callers are independent
  });

  it('asks a new connection for one token, or for the ask it last refused until it grants one', () => {
    let now = 0;
    const limiter = new ReportRateLimiter({ ratePerSecond: 10, burst: 20, now: () => now });
    expect(limiter.tokensToAdmit('a')).toBe(0); // not seen: a full bucket
    expect(limiter.take('a', 15)).toBe(true);
    expect(limiter.take('a', 12)).toBe(false); // 5 left
    expect(limiter.tokensToAdmit('a')).toBe(12);
    now += 600; // 11 tokens
    expect(limiter.tokensToAdmit('a')).toBe(12);
    now += 100; // 12
    expect(limiter.tokensToAdmit('a')).toBe(0);
    expect(limiter.take('a', 100)).toBe(false); // over the burst: asks for a full bucket
    expect(limiter.tokensToAdmit('a')).toBe(20);
    now += 10_000;
    expect(limiter.take('a', 1)).toBe(true); // granted: one token is enough again
    expect(limiter.take('a', 19)).toBe(true);
    expect(limiter.tokensToAdmit('a')).toBe(1);
  });

  it('forgets idle callers instead of growing without bound', () => {
    // Proves the bucket map is bounded: full buckets are dropped when the table is full.
    let now = 0;
    const limiter = new ReportRateLimiter({ ratePerSecond: 1, now: () => now, maxClients: 3 });
    for (const c of ['a', 'b', 'c']) limiter.take(c, 1);
    now += 10_000;
    limiter.take('d', 1);
    expect((limiter as unknown as { buckets: Map<string, unknown> }).buckets.size).toBe(1);
  });
});

describe('caller addresses', () => {
  it.each([
    ['10.0.0.5', '10.0.0.5'],
    ['::ffff:10.0.0.5', '10.0.0.5'],
    ['::FFFF:10.0.0.5', '10.0.0.5'],
    ['FD00::5', 'fd00::5'],
    ['::1', '::1'],
    [undefined, 'unknown'],
  ])('reads the socket address %s as %s', (raw, want) => {
    // Proves IPv4-mapped IPv6 is unwrapped so the spoof check compares like with like.
    expect(callerAddress(raw)).toBe(want);
  });

  it.each([
    ['127.0.0.1:5000', '127.0.0.1'],
    ['::1:5000', '::1'],
    ['::ffff:10.0.0.5:5000', '10.0.0.5'],
    ['[fd00::5]:5000', 'fd00::5'],
    ['unknown', 'unknown'],
  ])('reads the grpc-js peer %s as %s', (peer, want) => {
    // Proves grpc-js's unbracketed "address:port" form is split correctly for both families.
    expect(grpcPeerAddress(peer)).toBe(want);
  });
});
