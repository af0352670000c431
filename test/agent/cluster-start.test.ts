// Proves the agent in cluster mode does not wait for the API server before it serves: with the
// API out of reach (an edge site cut off from its control plane) it answers /healthz, /readyz
// says what it waits for, policy writes are refused with a code, and once the API answers the
// VirtualServices and WanPolicies come in, /readyz turns 200 and sessions are steered by them.
// It keeps a node-local snapshot of those lists: an agent restarted while cut off (a fresh
// datapath, as after a reboot) steers by it at once, and the API's lists replace it when they
// come; a snapshot it cannot use is ignored. Real agent (dry-run datapath), real client-node,
// loopback fake API servers behind a proxy.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startAgent, type RunningAgent } from '../../src/cli/agent.js';
import { resolveConfig } from '../../src/config/load.js';
import { portOf, RecordingProxy } from '../helpers/recording-proxy.js';
import { FakeApiServer, virtualService } from '../k8s/fake-apiserver.js';
import { FakeWanPolicyApi } from '../policies/helpers/fake-wanpolicy-api.js';

const NS = 'wansteer-system';
const TOKEN = 'cluster-start-token';
describe('wansteer agent in cluster mode, API server out of reach at start', () => {
  let dir: string;
  let vsApi: FakeApiServer;
  let wpApi: FakeWanPolicyApi;
  let proxy: RecordingProxy;
  let agent: RunningAgent | undefined;
  const logs: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wansteer-cluster-start-'));
    vsApi = new FakeApiServer();
    wpApi = new FakeWanPolicyApi();
    await Promise.all([vsApi.start(), wpApi.start()]);
    vsApi.upsert(virtualService('default', 'app', 'jason'));
    wpApi.put(NS, 'jason-to-wan1', { match: { route: { virtualService: 'default/app', route: 'special' } }, action: { links: ['wan1', 'wan0'], mode: 'redirect' } });
    proxy = new RecordingProxy(() => [
      { prefix: '/apis/networking.istio.io/', port: portOf(vsApi.url) },
      { prefix: '/apis/wansteer.io/', port: portOf(wpApi.kubeConfig().getCurrentCluster()!.server) },
    ]);
    proxy.down = true;
    await proxy.start();
    proxy.useAsKubeconfig(dir);
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
  });

  afterAll(async () => {
    await agent?.stop();
    await proxy?.close();
    await Promise.all([vsApi?.close(), wpApi?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${agent!.httpUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  /** A fresh agent (dry-run: a fresh datapath, as after a reboot) on the same state directory. */
  async function start(): Promise<RunningAgent> {
    await agent?.stop();
    const config = resolveConfig(
      {
        links: [{ name: 'wan0', interface: 'wan0' }, { name: 'wan1', interface: 'wan1' }],
        defaultLink: 'wan0',
        rules: { source: 'cluster' },
        policies: { store: 'cluster', namespace: NS },
        intake: { allowedProxies: ['127.0.0.1', '::1', '::ffff:127.0.0.1'] },
        stateDir: join(dir, 'state'),
        log: { level: 'warn' },
      },
      { env: {}, argv: ['--dry-run', '--token-file', join(dir, 'token')] },
    );
    logs.length = 0;
    const logger = pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) });
    agent = await startAgent({ ...config, listen: { http: '127.0.0.1:0' } }, logger, { handleSignals: false });
    return agent;
  }

  const snapshotFile = () => join(dir, 'state/cluster-snapshot.json');
  const snapshot = () => JSON.parse(readFileSync(snapshotFile(), 'utf8')) as { virtualServices: { metadata: { name: string } }[]; policies: { name: string; spec: { action: { links: string[] } } }[] };
  const toWan0 = { match: { route: { virtualService: 'default/app', route: 'special' } }, action: { links: ['wan0'], mode: 'redirect' } };
  /** The state wansteer_source_state gives a source (the series that is 1). */
  const sourceState = async (source: 'routes' | 'policies') => {
    const text = await (await fetch(`${agent!.httpUrl}/metrics`)).text();
    const on = [...text.matchAll(/^wansteer_source_state\{source="(\w+)",state="(\w+)"\} 1$/gm)].filter((m) => m[1] === source);
    return on.map((m) => m[2]).join(',');
  };
  let sport = 40000;
  const reportNew = () =>
    call('POST', '/v1/sessions', {
      direction: 'outbound', local: `10.0.0.5:${++sport}`, remote: '203.0.113.7:443',
      request: { authority: 'app', path: '/', method: 'GET', headers: { 'end-user': 'jason' } },
    });

  it('serves at once, says what it waits for, and steers once the API answers', async () => {
    const started = Date.now();
    await start();
    // The API stays out of reach throughout: a start that waited for it would not return at all. The
    // bound (generous for a loaded machine) catches one that waits out rounds of back-off first.
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(existsSync(snapshotFile())).toBe(false);

    expect((await call('GET', '/healthz')).status).toBe(200);
    const notReady = await call('GET', '/readyz');
    expect(notReady.status).toBe(503);
    expect(notReady.body.code).toBe('WS_API_NOT_READY');
    expect(notReady.body.message).toMatch(/VirtualServices are not listed yet.*WanPolicies are not listed yet/);
    const write = await call('POST', '/v1/policies', { name: 'x', spec: { match: { dscp: 10 }, action: { links: [], dscp: 46, mode: 'mark' } } });
    expect(write.status).toBe(503);
    expect(write.body.code).toBe('WS_POLICY_STORE_UNAVAILABLE');
    expect((await reportNew()).body).toEqual({ status: 'unmatched', reason: 'not-ready' });
    expect(proxy.requests.length).toBe(0); // nothing got through
    expect([await sourceState('routes'), await sourceState('policies')]).toEqual(['waiting', 'waiting']);

    proxy.down = false;
    await agent!.synced;
    expect((await call('GET', '/readyz')).status).toBe(200);
    expect([await sourceState('routes'), await sourceState('policies')]).toEqual(['synced', 'synced']);
    expect((await reportNew()).body).toMatchObject({ status: 'steered', policy: 'jason-to-wan1', link: 'wan1' });
    expect(proxy.requests.some((r) => r.path.startsWith('/apis/wansteer.io/') && !r.watch)).toBe(true);
  });

  it("keeps a snapshot of what it listed, and after a restart cut off from the API steers by it until the API's lists replace it", async () => {
    await vi.waitFor(() => expect(existsSync(snapshotFile())).toBe(true), { timeout: 5000 });
    expect(snapshot().virtualServices.map((v) => v.metadata.name)).toEqual(['app']);
    expect(snapshot().policies.map((p) => [p.name, p.spec.action.links])).toEqual([['jason-to-wan1', ['wan1', 'wan0']]]);

    // Cut off, and meanwhile the policy changes in the cluster.
    proxy.down = true;
    proxy.dropConnections();
    wpApi.put(NS, 'jason-to-wan1', toWan0);
    await start();
    expect((await call('GET', '/readyz')).status).toBe(200);
    expect(logs.join('')).toMatch(/steering by this node's snapshot of the cluster/);
    expect([await sourceState('routes'), await sourceState('policies')]).toEqual(['snapshot', 'snapshot']);
    expect((await reportNew()).body).toMatchObject({ status: 'steered', policy: 'jason-to-wan1', link: 'wan1' });
    expect((await call('POST', '/v1/policies', { name: 'x', spec: toWan0 })).body.code).toBe('WS_POLICY_STORE_UNAVAILABLE');

    proxy.down = false;
    await agent!.synced;
    expect((await reportNew()).body).toMatchObject({ status: 'steered', policy: 'jason-to-wan1', link: 'wan0' });
    expect([await sourceState('routes'), await sourceState('policies')]).toEqual(['synced', 'synced']);
    await vi.waitFor(() => expect(snapshot().policies[0]?.spec.action.links).toEqual(['wan0']), { timeout: 5000 });
  });

  it('ignores a snapshot it cannot use, says so, and waits for the API', async () => {
    await agent?.stop();
    agent = undefined;
    writeFileSync(snapshotFile(), '{"version": 1, "writtenAt": "2026-12-01T00:00:00Z", "policies": {"not": "a list"}}');
    proxy.down = true;
    await start();
    expect((await call('GET', '/readyz')).status).toBe(503);
    expect(logs.join('')).toMatch(/"problem":"policies is not a list","msg":"the cluster snapshot cannot be used: waiting for the API server"/);
    proxy.down = false;
    await agent!.synced;
    await vi.waitFor(() => expect(snapshot().policies.map((p) => p.name)).toEqual(['jason-to-wan1']), { timeout: 5000 });
  });
});
