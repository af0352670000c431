/**
 * Proves the BTF reader sees in the compiled object what steer_abi.h and abi.ts say: every map's
 * value layout field by field, and the layout version the object carries — 1 for the shipped
 * object, 2 with one more flow value field for the test variant, which this agent can drive —
 * and that an object whose fields are not where this agent writes them is refused.
 */
import { expect, it } from 'vitest';
import * as native from '../../native/libbpf.js';
import { Layout, LAYOUT_VERSION, MapName } from '../../src/datapath/abi.js';
import { Btf } from '../../src/datapath/btf.js';
import { defaultObjectPath } from '../../src/datapath/loader.js';
import { checkObjectMatchesAgent, readObjectLayout } from '../../src/datapath/pins.js';
import { testVariants } from '../helpers/bpf-variants.js';
import { describePrivileged } from '../helpers/privilege.js';

function withObject<T>(path: string, fn: (obj: native.NativePtr) => T): T {
  const obj = native.objectOpen(path);
  if (typeof obj === 'number') throw new Error(`open ${path}: ${obj}`);
  try {
    return fn(obj);
  } finally {
    native.objectClose(obj);
  }
}

describePrivileged('BTF of the steering object', () => {
  it('lays out every value as abi.ts does, and says layout 1', () => {
    withObject(defaultObjectPath(), (obj) => {
      const btf = new Btf(native.objectBtfRaw(obj) as Buffer);
      const layout = readObjectLayout(obj, defaultObjectPath());
      expect(layout.version).toBe(LAYOUT_VERSION);
      expect(btf.variable('ws_layout_version')).toEqual({ section: '.rodata', offset: 0, size: 4 });
      const link = layout.maps.get(MapName.links)!.value!;
      expect(link.name).toBe('ws_link');
      expect(link.size).toBe(Layout.link.size);
      expect(link.members.map((m) => [m.name, m.offset, m.size])).toEqual([
        ['ifindex', Layout.link.ifindex, 4], ['up', Layout.link.up, 1], ['flags', Layout.link.flags, 1],
        ['pad', Layout.link.pad, 2], ['nh4', Layout.link.nh4, 4], ['nh6', Layout.link.nh6, 16],
      ]);
      const flowVal = layout.maps.get(MapName.flows4)!.value!;
      expect(flowVal.members.map((m) => [m.name, m.offset])).toEqual([
        ['policy_id', Layout.flowVal.policyId], ['flags', Layout.flowVal.flags], ['last_seen_ns', Layout.flowVal.lastSeenNs],
      ]);
      expect(layout.maps.get(MapName.flows6)!.key).toMatchObject({ name: 'ws_flow6_key', size: Layout.flow6Key.size });
      expect(layout.maps.get(MapName.dscp)!.value).toEqual({ name: '', size: 4, members: [] });
      expect(layout.programs).toEqual(['ws_egress_eth', 'ws_egress_l3']);
    });
  });

  it('reads layout 2 and the new field from the test variant', () => {
    const { steerNext } = testVariants();
    withObject(steerNext, (obj) => {
      const layout = readObjectLayout(obj, steerNext);
      expect(layout.version).toBe(2);
      const v = layout.maps.get(MapName.flows4)!;
      expect(v.valueSize).toBe(24);
      expect(v.value!.members.at(-1)).toEqual({ name: 'test_next', offset: 16, size: 8 });
    });
  });

  it('accepts the layout-2 object (fields appended) and refuses one that moved a field this agent writes', () => {
    const { steerNext } = testVariants();
    withObject(steerNext, (obj) => expect(() => checkObjectMatchesAgent(readObjectLayout(obj, steerNext), steerNext)).not.toThrow());
    withObject(defaultObjectPath(), (obj) => {
      const layout = readObjectLayout(obj, defaultObjectPath());
      const flows = layout.maps.get(MapName.flows4)!;
      const moved = { ...flows.value!, members: flows.value!.members.map((m) => (m.name === 'policy_id' ? { ...m, offset: 4 } : m.name === 'flags' ? { ...m, offset: 0 } : m)) };
      const maps = new Map(layout.maps).set(MapName.flows4, { ...flows, value: moved });
      expect(() => checkObjectMatchesAgent({ ...layout, maps }, 'x.o')).toThrow(
        expect.objectContaining({ code: 'WS_DATAPATH_OBJECT', message: expect.stringMatching(/ws_flows4's value .* has policy_id at 4, this agent expects it at 0: .* rebuild it/) }),
      );
    });
  });
});
