/**
 * Proves the bound single write (native/bound-update.ts, the addon native/addon/bound_update.c)
 * against the kernel: each call writes what the two buffers hold at that moment, including small
 * buffers V8 first kept on its own heap; the value stamped with the write's time when asked; a
 * write the kernel refuses comes back as its errno and
 * BpfMap.boundUpdate turns it into the same typed errors as update; buffers of the wrong size are
 * refused before anything is bound, and anything but buffers is refused by the addon.
 */
import { rmSync } from 'node:fs';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { BoundUpdate } from '../../native/bound-update.js';
import * as native from '../../native/libbpf.js';
import { BpfMap, MapType } from '../../src/datapath/bpf-map.js';
import { Datapath } from '../../src/datapath/index.js';
import { DatapathError } from '../../src/datapath/errors.js';
import { describePrivileged } from '../helpers/privilege.js';

const EBADF = 9;
const EEXIST = 17;
const BPF_NOEXIST = 1;

describePrivileged('bound single map writes', () => {
  let fd = -1;
  beforeEach(() => {
    fd = native.mapCreate(MapType.hash, 'ws_test_bound', 8, 16, 4);
    expect(fd).toBeGreaterThan(0);
  });
  afterEach(() => {
    native.closeFd(fd);
  });

  const read = (key: Buffer): Buffer | null => {
    const out = Buffer.alloc(16);
    return native.mapLookup(fd, key, out) === 0 ? out : null;
  };

  it('writes what the buffers hold at each call, small on-heap buffers included', () => {
    // 8 and 16 bytes: below V8's on-heap limit for typed arrays, so binding must move them
    // to a backing store of their own that stays where it is.
    const key = Buffer.alloc(8);
    const value = Buffer.alloc(16);
    const bound = new BoundUpdate(key, value);
    for (let i = 1; i <= 3; i++) {
      key.writeBigUInt64LE(BigInt(i) * 0x0101010101n);
      value.fill(i);
      expect(bound.run(fd)).toBe(0);
    }
    // Allocate enough to make V8 collect, then write once more through the same binding.
    for (let i = 0; i < 200_000; i++) Buffer.alloc(32);
    key.writeBigUInt64LE(0xfeedn);
    value.fill(0xab);
    expect(bound.run(fd)).toBe(0);
    for (const [k, v] of [[0x0101010101n, 1], [0x0202020202n, 2], [0x0303030303n, 3], [0xfeedn, 0xab]] as const) {
      const kb = Buffer.alloc(8);
      kb.writeBigUInt64LE(k);
      expect(read(kb), `key ${k}`).toEqual(Buffer.alloc(16, v));
    }
  });

  it('passes the flags and returns the kernel errno', () => {
    const key = Buffer.alloc(8, 7);
    const value = Buffer.alloc(16, 1);
    const bound = new BoundUpdate(key, value);
    expect(bound.run(fd, BPF_NOEXIST)).toBe(0);
    expect(bound.run(fd, BPF_NOEXIST)).toBe(-EEXIST);
    expect(bound.run(0x7fff_fff0)).toBe(-EBADF);
  });

  it('stamps the value with CLOCK_MONOTONIC when asked, the clock process.hrtime reads', () => {
    const key = Buffer.alloc(8, 1);
    const raw = new ArrayBuffer(16);
    const value = Buffer.from(raw);
    const bound = new BoundUpdate(key, value, 8);
    value.fill(0x5a);
    const before = process.hrtime.bigint();
    expect(bound.run(fd, 0, true)).toBe(0);
    const after = process.hrtime.bigint();
    const stored = read(key)!;
    expect(stored.subarray(0, 8)).toEqual(Buffer.alloc(8, 0x5a)); // the rest as the buffer held it
    const t = stored.readBigUInt64LE(8);
    expect(t >= before && t <= after, `${before} <= ${t} <= ${after}`).toBe(true);
    expect(new BigUint64Array(raw, 8, 1)[0]).toBe(t); // and the buffer holds what was written
    // Unstamped, the field is written as the buffer holds it.
    value.writeBigUInt64LE(42n, 8);
    expect(bound.run(fd)).toBe(0);
    expect(read(key)!.readBigUInt64LE(8)).toBe(42n);
    // A binding without a stamp field refuses a stamped write; a field outside or misaligned is refused.
    expect(() => new BoundUpdate(key, value).run(fd, 0, true)).toThrow(expect.objectContaining({ code: 'WS_NATIVE_ARGS' }));
    for (const at of [9, 12, 16]) expect(() => new BoundUpdate(key, value, at), `at ${at}`).toThrow(expect.objectContaining({ code: 'WS_NATIVE_ARGS' }));
  });

  it('through BpfMap: the typed errors of update, and a full table as WS_DATAPATH_FULL', () => {
    const map = BpfMap.fromFd('ws_test_bound', fd, 1);
    const key = Buffer.alloc(8);
    const value = Buffer.alloc(16);
    const write = map.boundUpdate(key, value);
    for (let i = 0; i < 4; i++) {
      key.writeUInt32LE(i);
      write();
    }
    key.writeUInt32LE(99); // a plain hash of 4 entries: the fifth is refused (E2BIG)
    expect(() => write()).toThrow(expect.objectContaining({ code: 'WS_DATAPATH_FULL' }));
    key.writeUInt32LE(0);
    expect(() => write(BPF_NOEXIST)).toThrow(expect.objectContaining({ code: 'WS_DATAPATH_MAP' }));
    expect(read(Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]))).not.toBeNull();
  });

  it('refuses buffers of another size than the map, and anything but buffers', () => {
    const map = BpfMap.fromFd('ws_test_bound', fd, 1);
    for (const [k, v] of [[4, 16], [8, 8], [16, 16]]) {
      let error: unknown;
      try {
        map.boundUpdate(Buffer.alloc(k!), Buffer.alloc(v!));
      } catch (err) {
        error = err;
      }
      expect(error, `${k}/${v}`).toBeInstanceOf(DatapathError);
      expect((error as DatapathError).code).toBe('WS_DATAPATH_INVALID');
    }
    expect(() => new BoundUpdate('key' as unknown as Buffer, Buffer.alloc(16))).toThrow(expect.objectContaining({ code: 'WS_NATIVE_ARGS' }));
    expect(() => new BoundUpdate(Buffer.alloc(0), Buffer.alloc(16))).toThrow(expect.objectContaining({ code: 'WS_NATIVE_ARGS' }));
  });

  it('Datapath: a single write and a batch of one stamp the time of the write, or keep the one given', () => {
    const pinDir = `/sys/fs/bpf/wst-${process.pid}-bound`;
    const dp = Datapath.open({ pinDir, flowTableSize: 1024 });
    try {
      const keys = [
        { protocol: 'tcp', src: '10.0.0.1', sport: 1000, dst: '10.0.0.2', dport: 443 },
        { protocol: 'udp', src: 'fd00::1', sport: 53, dst: 'fd00::2', dport: 5353 },
      ] as const;
      for (const key of keys) {
        const before = process.hrtime.bigint();
        dp.upsertFlow(key, 1);
        const single = dp.getFlow(key)!;
        dp.upsertFlows([{ key, policyId: 2 }]);
        const batch = dp.getFlow(key)!;
        const after = process.hrtime.bigint();
        expect(single.policyId).toBe(1);
        expect(batch.policyId).toBe(2);
        for (const t of [single.lastSeenNs, batch.lastSeenNs]) expect(t >= before && t <= after, `${key.src}: ${before} <= ${t} <= ${after}`).toBe(true);
        expect(batch.lastSeenNs >= single.lastSeenNs).toBe(true);
        dp.upsertFlows([{ key, policyId: 1 }], 12_345n);
        expect(dp.getFlow(key)).toEqual(expect.objectContaining({ policyId: 1, lastSeenNs: 12_345n }));
      }
      // Small batches, written one by one, are still refused whole: a bad entry anywhere, or a
      // bad time, and nothing is written.
      const bad = { protocol: 'tcp', src: '10.0.0.9', sport: 1, dst: 'fd00::9', dport: 1 } as const;
      const good = (i: number) => ({ key: { protocol: 'tcp', src: '10.0.1.1', sport: 100 + i, dst: '10.0.0.2', dport: 80 } as const, policyId: 1 });
      for (const batch of [[{ key: bad, policyId: 1 }], [good(1), { key: bad, policyId: 1 }], [good(1), good(2), { key: good(3).key, policyId: 0 }]]) {
        expect(() => dp.upsertFlows(batch), `${batch.length} entries`).toThrow(expect.objectContaining({ code: 'WS_DATAPATH_INVALID' }));
      }
      expect(() => dp.upsertFlows([good(1), good(2)], -1n)).toThrow(expect.objectContaining({ code: 'WS_DATAPATH_INVALID' }));
      expect(dp.countFlows()).toBe(2);
      dp.upsertFlows([good(1), good(2), good(3)]);
      expect(dp.countFlows()).toBe(5);
    } finally {
      dp.destroy();
      rmSync(pinDir, { recursive: true, force: true });
    }
  });
});
