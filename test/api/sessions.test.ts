// Proves the HTTP session intake: one report and a batch reach the engine with the socket's
// address as the caller, bad input is a 4xx with its code and reaches nothing, and rejected
// reports are counted by reason.
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { buildApp } from '../../src/api/app.js';
import { SessionIntake } from '../../src/api/intake.js';
import { ReportRateLimiter } from '../../src/api/rate-limiter.js';
import { EngineDouble } from './helpers/engine-double.js';
import { fixture, report } from './helpers/app-fixture.js';
import { PolicyStoreDouble } from './helpers/store-double.js';

const sidecar = '10.0.0.5';

describe('POST /v1/sessions', () => {
  it('steers one report and passes the socket address as the caller', async () => {
    // Proves the happy path: 200 with the engine's outcome, caller = remote address.
    const { app, engine } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/sessions', payload: report(), remoteAddress: sidecar });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'steered', policy: 'boss-fibre', link: 'fibre', flow: { src: sidecar, sport: 43210, dst: '192.0.2.10', dport: 443 } });
    expect(engine.calls).toEqual([{ reports: [report()], caller: sidecar }]);
  });

  it('normalises an IPv4-mapped caller address before the spoof check', async () => {
    // Proves ::ffff:10.0.0.5 (a dual-stack socket's view of an IPv4 peer) is the caller 10.0.0.5.
    const { app, engine } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/sessions', payload: report(), remoteAddress: `::ffff:${sidecar}` });
    expect(res.statusCode).toBe(200);
    expect(engine.calls[0]?.caller).toBe(sidecar);
  });

  it('takes IPv6 addresses as Envoy writes them', async () => {
    // Proves [fd00::5]:8080 passes the schema and the caller fd00::5 may report it.
    const { app } = fixture();
    const payload = report({ local: '[fd00::5]:8080', remote: '[2001:db8::10]:443', direction: 'inbound' });
    const res = await app.inject({ method: 'POST', url: '/v1/sessions', payload, remoteAddress: 'fd00::5' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'steered', flow: { src: 'fd00::5', dst: '2001:db8::10' } });
  });

  it('answers an unmatched session with 200 and the reason', async () => {
    // Proves a valid report that steers nothing is not an error.
    const { app } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/sessions', payload: report({ request: { authority: 'other.example', path: '/', method: 'GET' } }), remoteAddress: sidecar });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'unmatched', reason: 'no-virtual-service' });
  });

  it('refuses a spoofed local address with 403 WS_API_SPOOFED_LOCAL, stores nothing, counts it', async () => {
    // Proves the engine's spoofed-local rejection surfaces as a 4xx with its code and is counted.
    const { app, engine, registry } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/sessions', payload: report(), remoteAddress: '10.0.0.99' });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: 'WS_API_SPOOFED_LOCAL' });
    expect(engine.stored).toEqual([]);
    const metrics = await registry.metrics();
    expect(metrics).toContain('wansteer_intake_rejected_total{transport="http",reason="spoofed-local"} 1');
  });

  it('lets an allowed node-level proxy report any local address', async () => {
    // Proves the gateway allow-list path (the engine's) is reachable through the API.
    const engine = new EngineDouble({ allowedProxies: ['10.0.0.1'] });
    const app = buildApp({ engine, store: new PolicyStoreDouble(), registry: new Registry(), intake: { ratePerClient: 100, maxBatch: 10 } });
    const res = await app.inject({ method: 'POST', url: '/v1/sessions', payload: report(), remoteAddress: '10.0.0.1' });
    expect(res.json()).toMatchObject({ status: 'steered' });
  });

  it('refuses an address the engine cannot parse with 400 WS_API_BAD_ADDRESS', async () => {
    // Proves the engine's bad-address rejection maps to its own code.
    const { app, engine } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/sessions', payload: report({ local: '10.0.0.500:1' }), remoteAddress: sidecar });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'WS_API_BAD_ADDRESS' });
    expect(engine.stored).toEqual([]);
  });

  it.each([
    ['a missing direction', { direction: undefined }, '/direction'],
    ['an unknown direction', { direction: 'sideways' }, '/direction'],
    ['a hostname as address', { local: 'pod.local:80' }, '/local'],
    ['an unknown field', { colour: 'red' }, '/colour'],
    ['an upper-case header name', { request: { authority: 'a', path: '/', method: 'GET', headers: { 'X-User': 'boss' } } }, '/request/headers/X-User'],
    ['a missing authority', { request: { path: '/', method: 'GET' } }, '/request/authority'],
  ])('refuses %s with 400 WS_API_VALIDATION naming the field', async (_what, change, field) => {
    // Proves schema violations are 400 with a stable code and the field, and reach no engine.
    const { app, engine } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/sessions', payload: report(change), remoteAddress: sidecar });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'WS_API_VALIDATION', field });
    expect(engine.calls).toEqual([]);
  });

  it('refuses malformed JSON with 400 WS_API_MALFORMED_JSON and keeps serving', async () => {
    // Proves a broken body is a 4xx with its code, and the next request is served.
    const { app, engine } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/sessions', headers: { 'content-type': 'application/json' }, payload: '{"direction": "inbound",', remoteAddress: sidecar });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'WS_API_MALFORMED_JSON' });
    expect(engine.calls).toEqual([]);
    const next = await app.inject({ method: 'POST', url: '/v1/sessions', payload: report(), remoteAddress: sidecar });
    expect(next.statusCode).toBe(200);
  });

  it('refuses a body over the limit with 413 WS_API_PAYLOAD_TOO_LARGE', async () => {
    // Proves the per-route body limit holds and is answered with its code.
    const { app, engine } = fixture({ limits: { report: 1024 } });
    const payload = report({ request: { authority: 'boss.example', path: `/${'a'.repeat(2000)}`, method: 'GET' } });
    const res = await app.inject({ method: 'POST', url: '/v1/sessions', payload, remoteAddress: sidecar });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ code: 'WS_API_PAYLOAD_TOO_LARGE' });
    expect(engine.calls).toEqual([]);
  });

  it('refuses a non-JSON body with 415', async () => {
    // Proves a wrong content type is a 4xx with a code, not a crash.
    const { app } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/sessions', headers: { 'content-type': 'text/plain' }, payload: 'hello', remoteAddress: sidecar });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toMatchObject({ code: 'WS_API_UNSUPPORTED_MEDIA_TYPE' });
  });

  it('needs no bearer token', async () => {
    // Proves sidecars (which hold no token) can report.
    const { app } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/sessions', payload: report(), remoteAddress: sidecar, headers: {} });
    expect(res.statusCode).toBe(200);
  });
});

describe('POST /v1/sessions:batch', () => {
  it('answers one outcome per report, in order, with counts; mixed outcomes are a 200', async () => {
    // Proves the batch form: one engine call, per-item outcomes including a rejected one.
    const { app, engine } = fixture();
    const sessions = [report(), report({ request: { authority: 'x.example', path: '/', method: 'GET' } }), report({ local: '10.0.0.6:1000' })];
    const res = await app.inject({ method: 'POST', url: '/v1/sessions:batch', payload: { sessions }, remoteAddress: sidecar });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.outcomes.map((o: { status: string }) => o.status)).toEqual(['steered', 'unmatched', 'rejected']);
    expect(body.outcomes[2]).toMatchObject({ reason: 'spoofed-local' });
    expect(body).toMatchObject({ steered: 1, unmatched: 1, rejected: 1 });
    expect(engine.calls).toHaveLength(1);
  });

  it('refuses a batch over intake.maxBatch naming /sessions, and one bad item refuses the batch', async () => {
    // Proves maxBatch is enforced by the schema and validation is all-or-nothing per request.
    const { app, engine } = fixture({ intake: { ratePerClient: 5000, maxBatch: 3 } });
    const tooMany = await app.inject({ method: 'POST', url: '/v1/sessions:batch', payload: { sessions: [report(), report(), report(), report()] }, remoteAddress: sidecar });
    expect(tooMany.statusCode).toBe(400);
    expect(tooMany.json()).toMatchObject({ code: 'WS_API_VALIDATION', field: '/sessions' });
    const oneBad = await app.inject({ method: 'POST', url: '/v1/sessions:batch', payload: { sessions: [report(), report({ protocol: 'sctp' })] }, remoteAddress: sidecar });
    expect(oneBad.json()).toMatchObject({ code: 'WS_API_VALIDATION', field: '/sessions/1/protocol' });
    expect(engine.calls).toEqual([]);
  });

  it('rate-limits per caller address by reports, with 429 WS_API_RATE_LIMITED and Retry-After', async () => {
    // Proves the token bucket: a batch costs one token per report, another caller is unaffected,
    // refusals are counted. The bucket's clock is stopped: what the test spends stays spent.
    const engine = new EngineDouble();
    const registry = new Registry();
    const sessions = new SessionIntake(engine, new ReportRateLimiter({ ratePerSecond: 5, burst: 5, now: () => 0 }), registry);
    const { app } = fixture({ engine, registry, sessions, intake: { ratePerClient: 5, maxBatch: 5 } });
    const five = { sessions: [report(), report(), report(), report(), report()] };
    expect((await app.inject({ method: 'POST', url: '/v1/sessions:batch', payload: five, remoteAddress: sidecar })).statusCode).toBe(200);
    const limited = await app.inject({ method: 'POST', url: '/v1/sessions', payload: report(), remoteAddress: sidecar });
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toMatchObject({ code: 'WS_API_RATE_LIMITED' });
    expect(limited.headers['retry-after']).toBe('1');
    expect(engine.reportCount).toBe(5);
    const other = await app.inject({ method: 'POST', url: '/v1/sessions', payload: report({ local: '10.0.0.6:1' }), remoteAddress: '10.0.0.6' });
    expect(other.statusCode).toBe(200);
    expect(await registry.metrics()).toContain('wansteer_intake_rejected_total{transport="http",reason="rate-limited"} 1');
  });
});
