// Proves the VirtualService informer against a real HTTP server speaking the Kubernetes
// list/watch protocol: it is ready only after the first list, follows watch events, resumes from
// the last version (bookmarks included) after a dropped connection, relists on 410 Gone, backs off
// on errors, finds the served API version, and skips invalid objects without blocking the rest.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { VirtualServiceInformer } from '../../src/k8s/virtual-service-informer.js';
import { classifyRequest } from '../../src/routes/classify.js';
import { RuleSet } from '../../src/routes/rule-set.js';
import { FakeApiServer, virtualService } from './fake-apiserver.js';

let server: FakeApiServer;
let informer: VirtualServiceInformer | undefined;
let delays: number[];

/** Records every backoff delay the informer asks for, and waits only a few ms. */
const sleep = (ms: number) => {
  delays.push(ms);
  return new Promise<void>((resolve) => setTimeout(resolve, 5));
};

function startInformer(ruleSet: RuleSet, extra: { namespaces?: string[] } = {}): VirtualServiceInformer {
  informer = VirtualServiceInformer.fromKubeConfig(server.kubeConfig(), {
    ruleSet,
    sleep,
    minWatchMs: 0,
    backoff: { random: () => 0.5 },
    pageSize: 2,
    ...extra,
  });
  informer.start();
  return informer;
}

const names = (ruleSet: RuleSet) => ruleSet.virtualServices().map((v) => `${v.namespace}/${v.name}`).sort();
const watchRequests = () => server.requests.filter((r) => r.watch);
const listRequests = () => server.requests.filter((r) => !r.watch && r.path.includes('/v1/'));

beforeEach(async () => {
  delays = [];
  server = new FakeApiServer();
  await server.start();
});

afterEach(async () => {
  await informer?.stop();
  informer = undefined;
  await server.close();
});

describe('VirtualServiceInformer', () => {
  it('is ready only after the first (paged) list, then holds every object', async () => {
    for (const n of ['a', 'b', 'c']) server.upsert(virtualService('default', n));
    const ruleSet = new RuleSet();
    const inf = VirtualServiceInformer.fromKubeConfig(server.kubeConfig(), { ruleSet, sleep, pageSize: 2 });
    informer = inf;
    expect(inf.status().ready).toBe(false);
    inf.start();
    await inf.whenReady();
    expect(inf.status().ready).toBe(true);
    expect(names(ruleSet)).toEqual(['default/a', 'default/b', 'default/c']);
    // Two pages: limit=2, then continue.
    expect(listRequests().map((r) => r.query.continue ?? '')).toEqual(['', '2']);
  });

  it('applies ADDED, MODIFIED and DELETED watch events to the rules', async () => {
    server.upsert(virtualService('default', 'reviews'));
    const ruleSet = new RuleSet();
    await startInformer(ruleSet).whenReady();
    await vi.waitFor(() => expect(server.openWatches).toBe(1));

    server.upsert(virtualService('default', 'ratings'));
    await vi.waitFor(() => expect(names(ruleSet)).toEqual(['default/ratings', 'default/reviews']));

    server.upsert(virtualService('default', 'reviews', 'boss'));
    await vi.waitFor(() => {
      const r = classifyRequest(ruleSet.table(), { host: 'reviews', headers: { 'end-user': 'boss' } });
      expect(r.matched && r.routeName).toBe('special');
    });

    server.remove('default', 'ratings');
    await vi.waitFor(() => expect(names(ruleSet)).toEqual(['default/reviews']));
  });

  it('resumes a dropped watch from the last version it saw, bookmarks included, without relisting', async () => {
    const ruleSet = new RuleSet();
    await startInformer(ruleSet).whenReady();
    await vi.waitFor(() => expect(server.openWatches).toBe(1));
    server.upsert(virtualService('default', 'a'));
    await vi.waitFor(() => expect(names(ruleSet)).toEqual(['default/a']));
    server.bookmark();
    const bookmarked = server.resourceVersion;
    await vi.waitFor(() => expect(informer!.status().watches[0]!.resourceVersion).toBe(bookmarked));

    server.dropConnections();
    await vi.waitFor(() => expect(watchRequests()).toHaveLength(2));
    expect(watchRequests()[1]!.query.resourceVersion).toBe(bookmarked);
    expect(watchRequests()[1]!.query.allowWatchBookmarks).toBe('true');
    expect(listRequests()).toHaveLength(1);
    // Events after the reconnect still arrive.
    await vi.waitFor(() => expect(server.openWatches).toBe(1));
    server.upsert(virtualService('default', 'b'));
    await vi.waitFor(() => expect(names(ruleSet)).toEqual(['default/a', 'default/b']));
  });

  it('relists on 410 Gone and reconciles what changed while it was away', async () => {
    server.upsert(virtualService('default', 'stays'));
    server.upsert(virtualService('default', 'goes'));
    const ruleSet = new RuleSet();
    await startInformer(ruleSet).whenReady();
    await vi.waitFor(() => expect(server.openWatches).toBe(1));

    // While the agent is disconnected, objects change and the server forgets the history.
    server.dropConnections();
    server.remove('default', 'goes');
    server.upsert(virtualService('default', 'new'));
    server.compact();

    await vi.waitFor(() => expect(names(ruleSet)).toEqual(['default/new', 'default/stays']));
    expect(informer!.status().watches[0]!.relists).toBe(2);
    expect(informer!.status().ready).toBe(true);
  });

  it('backs off with growing delays while the list fails, then recovers', async () => {
    server.upsert(virtualService('default', 'a'));
    server.failNextLists(500, 503, 500);
    const ruleSet = new RuleSet();
    const inf = startInformer(ruleSet);
    await inf.whenReady();
    expect(names(ruleSet)).toEqual(['default/a']);
    // Jitter pinned at 0: the default 800 ms doubles each failure.
    expect(delays).toEqual([800, 1600, 3200]);
    expect(inf.status().watches[0]!.lastError).toBeUndefined();
  });

  it('reports errors through status while it cannot sync (not ready, last error kept)', async () => {
    server.failNextLists(...Array(50).fill(500));
    const inf = startInformer(new RuleSet());
    await vi.waitFor(() => expect(delays.length).toBeGreaterThan(2));
    const status = inf.status();
    expect(status.ready).toBe(false);
    expect(status.watches[0]!.lastError).toMatch(/^list virtualservices\.networking\.istio\.io failed/);
  });

  it('falls back to v1beta1 / v1alpha3 when the cluster does not serve v1', async () => {
    await server.close();
    server = new FakeApiServer({ servedVersions: ['v1alpha3'] });
    await server.start();
    server.upsert(virtualService('default', 'old', 'jason', 'networking.istio.io/v1alpha3'));
    const ruleSet = new RuleSet();
    await startInformer(ruleSet).whenReady();
    expect(names(ruleSet)).toEqual(['default/old']);
    await vi.waitFor(() => expect(watchRequests()).toHaveLength(1));
    expect(watchRequests()[0]!.path).toBe('/apis/networking.istio.io/v1alpha3/virtualservices');
  });

  it('watches only the configured namespaces', async () => {
    server.upsert(virtualService('shop', 'cart'));
    server.upsert(virtualService('other', 'x'));
    const ruleSet = new RuleSet();
    await startInformer(ruleSet, { namespaces: ['shop'] }).whenReady();
    expect(names(ruleSet)).toEqual(['shop/cart']);
    expect(listRequests()[0]!.path).toBe('/apis/networking.istio.io/v1/namespaces/shop/virtualservices');
  });

  it('skips and counts an invalid object without blocking the valid ones', async () => {
    const bad = virtualService('default', 'bad');
    (bad.spec as { http: { match: unknown }[] }).http[0]!.match = [{ headers: { 'end-user': { regex: '(unclosed' } } }];
    server.upsert(bad);
    server.upsert(virtualService('default', 'good'));
    const ruleSet = new RuleSet();
    const inf = startInformer(ruleSet);
    await inf.whenReady();
    expect(names(ruleSet)).toEqual(['default/good']);
    expect(inf.status().invalidObjects).toEqual({ WS_ROUTES_INVALID_REGEX: 1 });
    // A fix arrives through the watch and the object joins the rules.
    await vi.waitFor(() => expect(server.openWatches).toBe(1));
    server.upsert(virtualService('default', 'bad'));
    await vi.waitFor(() => expect(names(ruleSet)).toEqual(['default/bad', 'default/good']));
  });
});
