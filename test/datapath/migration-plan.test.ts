/**
 * Proves the migration plan adopts what is unchanged, migrates a map whose size, flags or value
 * layout changed (converting values field by field, by name), creates what is not pinned, and
 * refuses — with WS_DATAPATH_LAYOUT and what to do — a newer agent's layout, a changed key or
 * type, a field that changed size, and a hook whose program the object lacks.
 */
import { describe, expect, it } from 'vitest';
import type { TypeShape } from '../../src/datapath/btf.js';
import { DatapathError } from '../../src/datapath/errors.js';
import {
  checkSwappable, convertValues, planMigration, valueConversion, type MapShape, type ObjectLayout,
} from '../../src/datapath/migration-plan.js';

const LRU = 9;
const ARRAY = 2;

const flowKey: TypeShape = {
  name: 'ws_flow4_key', size: 16,
  members: [
    { name: 'saddr', offset: 0, size: 4 }, { name: 'daddr', offset: 4, size: 4 }, { name: 'sport', offset: 8, size: 2 },
    { name: 'dport', offset: 10, size: 2 }, { name: 'proto', offset: 12, size: 1 }, { name: 'pad', offset: 13, size: 3 },
  ],
};
const flowVal: TypeShape = {
  name: 'ws_flow_val', size: 16,
  members: [{ name: 'policy_id', offset: 0, size: 4 }, { name: 'flags', offset: 4, size: 4 }, { name: 'last_seen_ns', offset: 8, size: 8 }],
};
const flowValNext: TypeShape = { ...flowVal, size: 24, members: [...flowVal.members, { name: 'test_next', offset: 16, size: 8 }] };
/** struct ws_link before layout 1: the byte after `up` was padding. */
const linkPreFlags: TypeShape = {
  name: 'ws_link', size: 28,
  members: [
    { name: 'ifindex', offset: 0, size: 4 }, { name: 'up', offset: 4, size: 1 }, { name: 'pad', offset: 5, size: 3 },
    { name: 'nh4', offset: 8, size: 4 }, { name: 'nh6', offset: 12, size: 16 },
  ],
};
const link: TypeShape = {
  name: 'ws_link', size: 28,
  members: [
    { name: 'ifindex', offset: 0, size: 4 }, { name: 'up', offset: 4, size: 1 }, { name: 'flags', offset: 5, size: 1 },
    { name: 'pad', offset: 6, size: 2 }, { name: 'nh4', offset: 8, size: 4 }, { name: 'nh6', offset: 12, size: 16 },
  ],
};
const u32: TypeShape = { name: '', size: 4, members: [] };

const flows = (maxEntries: number, value = flowVal): MapShape => ({ type: LRU, keySize: 16, valueSize: value.size, maxEntries, flags: 0, key: flowKey, value });
const links = (value = link): MapShape => ({ type: ARRAY, keySize: 4, valueSize: 28, maxEntries: 64, flags: 0, key: u32, value });

function object(version: number, maps: Record<string, MapShape>): ObjectLayout {
  return { version, maps: new Map(Object.entries(maps)), programs: ['ws_egress_eth', 'ws_egress_l3'] };
}
const pinned = (version: number | null, maps: Record<string, MapShape>) => ({ version, maps: new Map(Object.entries(maps)) });

function refusal(fn: () => unknown): DatapathError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DatapathError);
    expect((err as DatapathError).code).toBe('WS_DATAPATH_LAYOUT');
    expect((err as DatapathError).message).toMatch(/nothing was changed.*wansteer cleanup/);
    return err as DatapathError;
  }
  throw new Error('expected a refusal');
}

describe('migration plan', () => {
  it('adopts unchanged maps, creates missing ones, and has nothing to migrate', () => {
    const plan = planMigration(object(1, { ws_flows4: flows(4096), ws_links: links(), ws_new: links() }), pinned(1, { ws_flows4: flows(4096), ws_links: links() }));
    expect(plan.maps.map((m) => [m.name, m.action])).toEqual([['ws_flows4', 'adopt'], ['ws_links', 'adopt'], ['ws_new', 'create']]);
    expect(plan.migrates).toBe(false);
    expect(plan.pinnedVersion).toBe(1);
  });

  it('migrates a flow table of another size byte for byte, and knows where last-seen is', () => {
    const plan = planMigration(object(1, { ws_flows4: flows(8192) }), pinned(1, { ws_flows4: flows(4096) }));
    expect(plan.migrates).toBe(true);
    expect(plan.maps[0]).toMatchObject({ action: 'migrate', reasons: ['max_entries 4096 -> 8192'], convert: null, recency: { offset: 8 } });
  });

  it('reads unstamped pins as layout 1, and carries a value with a new field over with the field at zero', () => {
    const plan = planMigration(object(2, { ws_flows4: flows(4096, flowValNext) }), pinned(null, { ws_flows4: flows(4096) }));
    expect(plan.pinnedVersion).toBe(1);
    expect(plan.version).toBe(2);
    const m = plan.maps[0]!;
    if (m.action !== 'migrate') throw new Error(m.action);
    expect(m.reasons[0]).toMatch(/^value ws_flow_val \{ policy_id@0:4 flags@4:4 last_seen_ns@8:8 \} \(16 bytes\) -> .*test_next@16:8/);
    expect(m.convert).toEqual({ oldSize: 16, newSize: 24, copies: [{ from: 0, to: 0, len: 16 }] });

    const old = Buffer.from('0700000000000000' + '1122334455667788', 'hex');
    const out = Buffer.alloc(24, 0xee);
    convertValues(m.convert!, old, 16, out, 24, 1);
    expect(out.toString('hex')).toBe('0700000000000000' + '1122334455667788' + '0000000000000000');
  });

  it('turns the old ws_link pad byte into flags = 0 and keeps every other field', () => {
    const conv = valueConversion('ws_links', linkPreFlags, link);
    expect(conv.copies).toEqual([{ from: 0, to: 0, len: 5 }, { from: 8, to: 8, len: 20 }]);
    const old = Buffer.alloc(28);
    old.writeUInt32LE(7, 0);
    old[4] = 1;
    old.fill(0xaa, 5, 8); // garbage in the old padding must not become flags
    old.writeUInt32LE(0x0102000a, 8);
    old.fill(0xfe, 12, 28);
    const out = Buffer.alloc(28);
    convertValues(conv, old, 28, out, 28, 1);
    expect(out.readUInt32LE(0)).toBe(7);
    expect(out[4]).toBe(1);
    expect([...out.subarray(5, 8)]).toEqual([0, 0, 0]);
    expect(out.subarray(8).equals(old.subarray(8))).toBe(true);
  });

  it('moves a field to its new offset and drops a field the new layout lost', () => {
    const from: TypeShape = { name: 's', size: 12, members: [{ name: 'a', offset: 0, size: 4 }, { name: 'gone', offset: 4, size: 4 }, { name: 'b', offset: 8, size: 4 }] };
    const to: TypeShape = { name: 's', size: 8, members: [{ name: 'b', offset: 0, size: 4 }, { name: 'a', offset: 4, size: 4 }] };
    const conv = valueConversion('m', from, to);
    const out = Buffer.alloc(16);
    convertValues(conv, Buffer.from('010000000200000003000000' + '040000000500000006000000', 'hex'), 12, out, 8, 2);
    expect(out.toString('hex')).toBe('0300000001000000' + '0600000004000000');
  });

  it('refuses pins of a newer layout (a downgrade)', () => {
    const err = refusal(() => planMigration(object(1, { ws_flows4: flows(4096) }), pinned(2, { ws_flows4: flows(4096, flowValNext) })));
    expect(err.message).toMatch(/the pins hold layout 2, written by a newer agent; this agent's object has layout 1/);
  });

  it('refuses a changed key, a changed map type, and a field that changed size', () => {
    const wideKey: MapShape = { ...flows(4096), keySize: 20, key: { ...flowKey, size: 20 } };
    expect(refusal(() => planMigration(object(2, { ws_flows4: wideKey }), pinned(1, { ws_flows4: flows(4096) }))).message).toMatch(/ws_flows4's key changed/);
    expect(refusal(() => planMigration(object(2, { ws_flows4: { ...flows(4096), type: 1 } }), pinned(1, { ws_flows4: flows(4096) }))).message)
      .toMatch(/ws_flows4 is a lru_hash in the pins and a hash in the object/);
    const widePolicy: TypeShape = { ...flowVal, members: [{ name: 'policy_id', offset: 0, size: 8 }, { name: 'last_seen_ns', offset: 8, size: 8 }] };
    expect(refusal(() => planMigration(object(2, { ws_flows4: flows(4096, widePolicy) }), pinned(1, { ws_flows4: flows(4096) }))).message)
      .toMatch(/ws_flows4's field policy_id is 4 bytes in the pins and 8 in the object/);
  });

  it('refuses to migrate when one of our filters runs a program the object lacks', () => {
    const o = object(1, { ws_flows4: flows(8192) });
    expect(() => checkSwappable(o, [{ where: 'wan0 egress', program: 'ws_egress_eth' }])).not.toThrow();
    expect(refusal(() => checkSwappable(o, [{ where: 'wan1 ingress', program: 'ws_ingress_nat' }])).message).toMatch(/wan1 ingress runs our program ws_ingress_nat/);
  });
});
