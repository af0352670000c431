/**
 * Proves the HTTP listener's bounds against the attacks of issue 19, each from a caller without
 * a token over a real loopback socket, with small limits so that a few connections reach them:
 * connection caps (total and per address), the budget for bodies in flight, header and request
 * deadlines that cut a slow sender, a body nesting too deep refused before it is read whole,
 * every request paying its caller's rate budget before it is parsed, and a WS_* code on every
 * refusal, those of Node's HTTP parser included.
 */
import { connect } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { SessionIntake } from '../../src/api/intake.js';
import { ReportRateLimiter } from '../../src/api/rate-limiter.js';
import { REFUSAL_DELAY_MS } from '../../src/api/http-listener.js';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { auth, fixture, report } from './helpers/app-fixture.js';
import { EngineDouble } from './helpers/engine-double.js';
import { postHead, RawClient, sleep } from './helpers/raw-http.js';

let running: RunningServer | undefined;
let clients: RawClient[] = [];
afterEach(async () => {
  for (const c of clients) c.destroy();
  clients = [];
  await running?.close();
  running = undefined;
});

async function serve(overrides: Parameters<typeof fixture>[0] = {}) {
  const f = fixture(overrides);
  running = await startServer(f.app, '127.0.0.1:0', { handleSignals: false });
  return { ...f, port: running.port };
}

async function open(port: number, from: string): Promise<RawClient> {
  const c = await RawClient.open(port, from);
  clients.push(c);
  return c;
}

/** A complete, valid request on `c`; its answer. */
async function healthz(c: RawClient) {
  c.write('GET /healthz HTTP/1.1\r\nhost: agent\r\n\r\n');
  return c.answer();
}

describe('HTTP connection caps', () => {
  it('answers a connection over the per-address or the total cap 503 WS_API_TOO_MANY_CONNECTIONS and closes it; a closed one frees its place', async () => {
    const { app, port } = await serve({ http: { connections: 5, connectionsPerAddress: 3 } });
    const a = await Promise.all([1, 2, 3].map(() => open(port, '127.0.0.3')));
    for (const c of a) expect((await healthz(c))?.status).toBe(200);
    const fourth = await open(port, '127.0.0.3');
    expect(await fourth.answer()).toMatchObject({ status: 503, code: 'WS_API_TOO_MANY_CONNECTIONS' });
    expect(await fourth.closedWithin()).toBe(true);

    const b = await Promise.all([1, 2].map(() => open(port, '127.0.0.4')));
    for (const c of b) expect((await healthz(c))?.status).toBe(200);
    const overTotal = await open(port, '127.0.0.5');
    const refused = await overTotal.answer();
    expect(refused).toMatchObject({ status: 503, code: 'WS_API_TOO_MANY_CONNECTIONS' });
    expect(refused!.body).toMatch(/limit of 5 connections/);
    expect(app.connections.connections).toBe(5);

    a[0]!.destroy();
    await expect.poll(() => app.connections.connectionsFrom('127.0.0.3'), { timeout: 10_000 }).toBe(2);
    expect((await healthz(await open(port, '127.0.0.3')))?.status).toBe(200);
  });
});

describe('bodies held while they arrive', () => {
  it('holds at most the in-flight budget beyond 64 KiB a body: the rest are 503 WS_API_OVERLOADED, and the budget comes back', async () => {
    // 6 callers each send all but the last KiB of a 200 KiB batch: 136 KiB each counts against
    // a 300 KiB budget, so two are held and four refused; the two are cut by the request deadline.
    const { port, engine } = await serve({ limits: { batch: 512 * 1024 }, http: { bodyBytesInFlight: 300 * 1024, requestTimeoutMs: 2_000 } });
    const senders = await Promise.all([3, 4, 5, 6, 7, 8].map((n) => open(port, `127.0.0.${n}`)));
    for (const c of senders) {
      c.write(postHead('/v1/sessions:batch', 200 * 1024));
      c.write(Buffer.alloc(199 * 1024, 0x20));
    }
    for (const c of senders) await c.closedWithin();
    const codes = senders.map((c) => c.answers[0]?.code).sort();
    expect(codes).toEqual(['WS_API_OVERLOADED', 'WS_API_OVERLOADED', 'WS_API_OVERLOADED', 'WS_API_OVERLOADED', 'WS_API_REQUEST_TIMEOUT', 'WS_API_REQUEST_TIMEOUT']);
    expect(engine.calls).toEqual([]);

    // The budget is whole again: a valid batch of ~150 KiB goes through.
    const sessions = Array.from({ length: 100 }, (_, i) => report({ local: `127.0.0.9:${1000 + i}`, request: { authority: 'boss.example', path: `/${'p'.repeat(1400)}`, method: 'GET' } }));
    const body = JSON.stringify({ sessions });
    expect(body.length).toBeGreaterThan(140 * 1024);
    const c = await open(port, '127.0.0.9');
    c.write(postHead('/v1/sessions:batch', Buffer.byteLength(body)) + body);
    expect((await c.answer())?.status).toBe(200);
    expect(engine.reportCount).toBe(100);
  });
});

describe('deadlines', () => {
  it('cuts a body trickled a byte a second at the request deadline with 408 WS_API_REQUEST_TIMEOUT', async () => {
    const { port, engine } = await serve({ http: { requestTimeoutMs: 1_500, headersTimeoutMs: 1_000 } });
    const c = await open(port, '127.0.0.3');
    c.write(postHead('/v1/sessions', 1000));
    const trickle = setInterval(() => c.write(' '), 1000);
    try {
      expect(await c.closedWithin(15_000)).toBe(true);
    } finally {
      clearInterval(trickle);
    }
    expect(c.answers[0]).toMatchObject({ status: 408, code: 'WS_API_REQUEST_TIMEOUT' });
    expect(engine.calls).toEqual([]);
  });

  it('cuts headers that never end at the header deadline with 408 WS_API_REQUEST_TIMEOUT; an idle keep-alive connection outlives it', async () => {
    const { port } = await serve({ http: { requestTimeoutMs: 3_000, headersTimeoutMs: 1_000 } });
    const idle = await open(port, '127.0.0.4');
    expect((await healthz(idle))?.status).toBe(200);
    const slow = await open(port, '127.0.0.3');
    slow.write('GET /healthz HTTP/1.1\r\nhost: agent\r\n');
    const drip = setInterval(() => slow.write('x-drip: 1\r\n'), 300);
    try {
      expect(await slow.closedWithin(15_000)).toBe(true);
    } finally {
      clearInterval(drip);
    }
    expect(slow.answers[0]).toMatchObject({ status: 408, code: 'WS_API_REQUEST_TIMEOUT' });
    // The keep-alive connection has been idle for longer than the header deadline, and still serves.
    idle.answers.length = 0;
    expect((await healthz(idle))?.status).toBe(200);
  });
});

describe('cost before parsing', () => {
  it('refuses a body nesting too deep at the bracket, 400 WS_API_JSON_TOO_DEEP, before the rest of it is sent', async () => {
    const { port, engine } = await serve();
    const c = await open(port, '127.0.0.3');
    c.write(postHead('/v1/sessions:batch', 150_000));
    c.write(`{"sessions":${'['.repeat(100)}`);
    expect(await c.answer()).toMatchObject({ status: 400, code: 'WS_API_JSON_TOO_DEEP' });
    expect(await c.closedWithin()).toBe(true);
    expect(engine.calls).toEqual([]);
  });

  it('reads no more than 1 KiB of a body on a route that takes none', async () => {
    const { app, store } = fixture();
    await store.create('boss-fibre', { match: { dscp: 46 }, action: { links: ['fibre'], mode: 'redirect' } });
    const res = await app.inject({ method: 'DELETE', url: '/v1/policies/boss-fibre', headers: { ...auth, 'content-type': 'application/json' }, payload: JSON.stringify({ pad: 'x'.repeat(2048) }) });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ code: 'WS_API_PAYLOAD_TOO_LARGE' });
    expect(store.get('boss-fibre')).toBeDefined();
  });

  it('takes JSON up to the depth limit', async () => {
    // Proves the scan counts brackets only outside strings, and lets legitimate nesting through.
    const { app } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/explain', payload: { authority: 'boss.example', headers: { 'x-user': '[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{"' } }, remoteAddress: '10.0.0.5' });
    expect(res.statusCode).toBe(200);
  });

  it('charges every request to its caller before parsing, refused ones too: bad bodies run out of budget like good ones', async () => {
    // 10 tokens and a stopped clock: a 7 KiB body costs 4 before it is parsed, refused (malformed) or not.
    const engine = new EngineDouble();
    const registry = new Registry();
    const sessions = new SessionIntake(engine, new ReportRateLimiter({ ratePerSecond: 1, burst: 10, now: () => 0 }), registry);
    const { app } = fixture({ engine, registry, sessions, intake: { ratePerClient: 1, maxBatch: 10 } });
    const junk = `{"sessions": ${' '.repeat(7 * 1024)}`;
    const post = () => app.inject({ method: 'POST', url: '/v1/sessions:batch', headers: { 'content-type': 'application/json' }, payload: junk, remoteAddress: '10.0.0.5' });
    expect((await post()).json()).toMatchObject({ code: 'WS_API_MALFORMED_JSON' });
    expect((await post()).json()).toMatchObject({ code: 'WS_API_MALFORMED_JSON' });
    const limited = await post();
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toMatchObject({ code: 'WS_API_RATE_LIMITED' });
    expect(limited.headers['retry-after']).toBeDefined();
    expect(engine.calls).toEqual([]);
    // A GET pays too (the 2 tokens left); another caller has its own budget.
    expect((await app.inject({ url: '/v1/links', remoteAddress: '10.0.0.5' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/v1/links', remoteAddress: '10.0.0.5' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/v1/links', remoteAddress: '10.0.0.5' })).statusCode).toBe(429);
    expect((await app.inject({ url: '/v1/links', remoteAddress: '10.0.0.6' })).statusCode).toBe(200);
    expect(await registry.metrics()).toContain('wansteer_intake_rejected_total{transport="http",reason="rate-limited"} 1');
  });

  it('turns away a new connection of a caller whose budget is spent, 429 as it connects; others are served', async () => {
    // 3 tokens and a stopped clock: three requests spend them, the next connection gets its 429 unasked.
    const engine = new EngineDouble();
    const sessions = new SessionIntake(engine, new ReportRateLimiter({ ratePerSecond: 1, burst: 3, now: () => 0 }), new Registry());
    const { port } = await serve({ engine, sessions });
    const c = await open(port, '127.0.0.3');
    for (let i = 0; i < 3; i++) {
      c.answers.length = 0;
      expect((await healthz(c))?.status).toBe(200);
    }
    const broke = await open(port, '127.0.0.3');
    const refused = await broke.answer();
    expect(refused).toMatchObject({ status: 429, code: 'WS_API_RATE_LIMITED' });
    expect(refused!.headers).toMatch(/\r\nretry-after: \d+/i);
    expect(await broke.closedWithin()).toBe(true);
    expect((await healthz(await open(port, '127.0.0.4')))?.status).toBe(200);
  });

  it('turns away a new connection of a caller refused a body its budget cannot cover, until it can; others are served', async () => {
    // 10 tokens, a clock the test moves: a GET spends 1, a 30 KiB batch (15 tokens) is refused,
    // and from then on a new connection is turned away unasked, though 9 tokens are left.
    let now = 0;
    const engine = new EngineDouble();
    const sessions = new SessionIntake(engine, new ReportRateLimiter({ ratePerSecond: 1, burst: 10, now: () => now }), new Registry());
    const { port } = await serve({ engine, sessions, intake: { ratePerClient: 1, maxBatch: 100 } });
    const c = await open(port, '127.0.0.3');
    expect((await healthz(c))?.status).toBe(200);
    c.answers.length = 0;
    c.write(postHead('/v1/sessions:batch', 30 * 1024));
    expect(await c.answer()).toMatchObject({ status: 429, code: 'WS_API_RATE_LIMITED' });

    const turned = await open(port, '127.0.0.3');
    const refused = await turned.answer();
    expect(refused).toMatchObject({ status: 429, code: 'WS_API_RATE_LIMITED' });
    expect(refused!.headers).toMatch(/\r\nretry-after: 1$/im); // 1 token short, at 1 a second
    expect(await turned.closedWithin()).toBe(true);
    expect((await healthz(await open(port, '127.0.0.4')))?.status).toBe(200);

    now += 1_000; // 10 tokens: what the refused batch would be charged, capped at the burst
    expect((await healthz(await open(port, '127.0.0.3')))?.status).toBe(200);
    expect(engine.calls).toEqual([]);
  });

  it('does not read what a turned-away caller sends: its body stays unread until the connection is closed', async () => {
    const sessions = new SessionIntake(new EngineDouble(), new ReportRateLimiter({ ratePerSecond: 1, burst: 1, now: () => 0 }), new Registry());
    const { port } = await serve({ sessions });
    expect((await healthz(await open(port, '127.0.0.3')))?.status).toBe(200); // the one token
    // Half-open allowed, so that the agent's FIN after its answer does not end this side's writing.
    const broke = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.3', allowHalfOpen: true });
    broke.on('error', () => {});
    let answer = '';
    broke.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    const closed = new Promise<'closed'>((resolve) => broke.once('close', () => resolve('closed')));
    await new Promise((resolve) => broke.once('connect', resolve));
    // More than the loopback's socket buffers hold: the write drains only if the agent reads it.
    broke.write(postHead('/v1/sessions:batch', 64 * 1024 * 1024));
    const body = Buffer.alloc(1024 * 1024, 0x20);
    for (let i = 0; i < 32; i++) broke.write(body);
    const drained = new Promise<'drained'>((resolve) => broke.once('drain', () => resolve('drained')));
    expect(await Promise.race([drained, closed])).toBe('closed');
    expect(answer).toMatch(/^HTTP\/1\.1 429 [^]*"code":"WS_API_RATE_LIMITED"/);
  });

  it('answers a turned-away connection no sooner than the refusal delay: a caller that reconnects on every answer makes one attempt a second', async () => {
    const sessions = new SessionIntake(new EngineDouble(), new ReportRateLimiter({ ratePerSecond: 1, burst: 1, now: () => 0 }), new Registry());
    const { port } = await serve({ sessions });
    expect((await healthz(await open(port, '127.0.0.3')))?.status).toBe(200); // the one token
    const at = performance.now();
    const turned = await open(port, '127.0.0.3');
    expect(await turned.answer()).toMatchObject({ status: 429, code: 'WS_API_RATE_LIMITED' });
    // A lower bound only (timers fire late, never early, bar a millisecond of rounding).
    expect(performance.now() - at).toBeGreaterThanOrEqual(REFUSAL_DELAY_MS - 50);
    expect(await turned.closedWithin()).toBe(true);
  });

  it('answers every turned-away connection, also beyond the refusals it lets linger', async () => {
    const sessions = new SessionIntake(new EngineDouble(), new ReportRateLimiter({ ratePerSecond: 1, burst: 1, now: () => 0 }), new Registry());
    const { port } = await serve({ sessions });
    expect((await healthz(await open(port, '127.0.0.3')))?.status).toBe(200); // the one token
    const turned = await Promise.all(Array.from({ length: 80 }, () => open(port, '127.0.0.3')));
    for (const t of turned) {
      expect(await t.answer()).toMatchObject({ status: 429, code: 'WS_API_RATE_LIMITED' });
      expect(await t.closedWithin()).toBe(true);
    }
  });

  it('charges a body without Content-Length as it arrives', async () => {
    const { port, engine } = await serve({ intake: { ratePerClient: 10, maxBatch: 10 } });
    const c = await open(port, '127.0.0.3');
    c.write('POST /v1/sessions:batch HTTP/1.1\r\nhost: agent\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n');
    const chunk = ' '.repeat(8 * 1024);
    for (let i = 0; i < 4 && !c.socket.destroyed; i++) {
      c.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      await sleep(50);
    }
    expect(await c.answer()).toMatchObject({ status: 429, code: 'WS_API_RATE_LIMITED' });
    // Refused in mid-body: the connection closes after the answer, the rest is never read.
    expect(c.answers[0]!.headers).toMatch(/\r\nconnection: close/i);
    expect(await c.closedWithin()).toBe(true);
    expect(engine.calls).toEqual([]);
  });
});

describe("refusals by Node's HTTP parser carry a code", () => {
  it.each([
    ['a PROXY protocol header', 'PROXY TCP4 192.0.2.1 192.0.2.2 40000 9090\r\nGET /healthz HTTP/1.1\r\nhost: agent\r\n\r\n', 400, 'WS_API_MALFORMED_REQUEST'],
    ['a request line that is not HTTP', 'HELLO\r\n\r\n', 400, 'WS_API_MALFORMED_REQUEST'],
    ['headers over the size limit', `GET /healthz HTTP/1.1\r\nhost: agent\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'WS_API_HEADERS_TOO_LARGE'],
    ['both Content-Length and chunked', 'POST /v1/sessions HTTP/1.1\r\nhost: agent\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'WS_API_MALFORMED_REQUEST'],
    ['a URL that does not decode', 'GET /v1/policies/%E0%A4%A HTTP/1.1\r\nhost: agent\r\n\r\n', 400, 'WS_API_BAD_REQUEST'],
  ])('%s', async (_what, raw, status, code) => {
    const { port } = await serve();
    const c = await open(port, '127.0.0.3');
    c.write(raw);
    expect(await c.answer()).toMatchObject({ status, code });
  });

  it('refuses a body in another charset with 415 WS_API_UNSUPPORTED_MEDIA_TYPE, not read as UTF-8', async () => {
    const { app, engine } = fixture();
    const res = await app.inject({
      method: 'POST', url: '/v1/sessions', headers: { 'content-type': 'application/json; charset=utf-16' },
      payload: Buffer.from(JSON.stringify(report()), 'utf16le'), remoteAddress: '10.0.0.5',
    });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toMatchObject({ code: 'WS_API_UNSUPPORTED_MEDIA_TYPE' });
    expect(engine.calls).toEqual([]);
    const utf8 = await app.inject({ method: 'POST', url: '/v1/sessions', headers: { 'content-type': 'application/json; charset=UTF-8' }, payload: JSON.stringify(report()), remoteAddress: '10.0.0.5' });
    expect(utf8.statusCode).toBe(200);
  });
});
