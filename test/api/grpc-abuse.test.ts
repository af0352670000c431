/**
 * Proves the gRPC listener's bounds against the attacks of issue 19, from callers without a
 * token over real loopback HTTP/2 connections, with small limits: connection caps answered in
 * the protocol with a code, read slots that hold a partial message's sender to the stream
 * window while others receive, a deadline for every message, a rate-budget token per call paid
 * before its message is read, and proto3's empty `protocol` read as tcp.
 */
import http2 from 'node:http2';
import { connect as netConnect } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { loadIntakeProto, startGrpc, type GrpcIntake, type GrpcIntakeOptions } from '../../src/api/grpc.js';
import { SessionIntake } from '../../src/api/intake.js';
import { ReportRateLimiter } from '../../src/api/rate-limiter.js';
import { report } from './helpers/app-fixture.js';
import { EngineDouble } from './helpers/engine-double.js';

const BATCH = '/wansteer.v1.SessionIntake/ReportBatch';
const ClientCtor = ((loadIntakeProto().wansteer as grpc.GrpcObject).v1 as grpc.GrpcObject).SessionIntake as grpc.ServiceClientConstructor;
type Client = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

let servers: GrpcIntake[] = [];
let sessions: http2.ClientHttp2Session[] = [];
let clients: grpc.Client[] = [];
afterEach(async () => {
  for (const s of sessions) s.destroy();
  for (const c of clients) c.close();
  await Promise.all(servers.map((s) => s.close(100)));
  servers = [];
  sessions = [];
  clients = [];
});

async function serve(overrides: Partial<GrpcIntakeOptions> = {}) {
  const engine = new EngineDouble();
  const server = await startGrpc({ engine, listen: '127.0.0.1:0', config: { intake: { ratePerClient: 100_000, maxBatch: 100 } }, registry: new Registry(), ...overrides });
  servers.push(server);
  return { engine: (overrides.engine as EngineDouble | undefined) ?? engine, server };
}

/** An HTTP/2 connection to the intake from the loopback address `from`. */
function connect(port: number, from: string): http2.ClientHttp2Session {
  const s = http2.connect(`http://127.0.0.1:${port}`, { createConnection: () => netConnect({ host: '127.0.0.1', port, localAddress: from }) });
  s.on('error', () => {});
  sessions.push(s);
  return s;
}

interface Ended {
  status: number;
  code: string | undefined;
}

/** A unary call by hand: its framed message written as given (`end` false: left unfinished). */
function call(session: http2.ClientHttp2Session, body: Buffer, end: boolean): { ended: Promise<Ended>; written: Promise<void> } {
  const stream = session.request({ ':method': 'POST', ':path': BATCH, 'content-type': 'application/grpc', te: 'trailers' });
  stream.on('error', () => {});
  const ended = new Promise<Ended>((resolve) => {
    const done = (h: http2.IncomingHttpHeaders) => resolve({ status: Number(h['grpc-status']), code: h['ws-error-code'] as string | undefined });
    stream.on('response', (h) => h['grpc-status'] !== undefined && done(h));
    stream.on('trailers', done);
    stream.on('close', () => resolve({ status: -1, code: undefined }));
  });
  const written = new Promise<void>((resolve) => stream.write(body, () => resolve()));
  if (end) stream.end();
  return { ended, written };
}

/** A gRPC frame declaring `declared` bytes, carrying `carried` of them. */
function frame(declared: number, carried: number): Buffer {
  const b = Buffer.alloc(5 + carried, 0x0a);
  b[0] = 0;
  b.writeUInt32BE(declared, 1);
  return b;
}

const settled = (p: Promise<unknown>, ms: number) => Promise.race([p.then(() => true), new Promise((r) => setTimeout(() => r(false), ms))]);

describe('gRPC connection caps', () => {
  it('answers every call on a connection over a cap RESOURCE_EXHAUSTED with WS_API_TOO_MANY_CONNECTIONS, then closes it', async () => {
    const { server } = await serve({ limits: { connections: 3, connectionsPerAddress: 2 } });
    const ok = [connect(server.port, '127.0.0.3'), connect(server.port, '127.0.0.3')];
    for (const s of ok) await new Promise((r) => s.once('connect', r));
    await expect.poll(() => server.connections.connections, { timeout: 10_000 }).toBe(2);
    const third = connect(server.port, '127.0.0.3');
    const refused = await call(third, frame(0, 0), true).ended;
    expect(refused).toEqual({ status: grpc.status.RESOURCE_EXHAUSTED, code: 'WS_API_TOO_MANY_CONNECTIONS' });
    await new Promise((r) => (third.closed ? r(undefined) : third.once('close', r)));
    // The admitted ones serve: an empty batch is a schema error, answered by the intake itself.
    expect(await call(ok[0]!, frame(0, 0), true).ended).toEqual({ status: grpc.status.INVALID_ARGUMENT, code: 'WS_API_VALIDATION' });
    const other = connect(server.port, '127.0.0.4');
    expect((await call(other, frame(0, 0), true).ended).code).toBe('WS_API_VALIDATION');
    const overTotal = connect(server.port, '127.0.0.5');
    expect(await call(overTotal, frame(0, 0), true).ended).toEqual({ status: grpc.status.RESOURCE_EXHAUSTED, code: 'WS_API_TOO_MANY_CONNECTIONS' });
  });
});

describe('gRPC partial messages', () => {
  it('lets `readers` calls receive at once; the others wait with their senders held by flow control; all end at the message deadline, and the slots come back', async () => {
    // Six calls each send 300 KB of a declared 400 KB message. Two get read slots and take all
    // 300 KB; the other four cannot get past the 64 KiB stream window, so their writes never finish.
    const { server, engine } = await serve({ maxMessageBytes: 512 * 1024, limits: { readers: 2, readersPerAddress: 2, messageTimeoutMs: 5_000 } });
    const session = connect(server.port, '127.0.0.3');
    const calls = Array.from({ length: 6 }, () => call(session, frame(400_000, 300_000), false));
    let written = 0;
    for (const c of calls) void c.written.then(() => written++);
    await expect.poll(() => written, { timeout: 4_500 }).toBe(2);
    expect(await settled(Promise.all(calls.map((c) => c.written)), 300)).toBe(false);
    expect(written).toBe(2);
    // At the deadline the readers end DEADLINE_EXCEEDED; a waiter ends RESOURCE_EXHAUSTED (or,
    // given a slot as the readers went, DEADLINE_EXCEEDED a deadline later).
    const ends = await Promise.all(calls.map((c) => c.ended));
    const codes = ends.map((e) => `${e.status} ${e.code}`);
    expect(codes.filter((c) => c === `${grpc.status.DEADLINE_EXCEEDED} WS_API_REQUEST_TIMEOUT`).length).toBeGreaterThanOrEqual(2);
    expect(codes.every((c) => c === `${grpc.status.DEADLINE_EXCEEDED} WS_API_REQUEST_TIMEOUT` || c === `${grpc.status.RESOURCE_EXHAUSTED} WS_API_OVERLOADED`)).toBe(true);
    expect(engine.calls).toEqual([]);
    // Slots and deadlines are gone with the calls: a real client is served.
    const client = new ClientCtor(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as unknown as Client;
    clients.push(client);
    const value = await new Promise<any>((resolve, reject) => client.report!(report({ local: '127.0.0.1:1' }), (e: unknown, v: unknown) => (e ? reject(e) : resolve(v)))); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(value.outcome.status).toBe('steered');
  });

  it('lets `waitingPerAddress` calls of one address wait for a slot and refuses the next at once, while another address is served', async () => {
    const { server, engine } = await serve({ maxMessageBytes: 512 * 1024, limits: { readers: 2, readersPerAddress: 1, waitingPerAddress: 2, messageTimeoutMs: 5_000 } });
    const session = connect(server.port, '127.0.0.3');
    // One reads, two wait, two are refused: they end now, not at the deadline.
    const calls = Array.from({ length: 5 }, () => call(session, frame(400_000, 300_000), false));
    let ended = 0;
    for (const c of calls) void c.ended.then(() => ended++);
    await expect.poll(() => ended, { timeout: 4_000 }).toBe(2);
    const refused = (await Promise.all(calls.map((c) => settled(c.ended, 0).then((done) => (done ? c.ended : undefined))))).filter(Boolean);
    expect(refused).toEqual([
      { status: grpc.status.RESOURCE_EXHAUSTED, code: 'WS_API_OVERLOADED' },
      { status: grpc.status.RESOURCE_EXHAUSTED, code: 'WS_API_OVERLOADED' },
    ]);
    expect(await settled(Promise.all(calls.map((c) => c.ended)), 200)).toBe(false);
    // Another address has a slot of its own and nobody waiting: its call is served.
    const other = connect(server.port, '127.0.0.4');
    expect((await call(other, frame(0, 0), true).ended).code).toBe('WS_API_VALIDATION');
    expect(engine.calls).toEqual([]);
  });

  it('refuses a message declared over the size limit at its length prefix', async () => {
    const { server } = await serve({ maxMessageBytes: 64 * 1024 });
    const session = connect(server.port, '127.0.0.3');
    const ended = await call(session, frame(2_000_000, 10), false).ended;
    expect(ended.status).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });
});

/** An intake with 2 tokens a caller and a stopped clock: what a test spends stays spent. */
function twoTokens(engine: EngineDouble): SessionIntake {
  return new SessionIntake(engine, new ReportRateLimiter({ ratePerSecond: 1, burst: 2, now: () => 0 }), new Registry());
}

describe('gRPC rate budget and proto3 defaults', () => {
  it('charges each call a token before its message is read: refused calls run out of budget too', async () => {
    const engine = new EngineDouble();
    const { server } = await serve({ engine, sessions: twoTokens(engine), config: { intake: { ratePerClient: 1, maxBatch: 2 } } });
    const session = connect(server.port, '127.0.0.3');
    // Burst 2: two empty batches are refused by the schema (each paid its token), the third by the budget.
    expect((await call(session, frame(0, 0), true).ended).code).toBe('WS_API_VALIDATION');
    expect((await call(session, frame(0, 0), true).ended).code).toBe('WS_API_VALIDATION');
    expect(await call(session, frame(0, 0), true).ended).toEqual({ status: grpc.status.RESOURCE_EXHAUSTED, code: 'WS_API_RATE_LIMITED' });
    expect(engine.calls).toEqual([]);
  });

  it('turns away a new connection of a caller whose budget is spent: its call gets WS_API_RATE_LIMITED', async () => {
    const engine = new EngineDouble();
    const { server } = await serve({ engine, sessions: twoTokens(engine), config: { intake: { ratePerClient: 1, maxBatch: 2 } } });
    const first = connect(server.port, '127.0.0.3');
    expect((await call(first, frame(0, 0), true).ended).code).toBe('WS_API_VALIDATION');
    expect((await call(first, frame(0, 0), true).ended).code).toBe('WS_API_VALIDATION');
    const broke = connect(server.port, '127.0.0.3');
    expect(await call(broke, frame(0, 0), true).ended).toEqual({ status: grpc.status.RESOURCE_EXHAUSTED, code: 'WS_API_RATE_LIMITED' });
    expect((await call(connect(server.port, '127.0.0.4'), frame(0, 0), true).ended).code).toBe('WS_API_VALIDATION');
  });

  it('reads an empty protocol (proto3 default, as protobufjs writes it) as tcp', async () => {
    const { server, engine } = await serve();
    const client = new ClientCtor(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as unknown as Client;
    clients.push(client);
    const sent = { ...report({ local: '127.0.0.1:7' }), protocol: '', request: { authority: 'boss.example', path: '/', method: 'GET', scheme: '', sourceNamespace: '' } };
    const value = await new Promise<any>((resolve, reject) => client.report!(sent, (e: unknown, v: unknown) => (e ? reject(e) : resolve(v)))); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(value.outcome).toMatchObject({ status: 'steered', flow: { protocol: 'tcp' } });
    expect(engine.calls[0]!.reports[0]).not.toHaveProperty('protocol');
  });
});
