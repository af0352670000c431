/**
 * Why the migration fills a new LRU flow table from one CPU (src/datapath/migration.ts): an LRU
 * hash hands out free nodes to each CPU in batches of up to 128, so a writer that moves to
 * another CPU halfway through filling the table finds the remaining free nodes parked on the
 * first CPU and evicts entries in a table that still had room. The test shows the loss with a
 * writer moved on purpose, and none with the writer held by onOneCpu (native/libc.ts).
 */
import { cpus } from 'node:os';
import { afterEach, beforeEach, expect, it } from 'vitest';
import * as native from '../../native/libbpf.js';
import { onOneCpu, sys } from '../../native/libc.js';
import { BpfMap, MapType } from '../../src/datapath/bpf-map.js';
import { describePrivileged } from '../helpers/privilege.js';

const SLOTS = 1024;
const MASK_BYTES = 128;

/** Only this CPU for the calling thread (the test's own, restored after each case). */
function pinTo(cpu: number): void {
  const mask = new Uint8Array(MASK_BYTES);
  mask[cpu >> 3] = 1 << (cpu & 7);
  expect(sys.schedSetaffinity(0, MASK_BYTES, mask)).toBe(0);
}

describePrivileged('filling an LRU hash to its size', () => {
  let map: BpfMap;
  let fd = -1;
  const saved = new Uint8Array(MASK_BYTES);
  const twoCpus = cpus().length >= 2;

  beforeEach(() => {
    expect(sys.schedGetaffinity(0, MASK_BYTES, saved)).toBe(0);
    fd = native.mapCreate(MapType.lruHash, 'ws_test_lru', 8, 8, SLOTS);
    expect(fd).toBeGreaterThan(0);
    map = BpfMap.fromFd('ws_test_lru', fd, cpus().length);
  });
  afterEach(() => {
    sys.schedSetaffinity(0, MASK_BYTES, saved);
    native.closeFd(fd);
  });

  /** Writes keys [from, to) in one batch. */
  const write = (from: number, to: number) => {
    const n = to - from;
    const keys = Buffer.alloc(n * 8);
    for (let i = 0; i < n; i++) keys.writeBigUInt64LE(BigInt(from + i), i * 8);
    map.updateBatch(keys, Buffer.alloc(n * 8), n);
  };
  const held = () => {
    let n = 0;
    map.forEachChunk((_k, _v, count) => {
      n += count;
    });
    return n;
  };

  it.runIf(twoCpus)('loses entries when the writer moves to another CPU halfway', () => {
    pinTo(0);
    write(0, SLOTS / 2 + 64);
    pinTo(1);
    write(SLOTS / 2 + 64, SLOTS);
    expect(held()).toBeLessThan(SLOTS);
  });

  it('keeps every entry when the writer is held on one CPU', () => {
    onOneCpu(() => {
      write(0, SLOTS / 2 + 64);
      write(SLOTS / 2 + 64, SLOTS);
    });
    expect(held()).toBe(SLOTS);
  });

  it('gives the thread its affinity back', () => {
    onOneCpu(() => {
      const inside = new Uint8Array(MASK_BYTES);
      sys.schedGetaffinity(0, MASK_BYTES, inside);
      expect(inside.reduce((n, byte) => n + popcount(byte), 0)).toBe(1);
    });
    const after = new Uint8Array(MASK_BYTES);
    sys.schedGetaffinity(0, MASK_BYTES, after);
    expect([...after]).toEqual([...saved]);
  });
});

function popcount(byte: number): number {
  let n = 0;
  for (let b = byte; b; b >>= 1) n += b & 1;
  return n;
}
