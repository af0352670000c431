/**
 * BpfMap: one BPF map by fd, with its key and value sizes, and the operations the facade
 * needs — single and batch, per-CPU aware — each turning a negative errno into a typed error.
 * Keys and values are raw bytes here; src/datapath/codec.ts gives them meaning.
 */
import { BoundUpdate } from '../../native/bound-update.js';
import * as native from '../../native/libbpf.js';
import { DatapathErrorCode, check, invalid } from './errors.js';

const ENOENT = 2;
const ENOSPC = 28;
const E2BIG = 7;

/** BPF map types we use (linux/bpf.h enum bpf_map_type). */
export const MapType = { hash: 1, array: 2, percpuArray: 6, lruHash: 9 } as const;

export class BpfMap {
  /** Bytes of one value as user space reads and writes it (per-CPU: one 8-aligned slot per CPU). */
  readonly valueBytes: number;
  readonly percpu: boolean;

  constructor(
    readonly name: string,
    readonly fd: number,
    readonly type: number,
    readonly keySize: number,
    readonly valueSize: number,
    readonly maxEntries: number,
    readonly cpus: number,
  ) {
    this.percpu = type === MapType.percpuArray;
    this.valueBytes = this.percpu ? align8(valueSize) * cpus : valueSize;
  }

  static fromFd(name: string, fd: number, cpus: number): BpfMap {
    const info = native.mapInfo(fd);
    if (typeof info === 'number') check(info, DatapathErrorCode.MAP, `info ${name}`);
    const i = info as native.MapInfo;
    return new BpfMap(name, fd, i.type, i.keySize, i.valueSize, i.maxEntries, cpus);
  }

  /** Read the value of `key` into `value`. False when there is no such key. */
  lookup(key: Uint8Array, value: Uint8Array): boolean {
    const rc = native.mapLookup(this.fd, key, value);
    if (rc === -ENOENT) return false;
    // Only a failure builds its message: a string per call costs a hot path more than it looks.
    if (rc < 0) check(rc, DatapathErrorCode.MAP, `lookup ${this.name}`);
    return true;
  }

  update(key: Uint8Array, value: Uint8Array, flags = native.BPF_ANY): void {
    const rc = native.mapUpdate(this.fd, key, value, flags);
    if (rc < 0) this.updateFailed(rc);
  }

  /** A refused update as its typed error: a full table (E2BIG, ENOSPC) is WS_DATAPATH_FULL. */
  private updateFailed(rc: number): never {
    if (rc === -E2BIG || rc === -ENOSPC) check(rc, DatapathErrorCode.FULL, `update ${this.name}`);
    check(rc, DatapathErrorCode.MAP, `update ${this.name}`);
    throw new Error(`unreachable: check() passed errno ${-rc}`);
  }

  /**
   * `update` for a hot path that writes one entry at a time, always from the same two buffers:
   * they are handed to native code once (native/bound-update.ts), and each call of the result
   * writes what they hold then; with `stamp`, the u64 at `stampAt` in the value first gets the
   * time (CLOCK_MONOTONIC ns). Same errors as `update`.
   */
  boundUpdate(key: Uint8Array, value: Uint8Array, stampAt = -1): (flags?: number, stamp?: boolean) => void {
    // The kernel reads the map's key and value sizes from these addresses: shorter would be
    // read past their end.
    if (key.length !== this.keySize || value.length !== this.valueBytes) {
      throw invalid(`bind ${this.name}`, `key of ${key.length} and value of ${value.length} bytes; the map has ${this.keySize} and ${this.valueBytes}`);
    }
    const bound = new BoundUpdate(key, value, stampAt);
    return (flags = native.BPF_ANY, stamp = false) => {
      const rc = bound.run(this.fd, flags, stamp);
      if (rc < 0) this.updateFailed(rc);
    };
  }

  /** Delete `key`. False when it was not there. */
  delete(key: Uint8Array): boolean {
    const rc = native.mapDelete(this.fd, key);
    if (rc === -ENOENT) return false;
    if (rc < 0) check(rc, DatapathErrorCode.MAP, `delete ${this.name}`);
    return true;
  }

  /** Write `count` entries packed in `keys`/`values` in as few syscalls as the kernel allows. */
  updateBatch(keys: Uint8Array, values: Uint8Array, count: number): void {
    const done = new Uint32Array(1);
    let at = 0;
    while (at < count) {
      const n = count - at;
      const rc = native.mapUpdateBatch(
        this.fd,
        keys.subarray(at * this.keySize),
        values.subarray(at * this.valueBytes),
        n,
        done,
      );
      check(rc, DatapathErrorCode.MAP, `update batch ${this.name}`, `after ${at + done[0]!} of ${count}`);
      at += done[0]!;
      if (done[0] === 0) break;
    }
  }

  /** Delete `count` keys packed in `keys`; keys that are already gone are skipped, not errors. */
  deleteBatch(keys: Uint8Array, count: number): number {
    const done = new Uint32Array(1);
    let at = 0;
    let deleted = 0;
    while (at < count) {
      const rc = native.mapDeleteBatch(this.fd, keys.subarray(at * this.keySize), count - at, done);
      deleted += done[0]!;
      at += done[0]!;
      if (rc === -ENOENT) {
        // The batch stops at the first missing key: skip it and go on.
        at += 1;
        continue;
      }
      check(rc, DatapathErrorCode.MAP, `delete batch ${this.name}`);
      if (done[0] === 0) break;
    }
    return deleted;
  }

  /**
   * Walk every entry, `chunk` at a time, with BPF_MAP_LOOKUP_BATCH. `visit` gets the chunk's
   * packed keys and values and how many entries they hold; the buffers are reused, so copy
   * what you keep.
   */
  forEachChunk(visit: (keys: Buffer, values: Buffer, count: number) => void, chunk = 4096): void {
    const n = Math.max(1, Math.min(chunk, this.maxEntries));
    const keys = Buffer.alloc(n * this.keySize);
    const values = Buffer.alloc(n * this.valueBytes);
    // The batch position token is map specific: a key for hashes, a u32 index for arrays.
    const inBatch = Buffer.alloc(Math.max(this.keySize, 4));
    const outBatch = Buffer.alloc(Math.max(this.keySize, 4));
    const done = new Uint32Array(1);
    let first = true;
    for (;;) {
      const rc = native.mapLookupBatch(this.fd, first ? null : inBatch, outBatch, keys, values, n, done);
      if (rc < 0 && rc !== -ENOENT) check(rc, DatapathErrorCode.MAP, `lookup batch ${this.name}`);
      if (done[0]! > 0) visit(keys, values, done[0]!);
      if (rc === -ENOENT) return;
      outBatch.copy(inBatch);
      first = false;
    }
  }

  /**
   * One batch of a hash map's entries, from bucket `bucket` on (BPF_MAP_LOOKUP_BATCH, whose
   * position in a hash map is a bucket index): whole buckets only, at most `max` entries (more
   * when a single bucket holds more). `next` is the bucket to go on from, or null when the walk
   * is over. For paging: a page ends after a batch, and the next page starts at `next`.
   */
  lookupBatchAt(bucket: number, max: number): { keys: Buffer; values: Buffer; count: number; next: number | null } {
    let n = Math.max(1, Math.min(max, this.maxEntries));
    const inBatch = Buffer.alloc(Math.max(this.keySize, 4));
    const outBatch = Buffer.alloc(Math.max(this.keySize, 4));
    inBatch.writeUInt32LE(bucket);
    const done = new Uint32Array(1);
    for (;;) {
      const keys = Buffer.alloc(n * this.keySize);
      const values = Buffer.alloc(n * this.valueBytes);
      const rc = native.mapLookupBatch(this.fd, inBatch, outBatch, keys, values, n, done);
      // The first bucket holds more than n entries: ask for more.
      if (rc === -ENOSPC && done[0] === 0 && n < this.maxEntries) {
        n = Math.min(n * 2, this.maxEntries);
        continue;
      }
      if (rc < 0 && rc !== -ENOENT) check(rc, DatapathErrorCode.MAP, `lookup batch ${this.name}`);
      return { keys, values, count: done[0]!, next: rc === -ENOENT ? null : outBatch.readUInt32LE(0) };
    }
  }

  /** Sum a per-CPU counter value (struct ws_counter per CPU) at `off` in `values`. */
  sumPercpuCounter(values: Buffer, off: number): { packets: bigint; bytes: bigint } {
    let packets = 0n;
    let bytes = 0n;
    const slot = align8(this.valueSize);
    for (let c = 0; c < this.cpus; c++) {
      packets += values.readBigUInt64LE(off + c * slot);
      bytes += values.readBigUInt64LE(off + c * slot + 8);
    }
    return { packets, bytes };
  }
}

function align8(n: number): number {
  return (n + 7) & ~7;
}
