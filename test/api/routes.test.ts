// Proves the read-only routes (links, flows, explain, health, metrics), the OpenAPI document,
// the 404 answer, and that 5xx answers hide their cause from clients while the log keeps it.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SourceStates } from '../../src/steering/source-states.js';
import { pino } from 'pino';
import { fixture, report } from './helpers/app-fixture.js';
import { StoreErrorDouble } from './helpers/store-double.js';

describe('read routes', () => {
  it('lists links with their live health', async () => {
    // Proves /v1/links serves the engine's link status, nulls and optionals included.
    const { app } = fixture();
    const res = await app.inject({ url: '/v1/links' });
    expect(res.statusCode).toBe(200);
    expect(res.json().items).toEqual([
      { name: 'fibre', interface: 'eth1', ifindex: 3, up: true, activeFor: ['boss-fibre'], rttMs: 4.2 },
      { name: 'lte', interface: 'wwan0', ifindex: null, up: false, activeFor: [], reason: 'no carrier' },
    ]);
  });

  it('gives the node at a glance: readiness and why, sources, links, each policy as the engine holds it', async () => {
    // Proves /v1/status carries the engine's own views and the agent's source states.
    const sources = new SourceStates();
    sources.set('routes', 'synced');
    sources.set('policies', 'snapshot');
    const forbidden = { failure: 'forbidden', message: 'wanpolicies.wansteer.io is forbidden: User "system:serviceaccount:wansteer-system:wansteer-agent" cannot list resource "wanpolicies"' };
    sources.watchProblem('policies', () => forbidden);
    sources.watchRefused(() => [{ name: 'late', code: 'WS_POLICY_DUPLICATE_MATCH', message: 'takes the sessions of boss-fibre' }]);
    const { app, engine } = fixture({ sources });
    engine.isReady = false;
    const res = await app.inject({ url: '/v1/status' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      ready: false,
      waitingFor: ['policies: the WanPolicies are not listed yet'],
      sources: { routes: 'synced', policies: 'snapshot' },
      sourceProblems: { policies: forbidden },
      links: engine.links(),
      policies: engine.policyStatus(),
      refusedPolicies: [{ name: 'late', code: 'WS_POLICY_DUPLICATE_MATCH', message: 'takes the sessions of boss-fibre' }],
    });
  });

  it('lists steered flows a page at a time, filtered by policy, limited, with a cursor', async () => {
    // Proves /v1/flows passes its filter and cursor through, answers `next` while there is more,
    // and reads the query string's numbers strictly (1e9 is not 1, nor a billion: it is refused).
    const { app } = fixture();
    await app.inject({ method: 'POST', url: '/v1/sessions:batch', payload: { sessions: [report(), report({ local: '10.0.0.5:2' })] }, remoteAddress: '10.0.0.5' });
    const all = await app.inject({ url: '/v1/flows?policy=boss-fibre' });
    expect(all.json().items).toHaveLength(2);
    const one = await app.inject({ url: '/v1/flows?limit=1' });
    expect(one.json().items).toEqual([{ protocol: 'tcp', src: '10.0.0.5', sport: 43210, dst: '192.0.2.10', dport: 443, policy: 'boss-fibre' }]);
    expect(one.json().next).toBeDefined();
    const rest = await app.inject({ url: `/v1/flows?limit=1&after=${one.json().next}` });
    expect(rest.json()).toEqual({ items: [{ protocol: 'tcp', src: '10.0.0.5', sport: 2, dst: '192.0.2.10', dport: 443, policy: 'boss-fibre' }] });
    for (const limit of ['0', '1001', '1e9', '1.5', '0x10', '-1']) {
      const bad = await app.inject({ url: `/v1/flows?limit=${limit}` });
      expect(bad.statusCode).toBe(400);
      expect(bad.json()).toMatchObject({ code: 'WS_API_VALIDATION', field: '/limit' });
    }
    for (const after of ['x!', 'nonsense']) {
      const bad = await app.inject({ url: `/v1/flows?after=${after}` });
      expect(bad.statusCode).toBe(400);
      expect(bad.json()).toMatchObject({ code: 'WS_API_VALIDATION', field: '/after' });
    }
  });

  it('explains a request with defaults for path and method, without a token', async () => {
    // Proves /v1/explain hands the engine a full request and returns its answer as is.
    const { app } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/explain', payload: { authority: 'boss.example', headers: { 'x-user': 'boss' } } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      route: { request: { authority: 'boss.example', headers: { 'x-user': 'boss' }, path: '/', method: 'GET' } },
      outcome: { status: 'steered', policy: 'boss-fibre', link: 'fibre' },
    });
    const bad = await app.inject({ method: 'POST', url: '/v1/explain', payload: { path: '/' } });
    expect(bad.json()).toMatchObject({ code: 'WS_API_VALIDATION', field: '/authority' });
  });

  it('answers healthz always and readyz only when the engine is ready', async () => {
    // Proves liveness and readiness differ: not ready is 503 WS_API_NOT_READY.
    const { app, engine } = fixture();
    engine.isReady = false;
    expect((await app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    const notReady = await app.inject({ url: '/readyz' });
    expect(notReady.statusCode).toBe(503);
    expect(notReady.json()).toMatchObject({ code: 'WS_API_NOT_READY' });
    engine.isReady = true;
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200);
  });

  it('serves the registry in the Prometheus text format', async () => {
    // Proves /metrics serves the agent's own registry with its content type.
    const { app } = fixture();
    const res = await app.inject({ url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.body).toContain('# TYPE wansteer_intake_rejected_total counter');
  });

  it('answers an unknown route with 404 WS_API_NOT_FOUND', async () => {
    // Proves even the not-found answer carries a catalogue code.
    const { app } = fixture();
    const res = await app.inject({ url: '/v2/anything?x=1' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'WS_API_NOT_FOUND', message: 'no route GET /v2/anything' });
  });
});

describe('OpenAPI document', () => {
  it('is valid JSON, OpenAPI 3.1, and lists every route with its write security', async () => {
    // Proves /openapi.json documents the API as served (paths, methods, bearer on writes).
    const { app } = fixture();
    const res = await app.inject({ url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = JSON.parse(res.body);
    expect(doc.openapi).toBe('3.1.0');
    const routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(routes.sort()).toEqual([
      'DELETE /v1/policies/{name}', 'GET /healthz', 'GET /metrics', 'GET /readyz', 'GET /v1/flows', 'GET /v1/links',
      'GET /v1/policies', 'GET /v1/policies/{name}', 'GET /v1/status', 'POST /v1/explain', 'POST /v1/policies', 'POST /v1/sessions',
      'POST /v1/sessions:batch', 'PUT /v1/policies/{name}',
    ]);
    expect(doc.paths['/v1/policies'].post.security).toEqual([{ bearer: [] }]);
    expect(doc.paths['/v1/sessions'].post.security).toBeUndefined();
  });
});

describe('5xx answers hide details', () => {
  function logged() {
    const lines: string[] = [];
    const logger = pino({ level: 'error' }, new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } }));
    return { lines, logger };
  }

  it('answers an engine bug with 500 WS_API_INTERNAL and a generic message; the log has the cause', async () => {
    // Proves an unexpected error leaks nothing to the client and everything to the log, and the agent keeps serving.
    const { lines, logger } = logged();
    const { app, engine } = fixture({ logger });
    engine.failWith = new Error('open /sys/fs/bpf/wansteer/ws_flows4: EPERM');
    const res = await app.inject({ method: 'POST', url: '/v1/sessions', payload: report(), remoteAddress: '10.0.0.5' });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ statusCode: 500, code: 'WS_API_INTERNAL', error: 'Internal Server Error', message: 'internal error' });
    expect(res.body).not.toContain('EPERM');
    expect(lines.join('')).toContain('EPERM');
    engine.failWith = undefined;
    expect((await app.inject({ method: 'POST', url: '/v1/sessions', payload: report(), remoteAddress: '10.0.0.5' })).statusCode).toBe(200);
  });

  it('keeps a coded 5xx error\'s code but not its message', async () => {
    // Proves a store error that says 503 is answered 503 with its code and without its detail.
    const { app, store } = fixture();
    store.failWith = new StoreErrorDouble('WS_POLICY_STORE_IO', 503, 'write /var/lib/wansteer/policies.yaml: ENOSPC');
    const res = await app.inject({ method: 'DELETE', url: '/v1/policies/x', headers: { authorization: 'Bearer s3cret-token-for-tests' } });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ code: 'WS_POLICY_STORE_IO', message: 'internal error' });
  });

  it('answers a datapath rejection of a single report with 503 WS_API_DATAPATH_ERROR', async () => {
    // Proves the engine's datapath-error outcome becomes a coded 503 with a fixed message; the reason is logged.
    const { lines, logger } = logged();
    const { app, engine } = fixture({ logger });
    engine.reportSessions = (reports) => reports.map(() => ({ status: 'rejected', reason: 'datapath-error', message: 'bpf_map_update_elem: E2BIG' }));
    const res = await app.inject({ method: 'POST', url: '/v1/sessions', payload: report(), remoteAddress: '10.0.0.5' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ code: 'WS_API_DATAPATH_ERROR' });
    expect(res.body).not.toContain('E2BIG');
    expect(lines.join('')).toContain('E2BIG');
  });
});
