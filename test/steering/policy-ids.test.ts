// Proves the policy id file: kept across loads, replaced atomically, ids handed out round-robin.
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { POLICY_IDS_FILE, PolicyIds } from '../../src/steering/policy-ids.js';
import { tempStateDir } from './fixtures.js';

let state: ReturnType<typeof tempStateDir>;
beforeEach(() => {
  state = tempStateDir();
});
afterEach(() => state.remove());

describe('PolicyIds', () => {
  it('saves and loads the same assignment, leaving no temp file behind', () => {
    // Proves persistence and the atomic write's cleanliness.
    const { ids, found } = PolicyIds.load(state.dir);
    expect(found.status).toBe('missing');
    expect([ids.assign('a'), ids.assign('b'), ids.assign('a')]).toEqual([1, 2, 1]);
    ids.save();
    expect(readdirSync(state.dir)).toEqual([POLICY_IDS_FILE]);
    const again = PolicyIds.load(state.dir);
    expect(again.found.status).toBe('loaded');
    expect([again.ids.get('a'), again.ids.get('b'), again.ids.nameOf(2)]).toEqual([1, 2, 'b']);
    expect(again.ids.assign('c')).toBe(3);
  });

  it('does not reuse a released id until the others have been used', () => {
    // Proves round-robin: a stale flow's id cannot be handed straight to a new policy, even after a restart.
    const { ids } = PolicyIds.load(state.dir);
    ids.assign('a');
    ids.assign('b');
    ids.release('a');
    ids.save();
    const { ids: loaded } = PolicyIds.load(state.dir);
    expect(loaded.assign('c')).toBe(3);
    expect(loaded.hasId(1)).toBe(false);
  });

  it('wraps around and reports exhaustion', () => {
    // Proves the id space is bounded by the datapath's policy table and reused only when free.
    const { ids } = PolicyIds.load(state.dir);
    for (let i = 1; i < 4096; i++) expect(ids.assign(`p${i}`)).toBe(i);
    expect(ids.assign('one-too-many')).toBeNull();
    ids.release('p7');
    expect(ids.assign('late')).toBe(7);
  });

  it('reports an unusable file instead of trusting it', () => {
    // Proves bad JSON, a wrong version and duplicate ids all count as unreadable.
    for (const text of ['{', '{"version":2,"ids":{}}', '{"version":1,"ids":{"a":1,"b":1}}', '{"version":1,"ids":{"a":0}}']) {
      writeFileSync(join(state.dir, POLICY_IDS_FILE), text);
      const { ids, found } = PolicyIds.load(state.dir);
      expect(found.status, text).toBe('unreadable');
      expect(ids.size).toBe(0);
    }
  });
});
