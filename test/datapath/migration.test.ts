/**
 * Upgrades and resizes through the real kernel: live UDP flows, IPv4 and IPv6, steered both ways
 * between the lab's two WAN links, keep flowing on their links while the agent (the facade in a
 * driver process in the edge namespace) is restarted with a bigger flow table, a smaller one, one
 * too small for every flow (the most recently seen are kept), an object whose flow value has a
 * new field (layout 2), and then an older object, which is refused with nothing changed. Not one
 * packet of a steered flow arrives by the wrong link, and the flows, policies and links are the
 * same after every restart as before.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import * as native from '../../native/libbpf.js';
import { MapName } from '../../src/datapath/abi.js';
import { readStamp } from '../../src/datapath/pins.js';
import { testVariants } from '../helpers/bpf-variants.js';
import { DatapathDriver } from '../helpers/driver-client.js';
import { LIVE_FLOWS, MigrationRig, TO_WAN0, TO_WAN1, flowKeyString } from '../helpers/migration-rig.js';
import { describePrivileged } from '../helpers/privilege.js';
import { syntheticFlow } from '../helpers/synthetic-flows.js';

const SYNTHETIC4 = 1200;
const SYNTHETIC6 = 300;
const BATCHES = 15;

describePrivileged('map migration: restarts with other table sizes and layouts keep every flow on its link', () => {
  let rig: MigrationRig;
  let steerNext: string;
  /** The synthetic flows' key strings, by batch (batch 0 seen longest ago). */
  const batches: string[][] = [];
  /** What the datapath held before the restart under test. */
  let before: { flows: Map<string, number>; links: unknown; policies: unknown };

  const state = async () => ({
    flows: await rig.flows(),
    links: await rig.dp.call('listLinks'),
    policies: await rig.dp.call('listPolicies'),
  });

  /** Restart with `open`, then wait for every live flow to go on flowing on its link. */
  async function restart(open: Record<string, unknown>) {
    before = await state();
    const result = await rig.restart(open);
    await rig.flowing(rig.counts());
    return result;
  }

  function noneSteeredWrongly(): void {
    const c = rig.counts();
    for (const f of LIVE_FLOWS) expect({ flow: f.name, wrong: c[f.name]!.wrong }).toEqual({ flow: f.name, wrong: 0 });
  }

  const pinIds = () =>
    Object.fromEntries(Object.values(MapName).map((name) => {
      const fd = native.objGet(join(rig.pinDir, name));
      const info = native.mapInfo(fd);
      native.closeFd(fd);
      return [name, typeof info === 'number' ? info : info.id];
    }));

  /** The program id of our tc filter on each WAN link's egress. */
  const filterProgs = () =>
    Object.fromEntries(['wan0', 'wan1'].map((dev) => {
      const out = JSON.parse(rig.lab.exec(rig.lab.edge, ['tc', '-j', 'filter', 'show', 'dev', dev, 'egress'])) as { options?: { prog?: { id: number } } }[];
      return [dev, out.find((f) => f.options?.prog)?.options?.prog?.id];
    }));

  beforeAll(async () => {
    steerNext = testVariants().steerNext;
    rig = await MigrationRig.start('migr', { flowTableSize: 4096 });
    // Synthetic flows in batches seen a second apart, the oldest 100 s ago: a known recency order.
    const t0 = process.hrtime.bigint() - 100_000_000_000n;
    const per4 = SYNTHETIC4 / BATCHES;
    const per6 = SYNTHETIC6 / BATCHES;
    for (let b = 0; b < BATCHES; b++) {
      const now = t0 + BigInt(b) * 1_000_000_000n;
      await rig.dp.call('fillFlows', { first: b * per4, count: per4, family: 4, policyIds: [TO_WAN0, TO_WAN1], now });
      await rig.dp.call('fillFlows', { first: b * per6, count: per6, family: 6, policyIds: [TO_WAN1, TO_WAN0], now });
      const keys: string[] = [];
      for (let i = 0; i < per4; i++) keys.push(flowKeyString(syntheticFlow(b * per4 + i, 4)));
      for (let i = 0; i < per6; i++) keys.push(flowKeyString(syntheticFlow(b * per6 + i, 6)));
      batches.push(keys);
    }
    rig.startStreams();
    await rig.flowing(Object.fromEntries(LIVE_FLOWS.map((f) => [f.name, { right: 0 }])));
  }, 120_000);

  afterAll(async () => {
    await rig?.destroy();
  });

  it('starts with every flow in place (adopting itself changes nothing)', async () => {
    const r = await restart({ flowTableSize: 4096 });
    expect(r).toMatchObject({ adopted: true, layoutVersion: 1, migration: null });
    const s = await state();
    expect(s.flows.size).toBe(SYNTHETIC4 + SYNTHETIC6 + 4);
    expect(s).toEqual(before);
    noneSteeredWrongly();
  });

  it('grows the flow tables to 8192: every flow is copied, the filters swapped, the pins replaced', async () => {
    const ids = pinIds();
    const progs = filterProgs();
    const r = await restart({ flowTableSize: 8192 });
    expect(r).toMatchObject({ adopted: true, flowTableSize: 8192, layoutVersion: 1 });
    expect(r.migration!.maps).toEqual([
      { name: 'ws_flows4', reasons: ['max_entries 4096 -> 8192'], entries: SYNTHETIC4 + 2, copied: SYNTHETIC4 + 2, dropped: 0 },
      { name: 'ws_flows6', reasons: ['max_entries 4096 -> 8192'], entries: SYNTHETIC6 + 2, copied: SYNTHETIC6 + 2, dropped: 0 },
    ]);
    expect(r.migration!.swapped.sort()).toEqual(['wan0 egress', 'wan1 egress']);
    expect(await state()).toEqual(before);
    // New flow tables under the old names, everything else the same map; new programs on the hooks.
    const now = pinIds();
    expect(now[MapName.flows4]).not.toBe(ids[MapName.flows4]);
    expect({ ...now, [MapName.flows4]: 0, [MapName.flows6]: 0 }).toEqual({ ...ids, [MapName.flows4]: 0, [MapName.flows6]: 0 });
    expect(filterProgs().wan0).not.toBe(progs.wan0);
    expect(readdirSync(rig.pinDir).filter((n) => n.includes('migrating'))).toEqual([]);
    noneSteeredWrongly();
  });

  it('shrinks them to 2048, where every flow still fits', async () => {
    const r = await restart({ flowTableSize: 2048 });
    expect(r.migration!.maps.map((m) => [m.name, m.copied, m.dropped])).toEqual([['ws_flows4', SYNTHETIC4 + 2, 0], ['ws_flows6', SYNTHETIC6 + 2, 0]]);
    expect(await state()).toEqual(before);
    noneSteeredWrongly();
  });

  it('shrinks them to 1024, below the IPv4 flows: the most recently seen are kept, the live ones among them', async () => {
    const r = await restart({ flowTableSize: 1024 });
    const v4 = r.migration!.maps.find((m) => m.name === 'ws_flows4')!;
    expect(v4).toMatchObject({ entries: SYNTHETIC4 + 2, copied: 1024, dropped: SYNTHETIC4 + 2 - 1024 });
    const after = await state();
    expect({ links: after.links, policies: after.policies }).toEqual({ links: before.links, policies: before.policies });
    for (const f of LIVE_FLOWS.filter((x) => x.policyId !== null)) expect(after.flows.get(flowKeyString(f.key)), f.name).toBe(f.policyId);
    // The newest 1022 synthetic IPv4 flows were written, oldest first; the LRU may have dropped a
    // few of the oldest of those as it filled (it frees up to 128 nodes per CPU ahead). So no
    // dropped flow was seen more recently than a kept one, and the newest batches are all there.
    const isV4 = (k: string) => /^\d+ \d+\./.test(k);
    const batchOf = (k: string) => batches.findIndex((b) => b.includes(k));
    const v4Keys = batches.flat().filter(isV4);
    const kept = v4Keys.filter((k) => after.flows.has(k));
    const dropped = v4Keys.filter((k) => !after.flows.has(k));
    expect(kept.length).toBeGreaterThanOrEqual(1022 - 256);
    expect(Math.max(...dropped.map(batchOf))).toBeLessThanOrEqual(Math.min(...kept.map(batchOf)));
    const per4 = SYNTHETIC4 / BATCHES;
    for (const k of v4Keys.slice(-Math.floor((1022 - 256) / per4) * per4)) expect(after.flows.has(k), k).toBe(true);
    for (const k of kept) expect(after.flows.get(k)).toBe(before.flows.get(k));
    // IPv6 fit: all of them kept.
    for (const [k, p] of before.flows) if (/^\d+ [0-9a-f]*:/.test(k)) expect(after.flows.get(k)).toBe(p);
    noneSteeredWrongly();
  });

  it('takes an object whose flow value has a new field (layout 2): values converted, the field zero, counters kept', async () => {
    const redirected = async () => BigInt((await rig.dp.call<{ reasons: { redirected: { packets: string } } }>('counters')).reasons.redirected.packets);
    const countedBefore = await redirected();
    const r = await restart({ flowTableSize: 1024, objectPath: steerNext });
    expect(r).toMatchObject({ layoutVersion: 2, migration: { fromLayout: 1, toLayout: 2 } });
    expect(r.migration!.maps.map((m) => m.name)).toEqual(['ws_flows4', 'ws_flows6', 'ws_reasons']);
    for (const m of r.migration!.maps.slice(0, 2)) {
      expect(m.reasons).toEqual([expect.stringMatching(/^value ws_flow_val \{.*\} \(16 bytes\) -> ws_flow_val \{.* test_next@16:8 \} \(24 bytes\)$/)]);
      expect(m.dropped).toBe(0);
    }
    // The per-CPU reason counters got a slot more: the old program's counts were added to the new ones.
    expect(r.migration!.maps[2]).toMatchObject({ reasons: ['max_entries 15 -> 16'], entries: 15, copied: 15 });
    expect(await redirected()).toBeGreaterThan(countedBefore);
    expect(await state()).toEqual(before);
    expect(readStamp(rig.pinDir)).toBe(2);
    // The flows are 24-byte values now, with test_next zero.
    const fd = native.objGet(join(rig.pinDir, MapName.flows4));
    const info = native.mapInfo(fd) as native.MapInfo;
    const key = Buffer.alloc(16);
    const value = Buffer.alloc(24, 0xff);
    expect(native.mapGetNextKey(fd, null, key)).toBe(0);
    expect(native.mapLookup(fd, key, value)).toBe(0);
    native.closeFd(fd);
    expect(info.valueSize).toBe(24);
    expect(value.readBigUInt64LE(16)).toBe(0n);
    noneSteeredWrongly();
  });

  it('refuses the older object (layout 1) with WS_DATAPATH_LAYOUT, and changes nothing', async () => {
    before = await state();
    const ids = pinIds();
    const progs = filterProgs();
    await rig.dp.exit();
    const older = DatapathDriver.start(rig.lab, rig.lab.edge);
    await expect(older.call('open', { pinDir: rig.pinDir, flowTableSize: 1024 })).rejects.toMatchObject({
      code: 'WS_DATAPATH_LAYOUT',
      message: expect.stringMatching(/the pins hold layout 2, written by a newer agent; this agent's object has layout 1 .*nothing was changed/),
    });
    await older.exit();
    expect(pinIds()).toEqual(ids);
    expect(filterProgs()).toEqual(progs);
    expect(readStamp(rig.pinDir)).toBe(2);
    await rig.flowing(rig.counts()); // the layout-2 programs go on steering
    // The newer agent comes back and finds everything as it left it.
    rig.dp = DatapathDriver.start(rig.lab, rig.lab.edge);
    expect(await rig.dp.call('open', { pinDir: rig.pinDir, flowTableSize: 1024, objectPath: steerNext })).toMatchObject({ adopted: true, migration: null });
    expect(await state()).toEqual(before);
    noneSteeredWrongly();
  });
});
