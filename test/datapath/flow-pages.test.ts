/**
 * Proves pageFlows on both datapaths (the kernel's BPF hash maps and MemoryDatapath): a walk in
 * pages of any size sees every flow of both families once, a filtered walk exactly the matching
 * ones, a page stops when it is full or its scan budget is spent (so a page costs what it holds,
 * not what the table holds), and a cursor that is not the datapath's own is refused with its code.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BpfMap } from '../../src/datapath/bpf-map.js';
import { Datapath, MemoryDatapath, type DatapathPort } from '../../src/datapath/index.js';
import type { FlowPageRequest } from '../../src/datapath/port.js';
import { describePrivileged } from '../helpers/privilege.js';

const V4 = 2_500;
const V6 = 400;

/** V4 + V6 flows; policy 1 for every seventh, 2 for the rest. */
function fill(dp: DatapathPort): void {
  dp.upsertFlows(Array.from({ length: V4 }, (_, i) => ({ key: { protocol: 'tcp', src: `10.${(i >> 8) & 255}.${i & 255}.1`, sport: 1000 + i, dst: '192.0.2.9', dport: 443 }, policyId: i % 7 === 0 ? 1 : 2 })));
  dp.upsertFlows(Array.from({ length: V6 }, (_, i) => ({ key: { protocol: 'udp', src: `fd00::${(i + 1).toString(16)}`, sport: 2000 + i, dst: 'fd00::ffff', dport: 53 }, policyId: i % 7 === 0 ? 1 : 2 })));
}

const id = (f: { src: string; sport: number }) => `${f.src}|${f.sport}`;

/** Every page from the start; the pages' sizes and the ids they held, in order. */
function walk(dp: DatapathPort, request: Omit<FlowPageRequest, 'after'>): { sizes: number[]; ids: string[] } {
  const sizes: number[] = [];
  const ids: string[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < 100_000; pages++) {
    const page = dp.pageFlows({ ...request, ...(after !== undefined && { after }) });
    sizes.push(page.items.length);
    ids.push(...page.items.map(id));
    if (page.next === undefined) return { sizes, ids };
    after = page.next;
  }
  throw new Error('the walk did not end');
}

function contract(name: string, make: () => DatapathPort, otherCursor: string): void {
  let dp: DatapathPort;
  let all: string[];
  let policy1: string[];
  beforeAll(() => {
    dp = make();
    fill(dp);
    all = dp.listFlows().map(id).sort();
    policy1 = dp.listFlows({ policyId: 1 }).map(id).sort();
  });

  it(`${name}: pages of 1, 97 and 1000 see every flow of both families once`, () => {
    expect(all).toHaveLength(V4 + V6);
    for (const limit of [1, 97, 1000]) {
      const { sizes, ids } = walk(dp, { limit });
      expect(Math.max(...sizes)).toBeLessThanOrEqual(limit);
      expect(ids).toHaveLength(V4 + V6);
      expect([...ids].sort()).toEqual(all);
    }
  });

  it(`${name}: a filtered walk sees exactly the policy's flows, once`, () => {
    const { ids } = walk(dp, { limit: 50, policyIds: new Set([1]) });
    expect([...ids].sort()).toEqual(policy1);
  });

  it(`${name}: a page stops when its scan budget is spent, matching or not, and hands on a cursor`, () => {
    const page = dp.pageFlows({ limit: 10, policyIds: new Set([3]), scan: 64 });
    expect(page.items).toEqual([]);
    expect(page.next).toBeDefined();
    // Walking on from there, a budget at a time, ends, having matched nothing.
    const { sizes } = walk(dp, { limit: 10, policyIds: new Set([3]), scan: 64 });
    expect(sizes.every((n) => n === 0)).toBe(true);
    expect(sizes.length).toBeGreaterThanOrEqual(Math.floor((V4 + V6) / 64));
  });

  it(`${name}: refuses a cursor it did not hand out with WS_DATAPATH_INVALID`, () => {
    for (const after of [otherCursor, 'nonsense', 'k4.1.2.3', 'm.-1', 'k5.0.0']) {
      expect(() => dp.pageFlows({ limit: 1, after })).toThrow(expect.objectContaining({ code: 'WS_DATAPATH_INVALID' }));
    }
  });
}

describe('pageFlows, MemoryDatapath', () => {
  contract('memory', () => new MemoryDatapath(8192), 'k4.0.0');

  it('memory: a cursor survives the removal of the flow it points after', () => {
    const dp = new MemoryDatapath(1024);
    dp.upsertFlows(Array.from({ length: 10 }, (_, i) => ({ key: { protocol: 'tcp', src: '10.0.0.1', sport: 100 + i, dst: '10.0.0.2', dport: 80 }, policyId: 1 })));
    const first = dp.pageFlows({ limit: 4 });
    dp.deleteFlows(first.items.map((f) => ({ protocol: 'tcp', src: f.src, sport: f.sport, dst: f.dst, dport: f.dport })));
    const rest = walk(dp, { limit: 4 });
    const after = dp.pageFlows({ limit: 100, after: first.next! });
    expect(after.items.map((f) => f.sport)).toEqual([104, 105, 106, 107, 108, 109]);
    expect(rest.ids).toHaveLength(6);
  });
});

describePrivileged('pageFlows, kernel Datapath', () => {
  const pinDir = `/sys/fs/bpf/wst-${process.pid}-pages`;
  let kernel: Datapath | undefined;
  afterAll(() => {
    kernel?.destroy();
    rmSync(pinDir, { recursive: true, force: true });
  });
  contract('kernel', () => (kernel = Datapath.open({ pinDir, flowTableSize: 4096 })), 'm.5');

  it('kernel: a page of one reads a handful of entries from the map, not the table', () => {
    const read = vi.spyOn(BpfMap.prototype, 'lookupBatchAt');
    try {
      const page = kernel!.pageFlows({ limit: 1 });
      expect(page.items).toHaveLength(1);
      const entries = read.mock.results.reduce((n, r) => n + (r.value as { count: number }).count, 0);
      expect(entries).toBeLessThanOrEqual(64);
      expect(read).toHaveBeenCalledTimes(1);
    } finally {
      read.mockRestore();
    }
  });
});
