// Proves the cluster policy store against a loopback server speaking the Kubernetes API for
// WanPolicy (real client-node, real sockets): it is ready after the first list, writes through
// with resourceVersion preconditions (a 409 from the API server becomes WS_POLICY_CONFLICT),
// sees other nodes' and kubectl's writes through the watch, leaves out invalid objects, and
// sends nothing for bad input.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createClusterPolicyStore } from '../../src/k8s/wan-policy-store.js';
import { ClusterPolicyStore, type WanPolicyEvents, type WanPolicyWriter } from '../../src/policies/cluster-store.js';
import type { WanPolicyObject } from '../../src/policies/wan-policy-object.js';
import { PolicyError } from '../../src/policies/errors.js';
import type { WanPolicySpec } from '../../src/policies/model.js';
import { FakeWanPolicyApi } from './helpers/fake-wanpolicy-api.js';

const NS = 'wansteer-system';
const links = ['fibre', 'lte'];
const toLte = (route: string): WanPolicySpec => ({ match: { route: { virtualService: 'default/app', route } }, action: { links: ['lte'], mode: 'redirect' } });
const markEf = (dscp: number): WanPolicySpec => ({ match: { dscp }, action: { links: [], dscp: 46, mode: 'mark' } });

let api: FakeWanPolicyApi;
let stores: ClusterPolicyStore[];
let warnings: string[];
const logger = { info() {}, debug() {}, error() {}, warn: (_: object, message: string) => void warnings.push(message) };

async function open(): Promise<ClusterPolicyStore> {
  const store = createClusterPolicyStore(api.kubeConfig(), {
    namespace: NS,
    links,
    logger,
    minWatchMs: 0,
    pageSize: 2,
    sleep: () => new Promise((resolve) => setTimeout(resolve, 5)),
  });
  stores.push(store);
  await store.ready();
  return store;
}

async function codeOf(promise: Promise<unknown>): Promise<{ code: string; statusCode: number }> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(PolicyError);
  return { code: (err as PolicyError).code, statusCode: (err as PolicyError).statusCode };
}

const writes = () => api.requests.filter((r) => r.method !== 'GET');

beforeEach(async () => {
  api = new FakeWanPolicyApi();
  await api.start();
  stores = [];
  warnings = [];
});

afterEach(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await api.close();
});

describe('ClusterPolicyStore', () => {
  it('is ready after the first (paged) list and holds what the cluster has, version = resourceVersion', async () => {
    for (const [i, name] of ['a', 'b', 'c'].entries()) api.put(NS, name, markEf(i));
    api.put('elsewhere', 'd', markEf(9));
    const store = await open();
    expect(store.list().map((p) => p.name).sort()).toEqual(['a', 'b', 'c']);
    expect(store.get('a')?.version).toBe(api.get(NS, 'a')?.metadata.resourceVersion);
  });

  it('creates through the API and shows the policy at once', async () => {
    const store = await open();
    const seen: string[][] = [];
    store.subscribe((ps) => seen.push(ps.map((p) => p.name)));
    const created = await store.create('minion', toLte('minion'));
    expect(store.get('minion')).toEqual(created);
    expect(api.get(NS, 'minion')?.spec).toEqual(toLte('minion'));
    expect(created.version).toBe(api.get(NS, 'minion')?.metadata.resourceVersion);
    expect(seen[0]).toEqual(['minion']);
  });

  it('replaces with If-Match as resourceVersion: a stale one is a 409 from the API, WS_POLICY_CONFLICT to us', async () => {
    const store = await open();
    const v1 = await store.create('minion', toLte('minion'));
    const v2 = await store.replace('minion', toLte('batch'), v1.version);
    expect(Number(v2.version)).toBeGreaterThan(Number(v1.version));
    expect(await codeOf(store.replace('minion', toLte('other'), v1.version))).toEqual({ code: 'WS_POLICY_CONFLICT', statusCode: 412 });
    expect(api.get(NS, 'minion')?.spec).toEqual(toLte('batch'));
    // Without If-Match the replace is unconditional.
    await store.replace('minion', toLte('last'));
    expect(api.get(NS, 'minion')?.spec).toEqual(toLte('last'));
    expect(await codeOf(store.replace('ghost', toLte('x')))).toEqual({ code: 'WS_POLICY_NOT_FOUND', statusCode: 404 });
  });

  it('keeps labels others put on the object when it replaces the spec', async () => {
    const store = await open();
    await store.create('minion', toLte('minion'));
    const labelled = api.label(NS, 'minion', { team: 'edge' });
    await vi.waitFor(() => expect(store.get('minion')?.version).toBe(labelled.metadata.resourceVersion));
    await store.replace('minion', toLte('batch'), labelled.metadata.resourceVersion);
    expect(api.get(NS, 'minion')?.metadata.labels).toEqual({ team: 'edge' });
  });

  it('deletes with a resourceVersion precondition', async () => {
    const store = await open();
    const v1 = await store.create('voice', markEf(10));
    await store.replace('voice', markEf(11), v1.version);
    expect(await codeOf(store.delete('voice', v1.version))).toEqual({ code: 'WS_POLICY_CONFLICT', statusCode: 412 });
    expect(api.get(NS, 'voice')).toBeDefined();
    await store.delete('voice', store.get('voice')!.version);
    expect(api.get(NS, 'voice')).toBeUndefined();
    expect(store.get('voice')).toBeUndefined();
    expect(await codeOf(store.delete('voice'))).toEqual({ code: 'WS_POLICY_NOT_FOUND', statusCode: 404 });
  });

  it('sends nothing to the API for bad input: unknown link, DSCP 64, duplicate match', async () => {
    const store = await open();
    await store.create('voice', markEf(10));
    const before = writes().length;
    const bad = (spec: unknown) => spec as WanPolicySpec;
    expect(await codeOf(store.create('x', bad({ match: { dscp: 1 }, action: { links: ['sat'], mode: 'redirect' } })))).toEqual({ code: 'WS_POLICY_UNKNOWN_LINK', statusCode: 422 });
    expect(await codeOf(store.create('x', bad({ match: { dscp: 1 }, action: { links: [], dscp: 64, mode: 'mark' } })))).toEqual({ code: 'WS_POLICY_INVALID', statusCode: 422 });
    expect(await codeOf(store.create('x', markEf(10)))).toEqual({ code: 'WS_POLICY_DUPLICATE_MATCH', statusCode: 409 });
    expect(await codeOf(store.create('voice', markEf(12)))).toEqual({ code: 'WS_POLICY_EXISTS', statusCode: 409 });
    expect(writes().length).toBe(before);
  });

  it('maps the API server refusing a write: 403 forbidden, 422 invalid, 500 unavailable', async () => {
    const store = await open();
    api.failNextWrites(403, 422, 500);
    expect(await codeOf(store.create('a', markEf(1)))).toEqual({ code: 'WS_POLICY_FORBIDDEN', statusCode: 403 });
    expect(await codeOf(store.create('a', markEf(1)))).toEqual({ code: 'WS_POLICY_INVALID', statusCode: 422 });
    expect(await codeOf(store.create('a', markEf(1)))).toEqual({ code: 'WS_POLICY_STORE_UNAVAILABLE', statusCode: 503 });
    expect(store.list()).toEqual([]);
  });

  it('two nodes see the same policies, and racing creates of one name: one wins, one gets WS_POLICY_EXISTS', async () => {
    const [a, b] = [await open(), await open()];
    await a.create('minion', toLte('minion'));
    await vi.waitFor(() => expect(b.get('minion')?.spec).toEqual(toLte('minion')));
    const results = await Promise.allSettled([a.create('race', markEf(20)), b.create('race', markEf(20))]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect((lost.reason as PolicyError).code).toMatch(/WS_POLICY_EXISTS|WS_POLICY_DUPLICATE_MATCH/);
    await vi.waitFor(() => expect(b.get('race')).toBeDefined());
  });

  it('follows kubectl edits and deletes through the watch', async () => {
    const store = await open();
    const seen: string[][] = [];
    store.subscribe((ps) => seen.push(ps.map((p) => `${p.name}@${p.version}`)));
    const added = api.put(NS, 'voice', markEf(10));
    await vi.waitFor(() => expect(store.get('voice')?.version).toBe(added.metadata.resourceVersion));
    api.put(NS, 'voice', markEf(11));
    await vi.waitFor(() => expect(store.get('voice')?.spec.match).toEqual({ dscp: 11 }));
    api.remove(NS, 'voice');
    await vi.waitFor(() => expect(store.list()).toEqual([]));
    expect(seen).toHaveLength(3);
  });

  it('leaves out an object that fails validation, and of two with the same match keeps the older', async () => {
    const store = await open();
    api.put(NS, 'first', markEf(10));
    api.put(NS, 'second', markEf(10));
    api.put(NS, 'broken', { match: { dscp: 1 }, action: { links: [], mode: 'mark' } });
    api.put(NS, 'Upper', markEf(2));
    api.put(NS, 'elsewhere', { match: { dscp: 3 }, action: { links: ['satellite', 'lte'], mode: 'redirect' } });
    await vi.waitFor(() => expect(store.list().map((p) => p.name).sort()).toEqual(['elsewhere', 'first']));
    expect(warnings.join('\n')).toMatch(/second .*WS_POLICY_DUPLICATE_MATCH/);
    expect(warnings.join('\n')).toMatch(/broken .*WS_POLICY_INVALID: spec\.action\.dscp: is missing/);
    expect(warnings.join('\n')).toMatch(/Upper .*WS_POLICY_NAME_INVALID/);
    // When the older one goes, the other takes its place.
    api.remove(NS, 'first');
    await vi.waitFor(() => expect(store.list().map((p) => p.name).sort()).toEqual(['elsewhere', 'second']));
  });

  it('refuses writes until the first list is done', async () => {
    const store = createClusterPolicyStore(api.kubeConfig(), { namespace: NS, links, logger });
    stores.push(store);
    expect(await codeOf(store.create('a', markEf(1)))).toEqual({ code: 'WS_POLICY_STORE_UNAVAILABLE', statusCode: 503 });
    await store.ready();
    expect((await store.create('a', markEf(1))).name).toBe('a');
  });

  it('derives the policies once for a burst of informer events (a list of 4096), and reads are current at once', async () => {
    let events!: WanPolicyEvents;
    const store = new ClusterPolicyStore({
      namespace: NS, links, logger, writer: {} as WanPolicyWriter,
      informer: (e) => {
        events = e;
        return { start() {}, async stop() {}, async whenSynced() {} };
      },
    });
    const notified: number[] = [];
    store.subscribe((ps) => notified.push(ps.length));
    const object = (i: number, spec: WanPolicySpec): WanPolicyObject => ({
      apiVersion: 'wansteer.io/v1alpha1', kind: 'WanPolicy', spec,
      metadata: { name: `p${i}`, namespace: NS, resourceVersion: String(i + 1), creationTimestamp: `2026-01-01T00:00:${String(i % 60).padStart(2, '0')}Z` },
    });
    // 4096 policies on 4096 VirtualServices, and one that claims the route of p7 but is younger.
    for (let i = 0; i < 4096; i++) events.onAdd(object(i, { match: { route: { virtualService: `default/svc-${i}` } }, action: { links: ['lte'], mode: 'redirect' } }));
    events.onAdd({ ...object(5000, { match: { route: { virtualService: 'default/svc-7', route: 'r' } }, action: { links: ['lte'], mode: 'redirect' } }), metadata: { name: 'late', namespace: NS, resourceVersion: '9999', creationTimestamp: '2026-06-01T00:00:00Z' } });
    expect(notified).toEqual([]); // nothing derived inside the burst
    await vi.waitFor(() => expect(notified).toEqual([4096]));
    expect(store.get('late')).toBeUndefined();
    expect(warnings.join('\n')).toMatch(/late .*WS_POLICY_DUPLICATE_MATCH/);
    // A read right after an event sees it, before the burst's turn is over.
    events.onDelete(object(7, { match: { route: { virtualService: 'default/svc-7' } }, action: { links: ['lte'], mode: 'redirect' } }));
    expect(store.get('p7')).toBeUndefined();
    expect(store.get('late')?.name).toBe('late');
    expect(notified).toEqual([4096, 4096]);
  });

  it('derives a stream of events (one per turn, as a watch delivers them) a few times, not once per event', async () => {
    vi.useFakeTimers();
    try {
      let events!: WanPolicyEvents;
      const store = new ClusterPolicyStore({
        namespace: NS, links, logger, writer: {} as WanPolicyWriter, minGapMs: 20, now: () => Date.now(),
        informer: (e) => {
          events = e;
          return { start() {}, async stop() {}, async whenSynced() {} };
        },
      });
      const notified: number[] = [];
      store.subscribe((ps) => notified.push(ps.length));
      // 200 creations, one every millisecond: each arrives in its own turn of the event loop.
      for (let i = 0; i < 200; i++) {
        events.onAdd({
          apiVersion: 'wansteer.io/v1alpha1', kind: 'WanPolicy', spec: markEf(i % 64),
          metadata: { name: `p${i}`, namespace: NS, resourceVersion: String(i + 1), creationTimestamp: `2026-01-01T00:00:${String(i % 60).padStart(2, '0')}Z` },
        });
        await vi.advanceTimersByTimeAsync(1);
      }
      await vi.advanceTimersByTimeAsync(50);
      // At most one derivation per 20 ms (plus the first, at once), and the last one complete.
      expect(notified.length).toBeLessThanOrEqual(200 / 20 + 1);
      expect(notified.length).toBeGreaterThan(1);
      expect(notified.at(-1)).toBe(64); // DSCPs 0..63: the younger of two with one DSCP is left out
      expect(store.refused()).toHaveLength(200 - 64);
      expect(store.refused()[0]).toMatchObject({ code: 'WS_POLICY_DUPLICATE_MATCH' });
    } finally {
      vi.useRealTimers();
    }
  });
});
