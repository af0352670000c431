// Proves the node's cluster snapshot holds only what the sources would accept: every object is
// checked again on the way back in (a bad VirtualService or WanPolicy is left out with its
// reason, of two policies claiming the same route the first stays), a file that is not a
// snapshot is reported unusable rather than half used, and the writer replaces the file whole
// and coalesces a burst of changes into one write.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterSnapshotWriter, readClusterSnapshot, snapshotPath } from '../../src/k8s/cluster-snapshot.js';
import type { WanPolicy } from '../../src/policies/model.js';
import { virtualService } from './fake-apiserver.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wansteer-snapshot-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const policy = (name: string, route: string, links = ['lte']): WanPolicy => ({
  name, version: '7', spec: { match: { route: { virtualService: 'default/app', route } }, action: { links, mode: 'redirect' } },
});
const write = (doc: unknown) => writeFileSync(snapshotPath(dir), typeof doc === 'string' ? doc : JSON.stringify(doc));

describe('readClusterSnapshot', () => {
  it('gives back what passes the checks and names what does not', async () => {
    write({
      version: 1, writtenAt: '2026-12-01T10:00:00.000Z',
      virtualServices: [virtualService('default', 'app'), { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'bad', namespace: 'default' }, spec: { hosts: 'not-a-list' } }],
      policies: [policy('first', 'special'), policy('second', 'special'), { name: 'Upper', version: '1', spec: policy('x', 'default').spec }, { name: 'broken', spec: { match: {} } }],
    });
    const read = await readClusterSnapshot(dir);
    if (read.status !== 'loaded') throw new Error(`not loaded: ${JSON.stringify(read)}`);
    expect(read.snapshot.writtenAt).toBe('2026-12-01T10:00:00.000Z');
    expect(read.snapshot.virtualServices?.map((v) => v.name)).toEqual(['app']);
    expect(read.snapshot.policies).toEqual([policy('first', 'special')]);
    const skipped = read.snapshot.skipped.join('\n');
    expect(skipped).toMatch(/VirtualService default\/bad: WS_ROUTES_/);
    expect(skipped).toMatch(/WanPolicy second: WS_POLICY_DUPLICATE_MATCH/);
    expect(skipped).toMatch(/WanPolicy Upper: WS_POLICY_NAME_INVALID/);
    expect(skipped).toMatch(/WanPolicy broken: WS_POLICY_INVALID/);
  });

  it('calls a missing file missing, and a file that is not a snapshot unusable', async () => {
    expect(await readClusterSnapshot(dir)).toEqual({ status: 'missing' });
    for (const [doc, problem] of [
      ['{"version": 1, "writ', /not JSON/],
      [{ version: 2, writtenAt: 'x' }, /not a version 1 snapshot/],
      [[], /not a version 1 snapshot/],
      [{ version: 1, writtenAt: 'x', virtualServices: {} }, /virtualServices is not a list/],
    ] as const) {
      write(doc);
      const read = await readClusterSnapshot(dir);
      expect(read.status).toBe('unusable');
      expect(read.status === 'unusable' && read.problem).toMatch(problem);
    }
  });
});

describe('ClusterSnapshotWriter', () => {
  it('writes one whole file for a burst of changes, leaves no temp file, and writes what is pending on close', async () => {
    let policies = [policy('a', 'special')];
    let collected = 0;
    const writer = new ClusterSnapshotWriter({
      stateDir: dir, minGapMs: 30,
      collect: () => {
        collected++;
        return { policies, virtualServices: [virtualService('default', 'app')] };
      },
    });
    await writer.flush();
    expect(collected).toBe(1);
    for (let i = 0; i < 50; i++) writer.changed();
    policies = [policy('b', 'special')];
    await new Promise((r) => setTimeout(r, 80));
    expect(collected).toBe(2);
    const read = await readClusterSnapshot(dir);
    expect(read.status === 'loaded' && read.snapshot.policies?.map((p) => p.name)).toEqual(['b']);
    expect(readdirSync(dir)).toEqual(['cluster-snapshot.json']);

    policies = [policy('c', 'special')];
    writer.changed();
    await writer.close();
    expect((JSON.parse(readFileSync(snapshotPath(dir), 'utf8')) as { policies: WanPolicy[] }).policies[0]?.name).toBe('c');
    writer.changed(); // after close: nothing more
    await new Promise((r) => setTimeout(r, 50));
    expect(collected).toBe(3);
  });
});
