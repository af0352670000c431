// Proves the gRPC intake over a real server and a real @grpc/grpc-js client on the loopback:
// unary, batch and client-streaming reports reach the engine with the peer as caller, streams
// are batched into few engine calls, and bad input is INVALID_ARGUMENT with the code in metadata.
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import { loadIntakeProto, startGrpc, type GrpcIntake, type GrpcIntakeOptions } from '../../src/api/grpc.js';
import { SessionIntake } from '../../src/api/intake.js';
import { ReportRateLimiter } from '../../src/api/rate-limiter.js';
import { EngineDouble } from './helpers/engine-double.js';
import { report } from './helpers/app-fixture.js';
import { PolicyStoreDouble } from './helpers/store-double.js';

type Client = grpc.Client & Record<string, (...args: unknown[]) => unknown>;
const ClientCtor = ((loadIntakeProto().wansteer as grpc.GrpcObject).v1 as grpc.GrpcObject).SessionIntake as grpc.ServiceClientConstructor;

let servers: GrpcIntake[] = [];
let clients: grpc.Client[] = [];
afterEach(async () => {
  for (const c of clients) c.close();
  await Promise.all(servers.map((s) => s.close(100)));
  servers = [];
  clients = [];
});

/** A report from this very test process: local is 127.0.0.1, the peer address the server sees. */
const own = (overrides: Record<string, unknown> = {}) => report({ local: '127.0.0.1:40000', ...overrides });

async function serve(overrides: Partial<GrpcIntakeOptions> = {}) {
  const engine = new EngineDouble();
  const registry = new Registry();
  const server = await startGrpc({ engine, listen: '127.0.0.1:0', config: { intake: { ratePerClient: 100_000, maxBatch: 100 } }, registry, ...overrides });
  servers.push(server);
  const client = new ClientCtor(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as unknown as Client;
  clients.push(client);
  return { engine: (overrides.engine as EngineDouble | undefined) ?? engine, registry, client };
}

function unary(client: Client, method: string, request: unknown): Promise<{ value?: any; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    client[method]!(request, (error: grpc.ServiceError | null, value: unknown) => resolve(error ? { error } : { value }));
  });
}

function stream(client: Client, messages: unknown[]): Promise<{ value?: any; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    const call = client.reportStream!((error: grpc.ServiceError | null, value: unknown) => resolve(error ? { error } : { value })) as grpc.ClientWritableStream<unknown>;
    for (const m of messages) call.write(m);
    call.end();
  });
}

const codeOf = (e: grpc.ServiceError | undefined) => e?.metadata.get('ws-error-code')[0];

/** An intake whose buckets hold `tokens` and never refill (a stopped clock): what a test spends stays spent. */
function stoppedClock(engine: EngineDouble, tokens: number, registry = new Registry()): SessionIntake {
  return new SessionIntake(engine, new ReportRateLimiter({ ratePerSecond: 1, burst: tokens, now: () => 0 }), registry);
}

describe('gRPC SessionIntake', () => {
  it('Report: steers one report with the peer address as caller', async () => {
    // Proves the unary path end to end over a real connection.
    const { client, engine } = await serve();
    const { value } = await unary(client, 'report', own());
    expect(value.outcome).toMatchObject({ status: 'steered', policy: 'boss-fibre', link: 'fibre', flow: { src: '127.0.0.1', sport: 40000, dport: 443 } });
    expect(engine.calls[0]?.caller).toBe('127.0.0.1');
    expect(engine.calls[0]?.reports[0]).toEqual(own());
  });

  it('Report: a spoofed local address is PERMISSION_DENIED with WS_API_SPOOFED_LOCAL, nothing stored', async () => {
    // Proves the same spoof semantics as HTTP, coded in the trailing metadata.
    const { client, engine } = await serve();
    const { error } = await unary(client, 'report', report());
    expect(error?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(codeOf(error)).toBe('WS_API_SPOOFED_LOCAL');
    expect(engine.stored).toEqual([]);
  });

  it('Report: schema violations are INVALID_ARGUMENT with the code and field, and the server keeps serving', async () => {
    // Proves the gRPC intake checks reports with the HTTP schema and names the field.
    const { client, engine, registry } = await serve();
    const { error } = await unary(client, 'report', own({ direction: 'sideways' }));
    expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(codeOf(error)).toBe('WS_API_VALIDATION');
    expect(error?.metadata.get('ws-error-field')[0]).toBe('/direction');
    const noRequest = await unary(client, 'report', { direction: 'inbound', local: '127.0.0.1:1', remote: '10.0.0.1:80' });
    expect(noRequest.error?.metadata.get('ws-error-field')[0]).toBe('/request');
    expect(engine.calls).toEqual([]);
    expect((await unary(client, 'report', own())).value.outcome.status).toBe('steered');
    expect(await registry.metrics()).toContain('wansteer_intake_rejected_total{transport="grpc",reason="invalid"} 2');
  });

  it('ReportBatch: one outcome per report in order, mixed outcomes, one engine call', async () => {
    // Proves the batch RPC mirrors POST /v1/sessions:batch.
    const { client, engine } = await serve();
    const sessions = [own(), own({ request: { authority: 'x.example', path: '/', method: 'GET' } }), report()];
    const { value } = await unary(client, 'reportBatch', { sessions });
    expect(value.outcomes.map((o: { status: string }) => o.status)).toEqual(['steered', 'unmatched', 'rejected']);
    expect(value.outcomes[2]).toMatchObject({ reason: 'spoofed-local' });
    expect(value).toMatchObject({ steered: 1, unmatched: 1, rejected: 1 });
    expect(engine.calls).toHaveLength(1);
  });

  it('ReportBatch: over maxBatch, or empty, is INVALID_ARGUMENT naming /sessions', async () => {
    // Proves the batch limit and all-or-nothing validation hold over gRPC.
    const { client, engine } = await serve({ config: { intake: { ratePerClient: 1000, maxBatch: 2 } } });
    const tooMany = await unary(client, 'reportBatch', { sessions: [own(), own(), own()] });
    expect(tooMany.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(tooMany.error?.metadata.get('ws-error-field')[0]).toBe('/sessions');
    const empty = await unary(client, 'reportBatch', { sessions: [] });
    expect(empty.error?.metadata.get('ws-error-field')[0]).toBe('/sessions');
    expect(engine.calls).toEqual([]);
  });

  it('ReportStream: hands reports to the engine in batches of streamBatch, sums up, invalid ones counted not fatal', async () => {
    // Proves the high-rate path: with the flush timer out of the way, 2000 valid reports are 31
    // engine calls of 64 and one of the 16 left at the half-close, whatever the machine's speed.
    const { client, engine } = await serve({ streamBatch: 64, streamFlushMs: 600_000 });
    const messages = Array.from({ length: 2000 }, (_, i) => own({ local: `127.0.0.1:${10_000 + i}` }));
    messages.splice(500, 0, own({ protocol: 'sctp' }), own({ local: 'nope' }));
    const { value } = await stream(client, messages);
    expect(value).toMatchObject({ received: 2002, steered: 2000, unmatched: 0, rejected: 2, rejectedByReason: { invalid: 2 } });
    expect(value.firstError).toMatch(/\/protocol/);
    expect(engine.reportCount).toBe(2000);
    expect(engine.calls.map((c) => c.reports.length)).toEqual([...Array<number>(31).fill(64), 16]);
  });

  it('ReportStream: a report that does not fill a batch reaches the engine after streamFlushMs, while the stream stays open', async () => {
    // Proves the flush timer: one report, no half-close, and the engine has it.
    const { client, engine } = await serve({ streamBatch: 256, streamFlushMs: 5 });
    const call = client.reportStream!(() => {}) as grpc.ClientWritableStream<unknown>;
    call.write(own());
    await expect.poll(() => engine.reportCount, { timeout: 10_000 }).toBe(1);
    expect(engine.calls).toHaveLength(1);
    call.end();
  });

  it('ReportStream: the rate limit admits what the bucket holds and counts the rest', async () => {
    // Proves per-client rate limiting on the stream: a 10-token bucket (its clock stopped) lets 10 of 25 through.
    const engine = new EngineDouble();
    const sessions = stoppedClock(engine, 10);
    const { client } = await serve({ engine, sessions, config: { intake: { ratePerClient: 1, maxBatch: 10 } } });
    const { value } = await stream(client, Array.from({ length: 25 }, () => own()));
    expect(value).toMatchObject({ received: 25, steered: 10, rejected: 15, rejectedByReason: { 'rate-limited': 15 } });
    expect(engine.reportCount).toBe(10);
    const { error } = await unary(client, 'report', own());
    expect(error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(codeOf(error)).toBe('WS_API_RATE_LIMITED');
  });

  it('refuses a message over the size limit with RESOURCE_EXHAUSTED', async () => {
    // Proves the oversize guard on gRPC: the message is refused before it is decoded.
    const { client, engine } = await serve({ maxMessageBytes: 1024 });
    const { error } = await unary(client, 'report', own({ request: { authority: 'boss.example', path: `/${'a'.repeat(4096)}`, method: 'GET' } }));
    expect(error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(engine.calls).toEqual([]);
  });

  it('shares one rate limit with the HTTP intake when given the same SessionIntake', async () => {
    // Proves a client cannot double its rate by using both transports.
    const engine = new EngineDouble();
    const registry = new Registry();
    const sessions = stoppedClock(engine, 3, registry);
    const app = buildApp({ engine, store: new PolicyStoreDouble(), registry, intake: { ratePerClient: 1, maxBatch: 3 }, sessions });
    const http = await app.inject({ method: 'POST', url: '/v1/sessions:batch', payload: { sessions: [own(), own(), own()] }, remoteAddress: '127.0.0.1' });
    expect(http.statusCode).toBe(200);
    const { client } = await serve({ engine, sessions, config: { intake: { ratePerClient: 1, maxBatch: 3 } } });
    const { error } = await unary(client, 'report', own());
    expect(codeOf(error)).toBe('WS_API_RATE_LIMITED');
  });
});
