// Proves the agent in cluster mode against a real kube-apiserver and etcd: RBAC on, the project's
// CRD and deploy/ RBAC applied, Istio's VirtualService CRD, the agent running as its
// ServiceAccount (a TokenRequest token in its kubeconfig), dry-run datapath:
//  - it syncs and turns ready, and steers a session by a WanPolicy on a VirtualService;
//  - its REST API writes real WanPolicy objects: POST, PUT with the ETag, PUT with `If-Match: *`
//    (which a custom resource refuses without a resourceVersion unless the agent sends one),
//    DELETE; a stale ETag is 412;
//  - a WanPolicy it leaves out is in `wansteer status`, in wansteer_policies_refused{reason}, and
//    a Kubernetes Event on the object;
//  - its RoleBinding removed (felt when the API server restarts and the watches reconnect): the
//    log, `wansteer status` and wansteer_source_failing say "forbidden: … cannot list resource
//    "wanpolicies" …", the policies it had keep steering; restored, it recovers.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../src/cli/agent.js';
import { runStatus } from '../../src/cli/status.js';
import { resolveConfig } from '../../src/config/load.js';
import { DEPLOY_DIR, kustomizeBuild } from '../deploy/helpers/manifests.js';
import { controlPlane } from '../helpers/control-plane-gate.js';
import { KubeControlPlane } from '../helpers/kube-control-plane.js';
import { virtualService } from '../k8s/fake-apiserver.js';

const NS = 'wansteer-system';
const WP = `/apis/wansteer.io/v1alpha1/namespaces/${NS}/wanpolicies`;
const TOKEN = 'cluster-real-token';
const toLink = (link: string) => ({ match: { route: { virtualService: 'default/app', route: 'special' } }, action: { links: [link], mode: 'redirect' } });

async function eventually<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await Promise.resolve(check()).catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

controlPlane.describe('wansteer agent against a real kube-apiserver, as its ServiceAccount', () => {
  let cp: KubeControlPlane;
  let dir: string;
  let agent: RunningAgent;
  const logs: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wansteer-cluster-real-'));
    cp = await KubeControlPlane.start();
    await cp.installCrds();
    await cp.apply(kustomizeBuild(join(DEPLOY_DIR, 'overlays/edge')));
    await cp.create(virtualService('default', 'app', 'jason'));
    await cp.create({ apiVersion: 'wansteer.io/v1alpha1', kind: 'WanPolicy', metadata: { name: 'jason-to-wan1', namespace: NS }, spec: toLink('wan1') } as never);
    process.env.KUBECONFIG = cp.writeKubeconfig(await cp.serviceAccountConfig(NS, 'wansteer-agent'), join(dir, 'kubeconfig'));
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
    const config = resolveConfig(
      {
        links: [{ name: 'wan0', interface: 'wan0' }, { name: 'wan1', interface: 'wan1' }],
        defaultLink: 'wan0',
        rules: { source: 'cluster' },
        policies: { store: 'cluster', namespace: NS },
        intake: { allowedProxies: ['127.0.0.1', '::1', '::ffff:127.0.0.1'] },
        stateDir: join(dir, 'state'),
        nodeName: 'edge-1',
        log: { level: 'info' },
      },
      { env: {}, argv: ['--dry-run', '--token-file', join(dir, 'token')] },
    );
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
    agent = await startAgent({ ...config, listen: { http: '127.0.0.1:0' } }, logger, { handleSignals: false });
    await agent.synced;
  }, 300_000);

  afterAll(async () => {
    await agent?.stop();
    await cp?.stop();
    delete process.env.KUBECONFIG;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${agent.httpUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, etag: res.headers.get('etag') ?? '', body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
  };
  const status = async () => {
    let out = '';
    await runStatus(['--agent', agent.httpUrl], { stdout: (t) => void (out += t), stderr: (t) => void (out += t) });
    return out;
  };
  const metrics = async () => (await fetch(`${agent.httpUrl}/metrics`)).text();
  let sport = 41000;
  const report = () =>
    call('POST', '/v1/sessions', {
      direction: 'outbound', local: `10.0.0.5:${++sport}`, remote: '203.0.113.7:443',
      request: { authority: 'app', path: '/', method: 'GET', headers: { 'end-user': 'jason' } },
    });

  it('syncs, turns ready, and steers a session by the WanPolicy on the VirtualService', async () => {
    expect((await call('GET', '/readyz')).status).toBe(200);
    expect((await report()).body).toMatchObject({ status: 'steered', policy: 'jason-to-wan1', link: 'wan1' });
    expect(await status()).toMatch(/route rules: synced\n {2}policies: {4}synced\n/);
  });

  it('writes real WanPolicy objects through its REST API: POST, PUT with the ETag, PUT with If-Match: *, DELETE; a stale ETag is 412', async () => {
    const created = await call('POST', '/v1/policies', { name: 'mary-to-wan0', spec: { match: { dscp: 12 }, action: { links: ['wan0'], dscp: 12, mode: 'both' } } });
    expect(created.status).toBe(201);
    expect(((await cp.request('GET', `${WP}/mary-to-wan0`)).body as { spec: unknown }).spec).toMatchObject({ match: { dscp: 12 } });
    const spec = (link: string) => ({ spec: { match: { dscp: 12 }, action: { links: [link], dscp: 12, mode: 'both' } } });
    const replaced = await call('PUT', '/v1/policies/mary-to-wan0', spec('wan1'), { 'if-match': created.etag });
    expect(replaced.status).toBe(200);
    expect((await call('PUT', '/v1/policies/mary-to-wan0', spec('wan0'), { 'if-match': created.etag })).status).toBe(412);
    // kubectl changes it meanwhile; `If-Match: *` overwrites whatever is current.
    const current = (await cp.request('GET', `${WP}/mary-to-wan0`)).body as { metadata: Record<string, unknown> };
    expect((await cp.request('PUT', `${WP}/mary-to-wan0`, { apiVersion: 'wansteer.io/v1alpha1', kind: 'WanPolicy', metadata: current.metadata, ...spec('wan0') })).status).toBe(200);
    const forced = await call('PUT', '/v1/policies/mary-to-wan0', spec('wan1'), { 'if-match': '*' });
    expect(forced.status, JSON.stringify(forced.body)).toBe(200);
    expect(((await cp.request('GET', `${WP}/mary-to-wan0`)).body as { spec: { action: { links: string[] } } }).spec.action.links).toEqual(['wan1']);
    expect((await call('DELETE', '/v1/policies/mary-to-wan0', undefined, { 'if-match': forced.etag })).status).toBe(204);
    expect((await cp.request('GET', `${WP}/mary-to-wan0`)).status).toBe(404);
  });

  it('shows a WanPolicy it leaves out in status, in a metric by reason, and as an Event on the object', async () => {
    // Same route as jason-to-wan1, younger (or, created within the same second, after it by
    // name: creationTimestamp has whole seconds): no schema can refuse it, the agent leaves it out.
    await cp.create({ apiVersion: 'wansteer.io/v1alpha1', kind: 'WanPolicy', metadata: { name: 'jason-too', namespace: NS }, spec: toLink('wan0') } as never);
    const text = await eventually('refused in status', async () => ((await status()).includes('jason-too') ? status() : undefined));
    expect(text).toMatch(/REFUSED: 1 WanPolicy left out on this node/);
    expect(text).toMatch(/jason-too\s+WS_POLICY_DUPLICATE_MATCH\s+/);
    expect(await metrics()).toMatch(/^wansteer_policies_refused\{reason="WS_POLICY_DUPLICATE_MATCH"\} 1$/m);
    const events = await eventually('an Event on jason-too', async () => {
      const list = (await cp.request('GET', `/api/v1/namespaces/${NS}/events?fieldSelector=involvedObject.name%3Djason-too`)).body as { items: { message: string; reason: string }[] };
      return list.items.length > 0 ? list.items : undefined;
    });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ reason: 'Refused' });
    expect(events[0]!.message).toMatch(/^left out on node edge-1: WS_POLICY_DUPLICATE_MATCH: /);
    expect((await report()).body).toMatchObject({ policy: 'jason-to-wan1', link: 'wan1' });
    await cp.request('DELETE', `${WP}/jason-too`);
    await eventually('no longer refused', async () => !(await metrics()).includes('wansteer_policies_refused{'));
  });

  it('its RoleBinding removed: forbidden in log, status and metric, keeps steering by what it had; restored: recovers', async () => {
    const path = `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings/wansteer-agent-wanpolicies`;
    const saved = (await cp.request('GET', path)).body as { metadata: Record<string, unknown> };
    expect((await cp.request('DELETE', path)).status).toBe(200);
    // A running watch is not authorised again: the refusal is felt when the watches reconnect.
    await cp.restartApiServer();
    // VirtualServices are still allowed: their source recovers (a just-restarted API server may
    // refuse everyone for a moment, before its RBAC caches are filled), the policies' does not.
    const text = await eventually('forbidden in status', async () => {
      const now = await status();
      return now.includes('cannot list') && /route rules: synced\n/.test(now) ? now : undefined;
    }, 120_000);
    expect(text).toMatch(/policies: {4}synced, keeping the last list: now failing with forbidden: .*cannot list resource "wanpolicies" in API group "wansteer.io" in the namespace "wansteer-system"/);
    expect(await metrics()).toMatch(/^wansteer_source_failing\{source="policies",failure="forbidden"\} 1$/m);
    expect(logs.join('')).toMatch(/cannot list resource \\"wanpolicies\\"/);
    expect(logs.join('')).not.toMatch(/HTTP-Code: 403/);
    const write = await call('POST', '/v1/policies', { name: 'x', spec: { match: { dscp: 20 }, action: { links: [], dscp: 20, mode: 'mark' } } });
    expect(write.status).toBe(403);
    expect(write.body.code).toBe('WS_POLICY_FORBIDDEN');
    expect((await report()).body).toMatchObject({ status: 'steered', policy: 'jason-to-wan1', link: 'wan1' });

    const { resourceVersion: _rv, uid: _uid, creationTimestamp: _ct, managedFields: _mf, ...metadata } = saved.metadata;
    expect((await cp.request('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, { ...saved, metadata })).status).toBe(201);
    await eventually('recovered', async () => !(await metrics()).includes('wansteer_source_failing{'), 120_000);
    expect(await status()).toMatch(/policies: {4}synced\n/);
    await cp.request('PUT', `${WP}/jason-to-wan1`, {
      apiVersion: 'wansteer.io/v1alpha1', kind: 'WanPolicy',
      metadata: ((await cp.request('GET', `${WP}/jason-to-wan1`)).body as { metadata: unknown }).metadata, spec: toLink('wan0'),
    });
    await eventually('follows changes again', async () => ((await report()).body.link === 'wan0' ? true : undefined));
  }, 300_000);
});
