// Proves the agent's Kubernetes side against a real kube-apiserver and etcd (RBAC on, the
// project's CRD, Istio's VirtualService CRD, deploy/'s RBAC), the agent's parts running as its
// ServiceAccount with a TokenRequest token, an admin playing kubectl:
//  - the VirtualService informer and the WanPolicy store sync, and follow creates, updates and
//    deletes; the store writes with resourceVersion preconditions, and `If-Match: *` (no
//    version) works although a custom resource refuses an update without one;
//  - the CRD's CEL rules refuse invalid WanPolicies (422 with the rule's message);
//  - an object no schema can refuse (a duplicate match) is left out, listed by refused(), and a
//    Kubernetes Event on it says why;
//  - a RoleBinding removed: the store says "forbidden: … cannot list resource "wanpolicies" …"
//    (not "is the API server reachable?"), refuses writes with WS_POLICY_FORBIDDEN, and
//    recovers once the binding is back;
//  - an apiserver restart and an etcd compaction while the watch is away: 410 Gone, a relist,
//    and what changed meanwhile is seen.
// The loopback fakes (test/k8s/fake-apiserver.ts, test/policies/helpers/fake-wanpolicy-api.ts)
// stay for what a real server cannot be made to do on cue: injected 5xx on one list page or
// write, a watch dropped between two chosen events, an ERROR event of any kind, a Status body
// that is not JSON, and precise counts of the requests made.
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { VirtualServiceInformer } from '../../src/k8s/virtual-service-informer.js';
import { createClusterPolicyStore } from '../../src/k8s/wan-policy-store.js';
import type { ClusterPolicyStore } from '../../src/policies/cluster-store.js';
import { PolicyError } from '../../src/policies/errors.js';
import type { WanPolicySpec } from '../../src/policies/model.js';
import { RuleSet } from '../../src/routes/rule-set.js';
import { DEPLOY_DIR, kustomizeBuild } from '../deploy/helpers/manifests.js';
import { controlPlane } from '../helpers/control-plane-gate.js';
import { KubeControlPlane } from '../helpers/kube-control-plane.js';
import { virtualService } from './fake-apiserver.js';

const NS = 'wansteer-system';
const WP = `/apis/wansteer.io/v1alpha1/namespaces/${NS}/wanpolicies`;
const links = ['fibre', 'lte'];
const toLte = (route: string): WanPolicySpec => ({ match: { route: { virtualService: 'default/app', route } }, action: { links: ['lte'], mode: 'redirect' } });
const wanPolicy = (name: string, spec: unknown) => ({ apiVersion: 'wansteer.io/v1alpha1', kind: 'WanPolicy', metadata: { name, namespace: NS }, spec });

async function eventually<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function errorOf(promise: Promise<unknown>): Promise<PolicyError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(PolicyError);
  return err as PolicyError;
}

controlPlane.describe('the agent\'s Kubernetes side against a real kube-apiserver', () => {
  let cp: KubeControlPlane;
  let agentConfig: KubeConfig;
  let store: ClusterPolicyStore;
  let informer: VirtualServiceInformer;
  const ruleSet = new RuleSet();
  const warnings: string[] = [];
  const logger = { info() {}, debug() {}, error() {}, warn: (_: object, message: string) => void warnings.push(message) };

  beforeAll(async () => {
    cp = await KubeControlPlane.start();
    await cp.installCrds();
    await cp.apply(kustomizeBuild(join(DEPLOY_DIR, 'overlays/edge')));
    await cp.create(virtualService('default', 'app'));
    await cp.create(wanPolicy('existing', toLte('default')));
    agentConfig = await cp.serviceAccountConfig(NS, 'wansteer-agent');
    // Short server-side watch timeouts: each watch ends within seconds and is resumed, so an
    // RBAC change is felt soon (a running watch is not re-authorised).
    const client = { watchTimeoutSeconds: () => 2 };
    const fast = { minWatchMs: 0, backoff: { initialMs: 100, maxMs: 500 } };
    store = createClusterPolicyStore(agentConfig, { namespace: NS, links, logger, nodeName: 'edge-1', client, ...fast });
    informer = VirtualServiceInformer.fromKubeConfig(agentConfig, { ruleSet, client, ...fast });
    informer.start();
    await Promise.all([store.ready(), informer.whenReady()]);
  }, 300_000);

  afterAll(async () => {
    await store?.close();
    await informer?.stop();
    await cp?.stop();
  });

  it('syncs: the first lists hold what the cluster has', () => {
    expect(store.list().map((p) => p.name)).toEqual(['existing']);
    expect(ruleSet.virtualServices().map((v) => `${v.namespace}/${v.name}`)).toEqual(['default/app']);
  });

  it('follows VirtualService creates, updates and deletes made with kubectl', async () => {
    await cp.create(virtualService('shop', 'cart'));
    await eventually('cart listed', () => ruleSet.virtualServices().some((v) => v.name === 'cart'));
    const current = (await cp.request('GET', '/apis/networking.istio.io/v1/namespaces/shop/virtualservices/cart')).body as { metadata: object };
    const updated = { ...virtualService('shop', 'cart', 'mary'), metadata: current.metadata };
    expect((await cp.request('PUT', '/apis/networking.istio.io/v1/namespaces/shop/virtualservices/cart', updated)).status).toBe(200);
    await eventually('cart updated', () => JSON.stringify(ruleSet.virtualServices().find((v) => v.name === 'cart')).includes('mary'));
    expect((await cp.request('DELETE', '/apis/networking.istio.io/v1/namespaces/shop/virtualservices/cart')).status).toBe(200);
    await eventually('cart gone', () => !ruleSet.virtualServices().some((v) => v.name === 'cart'));
  });

  it('creates, replaces (If-Match: the version) and deletes WanPolicies; a stale version is WS_POLICY_CONFLICT', async () => {
    const created = await store.create('minion', toLte('minion'));
    const inCluster = (await cp.request('GET', `${WP}/minion`)).body as { metadata: { resourceVersion: string }; spec: unknown };
    expect(inCluster.spec).toEqual(toLte('minion'));
    expect(created.version).toBe(inCluster.metadata.resourceVersion);
    const replaced = await store.replace('minion', toLte('special'), created.version);
    expect(((await cp.request('GET', `${WP}/minion`)).body as { spec: unknown }).spec).toEqual(toLte('special'));
    const stale = await errorOf(store.replace('minion', toLte('minion'), created.version));
    expect(stale.code).toBe('WS_POLICY_CONFLICT');
    await store.delete('minion', replaced.version);
    expect((await cp.request('GET', `${WP}/minion`)).status).toBe(404);
    expect(store.get('minion')).toBeUndefined();
  });

  it('replaces with If-Match: * (no version): sends the cached one, and after a conflict waits for the watch and tries again', async () => {
    const v1 = await store.create('anyone', toLte('minion'));
    // Someone else's write, which our cache has not seen when we send ours: the first attempt is stale.
    const theirs = { ...wanPolicy('anyone', toLte('theirs')), metadata: { name: 'anyone', namespace: NS, resourceVersion: v1.version } };
    expect((await cp.request('PUT', `${WP}/anyone`, theirs)).status).toBe(200);
    const ours = await store.replace('anyone', toLte('ours'));
    expect(((await cp.request('GET', `${WP}/anyone`)).body as { spec: unknown }).spec).toEqual(toLte('ours'));
    expect(store.get('anyone')?.version).toBe(ours.version);
    const missing = await errorOf(store.replace('nobody', toLte('nobody')));
    expect(missing.code).toBe('WS_POLICY_NOT_FOUND');
    await store.delete('anyone');
  });

  it.each([
    ['a redirect without links', { match: { dscp: 1 }, action: { links: [], mode: 'redirect' } }, 'modes redirect and both need at least one link'],
    ['a route named both ways', { match: { route: { virtualService: 'default/app', route: 'r', routeIndex: 0 } }, action: { links: ['lte'], mode: 'redirect' } }, 'name the route by route or by routeIndex, not both'],
    ['mark without a DSCP', { match: { dscp: 1 }, action: { links: [], mode: 'mark' } }, 'modes mark and both need dscp'],
    ['redirect with a DSCP', { match: { dscp: 1 }, action: { links: ['lte'], mode: 'redirect', dscp: 10 } }, 'mode redirect sets no DSCP'],
  ])('the CRD\'s CEL rules refuse %s (422, with the rule\'s message)', async (_, spec, message) => {
    const res = await cp.request('POST', WP, wanPolicy('invalid', spec));
    expect(res.status).toBe(422);
    expect((res.body as { message: string }).message).toContain(message);
  });

  it('leaves out an object no schema can refuse (a duplicate match), lists it in refused(), and records an Event on it', async () => {
    await cp.create(wanPolicy('first', { match: { dscp: 7 }, action: { links: [], dscp: 46, mode: 'mark' } }));
    await eventually('first accepted', () => store.get('first'));
    await cp.create(wanPolicy('second', { match: { dscp: 7 }, action: { links: [], dscp: 10, mode: 'mark' } }));
    const refused = await eventually('second refused', () => store.refused().find((r) => r.name === 'second'));
    expect(refused.code).toBe('WS_POLICY_DUPLICATE_MATCH');
    expect(store.get('second')).toBeUndefined();
    const events = await eventually('an Event on second', async () => {
      const list = (await cp.request('GET', `/apis/events.k8s.io/v1/namespaces/${NS}/events`)).body as { items: { regarding: { name: string }; reason: string; note: string; type: string; reportingController: string }[] };
      const mine = list.items.filter((e) => e.regarding.name === 'second');
      return mine.length > 0 ? mine : undefined;
    });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ reason: 'Refused', type: 'Warning', reportingController: 'wansteer.io/agent' });
    expect(events[0]!.note).toMatch(/^left out on node edge-1: WS_POLICY_DUPLICATE_MATCH: /);
    // Seen by kubectl describe too: the same Event as core/v1, by involvedObject.
    const core = (await cp.request('GET', `/api/v1/namespaces/${NS}/events?fieldSelector=involvedObject.name%3Dsecond`)).body as { items: unknown[] };
    expect(core.items).toHaveLength(1);
    await cp.request('DELETE', `${WP}/second`);
    await eventually('second no longer refused', () => !store.refused().some((r) => r.name === 'second'));
  });

  it('a RoleBinding removed: forbidden, in the API server\'s words, writes refused as such; restored: it recovers', async () => {
    const binding = `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings/wansteer-agent-wanpolicies`;
    const saved = (await cp.request('GET', binding)).body as { metadata: Record<string, unknown> };
    expect((await cp.request('DELETE', binding)).status).toBe(200);
    // The first refusal may be a watch's (`Forbidden`, no reason given); the relist it causes says who and what.
    const problem = await eventually('forbidden, with the reason', () => (store.problem()?.message.includes('cannot') ? store.problem() : undefined));
    expect(problem.failure).toBe('forbidden');
    expect(problem.message).toMatch(/forbidden: User "system:serviceaccount:wansteer-system:wansteer-agent" cannot (list|watch) resource "wanpolicies"/);
    expect(warnings.join('\n')).toMatch(/cannot (list|watch) resource "wanpolicies"/);
    expect(warnings.join('\n')).not.toMatch(/HTTP-Code/);
    // Writes are refused by the server with its reason, not a guess about reachability.
    const write = await errorOf(store.create('while-forbidden', toLte('x')));
    expect(write.code).toBe('WS_POLICY_FORBIDDEN');
    expect(write.message).toMatch(/cannot create resource "wanpolicies"/);
    // Meanwhile the last list stays: the policies are still there.
    expect(store.get('existing')).toBeDefined();

    const { resourceVersion: _, uid: __, creationTimestamp: ___, managedFields: ____, ...metadata } = saved.metadata;
    expect((await cp.request('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, { ...saved, metadata })).status).toBe(201);
    await eventually('recovered', () => store.problem() === undefined, 30_000);
    await cp.create(wanPolicy('after-rbac', toLte('after')));
    await eventually('sees new objects again', () => store.get('after-rbac'));
  }, 300_000);

  it('an apiserver restart and an etcd compaction while the watch is away: 410 Gone, a relist, and the changes made meanwhile are seen', async () => {
    const relistsBefore = relists(store);
    await cp.restartApiServer(async () => {
      // While the API server is down, the watch is gone; then history is compacted past where it was.
      await cp.compact();
    });
    // Changes the watch has to catch up on, then compaction past them too.
    await cp.create(wanPolicy('while-away', toLte('away')));
    await cp.request('DELETE', `${WP}/after-rbac`);
    await cp.compact();
    await eventually('while-away seen', () => store.get('while-away'), 60_000);
    await eventually('after-rbac gone', () => store.get('after-rbac') === undefined, 60_000);
    expect(relists(store)).toBeGreaterThan(relistsBefore);
    await eventually('no problem left', () => store.problem() === undefined);
  }, 300_000);
});

/** The store's informer's relist count (its ListWatch status). */
function relists(store: ClusterPolicyStore): number {
  const informer = (store as unknown as { informer: { status(): { relists: number } } }).informer;
  return informer.status().relists;
}
