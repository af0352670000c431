/**
 * Proves the census of a real kernel LRU flow table: its fill per family, nothing counted for
 * rewrites of flows already there, every flow the LRU evicted counted once the table overflows,
 * and flow ageing saying so in a warning with the table's fill (what an operator resizes by).
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Datapath } from '../../src/datapath/index.js';
import { FlowAgeing } from '../../src/steering/ageing.js';
import { describePrivileged } from '../helpers/privilege.js';
import { fillFlows } from '../helpers/synthetic-flows.js';

describePrivileged('flow table census: fill and LRU evictions', () => {
  const pinDir = `/sys/fs/bpf/wst-census-${process.pid}`;
  let dp: Datapath;

  beforeAll(() => {
    dp = Datapath.open({ pinDir, flowTableSize: 4096 });
    dp.setPolicy(1, { dscp: 10 });
  });

  afterAll(() => {
    dp?.destroy();
    rmSync(pinDir, { recursive: true, force: true });
  });

  it('shows each family\'s fill, and counts nothing for rewrites of flows already in the table', () => {
    fillFlows(dp, { count: 2000, family: 4, policyIds: [1] });
    fillFlows(dp, { count: 10, family: 6, policyIds: [1] });
    expect(dp.flowTables()).toEqual([
      { family: 4, entries: 2000, maxEntries: 4096, evicted: 0 },
      { family: 6, entries: 10, maxEntries: 4096, evicted: 0 },
    ]);
    // The same 2000 again (duplicate reports): written, but nothing new and nothing evicted.
    fillFlows(dp, { count: 2000, family: 4, policyIds: [1] });
    expect(dp.countFlows()).toBe(2010);
    expect(dp.flowTables()[0]).toEqual({ family: 4, entries: 2000, maxEntries: 4096, evicted: 0 });
  });

  it('counts what the LRU evicted when new flows overflow the table, and ageing warns with the fill', () => {
    const warnings: { fields: Record<string, unknown>; message: string }[] = [];
    const ageing = new FlowAgeing({
      datapath: dp,
      idleSeconds: 3600,
      logger: { warn: (fields, message) => warnings.push({ fields: fields as Record<string, unknown>, message }), debug() {} },
    });
    fillFlows(dp, { first: 2000, count: 3000, family: 4, policyIds: [1] }); // 5000 flows into 4096 slots
    expect(ageing.runOnce()).toBe(0); // nothing idle: its walk finds the evictions
    const [v4, v6] = dp.flowTables(Infinity);
    expect(v4!.entries).toBeLessThanOrEqual(4096);
    expect(v4!.evicted).toBe(5000 - v4!.entries);
    expect(v6).toEqual({ family: 6, entries: 10, maxEntries: 4096, evicted: 0 });
    expect(warnings).toEqual([
      {
        fields: { family: 'ipv4', evicted: v4!.evicted, entries: v4!.entries, maxEntries: 4096 },
        message: expect.stringMatching(/flow table is full: its LRU evicted flows that were not idle.*raise datapath.flowTableSize/),
      },
    ]);
    // Once said, not said again until the LRU evicts more.
    ageing.runOnce();
    expect(warnings).toHaveLength(1);
  });
});
