// Proves the standalone policy store: CRUD with versions as ETags, compare-and-swap on If-Match,
// nothing stored on a bad write, outside edits picked up (editor rename-replace included), a
// broken outside edit logged and ignored with the last good state kept, concurrent writes all
// landing, and versions that keep rising across restarts.
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PolicyError } from '../../src/policies/errors.js';
import { FilePolicyStore } from '../../src/policies/file-store.js';
import type { WanPolicy, WanPolicySpec } from '../../src/policies/model.js';
import { parsePolicyFile } from '../../src/policies/policy-file.js';

const links = ['fibre', 'lte'];
const toLte = (route: string): WanPolicySpec => ({ match: { route: { virtualService: 'default/app', route } }, action: { links: ['lte'], mode: 'redirect' } });
const markEf = (dscp: number): WanPolicySpec => ({ match: { dscp }, action: { links: [], dscp: 46, mode: 'mark' } });

let dir: string;
let path: string;
let stores: FilePolicyStore[];
let warnings: { fields: object; message: string }[];
const logger = {
  info() {},
  debug() {},
  error() {},
  warn: (fields: object, message: string) => void warnings.push({ fields, message }),
};

async function open(options: { watch?: boolean } = {}): Promise<FilePolicyStore> {
  const store = new FilePolicyStore({ path, links, logger, watch: options.watch === false ? false : { debounceMs: 20, pollMs: 0 } });
  stores.push(store);
  await store.ready();
  return store;
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(PolicyError);
  return (err as PolicyError).code;
}

const onDisk = async () => parsePolicyFile(await readFile(path, 'utf8'), path, new Set(links));

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wansteer-policies-'));
  path = join(dir, 'state', 'policies.yaml');
  stores = [];
  warnings = [];
});

afterEach(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

describe('FilePolicyStore: CRUD', () => {
  it('starts empty without a file and creates file and directory on the first write', async () => {
    const store = await open();
    expect(store.list()).toEqual([]);
    const created = await store.create('minion', toLte('minion'));
    expect(created).toEqual({ name: 'minion', spec: toLte('minion'), version: '1' });
    expect((await onDisk()).items).toEqual([{ name: 'minion', spec: toLte('minion'), version: 1 }]);
  });

  it('creates, reads, replaces and deletes, with a new version on every write', async () => {
    const store = await open();
    const a = await store.create('a', toLte('minion'));
    const b = await store.create('b', markEf(10));
    expect(store.get('a')).toEqual(a);
    const a2 = await store.replace('a', toLte('batch'), a.version);
    expect(Number(a2.version)).toBeGreaterThan(Number(b.version));
    await store.delete('b', b.version);
    expect(store.list().map((p) => p.name)).toEqual(['a']);
    expect((await onDisk()).items.map((i) => i.name)).toEqual(['a']);
    expect((await onDisk()).revision).toBe(4);
  });

  it('refuses a stale If-Match (412), a taken name (409), a missing policy (404) and changes nothing', async () => {
    const store = await open();
    const a = await store.create('a', toLte('minion'));
    await store.replace('a', toLte('batch'), a.version);
    const before = await readFile(path, 'utf8');
    expect(await codeOf(store.replace('a', toLte('other'), a.version))).toBe('WS_POLICY_CONFLICT');
    expect(await codeOf(store.delete('a', a.version))).toBe('WS_POLICY_CONFLICT');
    expect(await codeOf(store.create('a', toLte('x')))).toBe('WS_POLICY_EXISTS');
    expect(await codeOf(store.replace('nope', toLte('x')))).toBe('WS_POLICY_NOT_FOUND');
    expect(await codeOf(store.delete('nope'))).toBe('WS_POLICY_NOT_FOUND');
    expect(await readFile(path, 'utf8')).toBe(before);
  });

  it('stores nothing for bad input: unknown link, DSCP 64, duplicate match, bad name', async () => {
    const store = await open();
    await store.create('voice', markEf(10));
    const before = await readFile(path, 'utf8');
    const bad = (spec: unknown) => spec as WanPolicySpec;
    expect(await codeOf(store.create('x', bad({ match: { dscp: 1 }, action: { links: ['sat'], mode: 'redirect' } })))).toBe('WS_POLICY_UNKNOWN_LINK');
    expect(await codeOf(store.create('x', bad({ match: { dscp: 1 }, action: { links: [], dscp: 64, mode: 'mark' } })))).toBe('WS_POLICY_INVALID');
    expect(await codeOf(store.create('x', markEf(10)))).toBe('WS_POLICY_DUPLICATE_MATCH');
    expect(await codeOf(store.create('Bad_Name', markEf(11)))).toBe('WS_POLICY_NAME_INVALID');
    expect(store.list().map((p) => p.name)).toEqual(['voice']);
    expect(await readFile(path, 'utf8')).toBe(before);
  });

  it('tells subscribers the full list after each write', async () => {
    const store = await open();
    const seen: string[][] = [];
    const unsubscribe = store.subscribe((ps) => seen.push(ps.map((p) => p.name)));
    await store.create('a', markEf(1));
    await store.create('b', markEf(2));
    unsubscribe();
    await store.delete('a');
    expect(seen).toEqual([['a'], ['a', 'b']]);
  });

  it('serializes concurrent writes: every one lands, versions all distinct', async () => {
    const store = await open();
    const created = await Promise.all(Array.from({ length: 40 }, (_, i) => store.create(`p${i}`, markEf(i))));
    expect(new Set(created.map((p) => p.version)).size).toBe(40);
    expect((await onDisk()).items).toHaveLength(40);
    // Ten writers racing for one policy with the same If-Match: exactly one wins.
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => store.replace('p0', markEf(50 + i), created[0]!.version)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });

  it('keeps versions rising across restarts, and removes temp files a crash left behind', async () => {
    const first = await open({ watch: false });
    await first.create('a', markEf(1));
    await first.delete('a');
    await first.close();
    await writeFile(join(dirname(path), '.policies.yaml.999.deadbeef.tmp'), 'half a fi');
    const second = await open({ watch: false });
    const b = await second.create('b', markEf(2));
    expect(b.version).toBe('3');
    expect((await readdir(dirname(path))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses to start on a broken file, naming the field', async () => {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, 'apiVersion: wansteer.io/v1alpha1\nkind: WanPolicyList\nitems:\n  - name: a\n    spec: { match: { dscp: 70 }, action: { links: [], dscp: 1, mode: mark } }\n');
    const store = new FilePolicyStore({ path, links, logger, watch: false });
    stores.push(store);
    const err = (await store.ready().catch((e: unknown) => e)) as PolicyError;
    expect(err.code).toBe('WS_POLICY_FILE_INVALID');
    expect(err.message).toMatch(/items\[0\]: WS_POLICY_INVALID: spec\.match\.dscp: 70 is above the maximum 63/);
  });
});

/** A policy file whose `items` is a YAML alias bomb ("billion laughs"): 9^9 strings once expanded. */
function aliasBomb(): string {
  const lines = ['apiVersion: wansteer.io/v1alpha1', 'kind: WanPolicyList', 'x0: &x0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < 9; i++) lines.push(`x${i}: &x${i} [${Array(9).fill(`*x${i - 1}`).join(',')}]`);
  lines.push('items: *x8');
  return lines.join('\n') + '\n';
}

describe('FilePolicyStore: a YAML alias bomb', () => {
  it('refuses to start on one with WS_POLICY_FILE_INVALID, without expanding it', async () => {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, aliasBomb());
    const store = new FilePolicyStore({ path, links, logger, watch: false });
    stores.push(store);
    const err = (await store.ready().catch((e: unknown) => e)) as PolicyError;
    expect(err).toBeInstanceOf(PolicyError);
    expect(err.code).toBe('WS_POLICY_FILE_INVALID');
    expect(err.statusCode).toBe(503);
    expect(err.message).toMatch(/alias/i);
  });

  it('treats one written over a good file as a broken edit: last good state kept, writes refused 503', async () => {
    const store = await open({ watch: false });
    const a = await store.create('a', markEf(1));
    await writeFile(path, aliasBomb());
    expect(await codeOf(store.create('b', markEf(2)))).toBe('WS_POLICY_STORE_UNAVAILABLE');
    expect(store.get('a')).toEqual(a);
    expect(JSON.stringify(warnings)).toMatch(/alias/i);
  });
});

describe('FilePolicyStore: outside edits', () => {
  it('picks up an edit written in place, and one saved by rename-replace', async () => {
    const store = await open();
    await store.create('a', markEf(1));
    const changes: WanPolicy[][] = [];
    store.subscribe((ps) => changes.push([...ps]));

    const text = await readFile(path, 'utf8');
    await writeFile(path, text.replace('dscp: 1\n', 'dscp: 5\n'));
    await vi.waitFor(() => expect(store.get('a')?.spec.match).toEqual({ dscp: 5 }));
    // The spec changed but the hand edit kept the version: the store gives it a new one.
    expect(store.get('a')?.version).not.toBe('1');

    const replacement = join(dir, 'state', '.policies.yaml.swp');
    await writeFile(replacement, (await readFile(path, 'utf8')) + '  - name: b\n    spec: { match: { dscp: 7 }, action: { links: [lte], mode: redirect } }\n');
    await rename(replacement, path);
    await vi.waitFor(() => expect(store.list().map((p) => p.name)).toEqual(['a', 'b']));
    expect(changes.at(-1)!.map((p) => p.name)).toEqual(['a', 'b']);
  });

  it('logs a broken edit, keeps the last good state, refuses writes until it is fixed', async () => {
    const store = await open();
    const a = await store.create('a', toLte('minion'));
    const good = await readFile(path, 'utf8');
    await writeFile(path, good.replace('- lte', '- satellite'));
    await vi.waitFor(() => expect(warnings.length).toBeGreaterThan(0));
    expect(JSON.stringify(warnings[0]!.fields)).toMatch(/WS_POLICY_UNKNOWN_LINK/);
    expect(store.get('a')).toEqual(a);
    expect(await codeOf(store.create('b', markEf(2)))).toBe('WS_POLICY_STORE_UNAVAILABLE');

    await writeFile(path, good);
    await vi.waitFor(async () => expect((await store.create('b', markEf(2))).name).toBe('b'));
  });

  it('builds a write on an edit the watch has not reported yet', async () => {
    const store = await open({ watch: false });
    await store.create('a', markEf(1));
    await writeFile(path, (await readFile(path, 'utf8')) + '  - name: hand\n    spec: { match: { dscp: 9 }, action: { links: [fibre], mode: redirect } }\n');
    await store.create('b', markEf(2));
    expect((await onDisk()).items.map((i) => i.name)).toEqual(['a', 'hand', 'b']);
  });
});
