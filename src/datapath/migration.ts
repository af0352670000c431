/**
 * Carry out a migration plan (migration-plan.ts) once the new object is loaded: the maps that
 * migrate were created fresh by the load, unpinned, and only the new programs use them.
 *
 *   1. copy   every entry of each old map into its new map, converting values (traffic still
 *             runs on the old programs and the old maps, which stay whole);
 *   2. swap   every tc filter of ours in this namespace to the new program of the same name —
 *             tc replaces a filter in place, so each packet sees either the old program with the
 *             old maps or the new one with the new maps, both holding every flow;
 *   3. merge  the per-CPU counters the old programs kept counting until the swap (added);
 *   4. re-pin each new map over the old one's pin: pinned beside it, then renamed over it (rename
 *             on bpffs replaces atomically, so a crash leaves either pin, never none).
 *
 * A failure before the swap leaves everything as it was (the new maps die with this process);
 * a failure during the swap puts the old programs back. After it, every pin still names a map
 * whole in the layout its shape says, so the next start adopts what was re-pinned and migrates
 * the rest again. The old maps are freed once nothing holds them: their pins are replaced, the
 * old programs are off the hooks. Only our filters in this network namespace are swapped, at
 * the priority the agent attaches with (attach.ts).
 *
 * An LRU flow table that shrinks keeps the flows seen most recently: the newest max_entries,
 * written oldest first, so that the LRU's own early eviction (it frees nodes ahead, up to 128 per
 * CPU, as it fills) takes the oldest of them. The copy into a table it (nearly) fills runs on one
 * CPU: a writer that moved to another CPU midway would find the free nodes parked in the first
 * CPU's list and evict up to 128 entries in a table that still had room. What the new table holds
 * is counted after the copy, so `dropped` says what was lost whatever the kernel did.
 */
import { renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import * as native from '../../native/libbpf.js';
import { onOneCpu } from '../../native/libc.js';
import { ourFilters, replaceFilter, type OurFilter } from './attach.js';
import { BpfMap, MapType } from './bpf-map.js';
import { DatapathError, DatapathErrorCode, check } from './errors.js';
import { REMEDY, convertValues, programNamed, type MapPlan, type MigrationPlan } from './migration-plan.js';
import type { Pins } from './pins.js';

type Migrate = Extract<MapPlan, { action: 'migrate' }>;

const CHUNK = 65_536;
/** Where a new map is pinned before it is renamed over the old pin. */
export const STAGING_SUFFIX = '_migrating'; // bpffs refuses dots in pin names

export interface MapMigration {
  name: string;
  reasons: string[];
  /** Entries the old map held. */
  entries: number;
  /** Entries written into the new map. */
  copied: number;
  /** Entries left behind: beyond a smaller table (the least recently seen). */
  dropped: number;
}

export interface MigrationReport {
  /** The layout the pins held (null: none stamped) and the one they hold now. */
  fromLayout: number | null;
  toLayout: number;
  maps: MapMigration[];
  /** The filters moved to the new programs, as `wan0 egress`. */
  swapped: string[];
  /** Milliseconds: copying, swapping (every filter), and the whole migration. */
  copyMs: number;
  swapMs: number;
  totalMs: number;
}

/**
 * Read-only checks the plan cannot make from shapes alone: an array that shrinks must hold
 * nothing beyond its new size (counters excepted: they are only counts).
 */
export function precheckMigration(plan: MigrationPlan, pins: Pins, cpus: number): void {
  for (const m of plan.maps) {
    if (m.action !== 'migrate' || m.from.type !== MapType.array || m.to.maxEntries >= m.from.maxEntries) continue;
    const old = pinnedMap(m, pins, cpus);
    const used: number[] = [];
    old.forEachChunk((keys, values, n) => {
      for (let i = 0; i < n; i++) {
        const idx = keys.readUInt32LE(i * 4);
        if (idx >= m.to.maxEntries && values.subarray(i * old.valueBytes, (i + 1) * old.valueBytes).some((b) => b !== 0)) used.push(idx);
      }
    });
    if (used.length > 0) {
      throw new DatapathError(
        DatapathErrorCode.LAYOUT, 'adopt pinned maps', 0,
        `${m.name} shrinks from ${m.from.maxEntries} to ${m.to.maxEntries} entries but slots ${used.slice(0, 5).join(', ')}${used.length > 5 ? ', …' : ''} are in use: ${REMEDY}`,
      );
    }
  }
}

export function carryOutMigration(plan: MigrationPlan, pins: Pins, obj: native.NativePtr, pinDir: string, cpus: number): MigrationReport {
  const t0 = performance.now();
  const migrating = plan.maps.filter((m): m is Migrate => m.action === 'migrate');
  const newMap = (m: Migrate) => new BpfMap(m.name, native.mapFd(native.findMap(obj, m.name) as native.NativePtr), m.to.type, m.to.keySize, m.to.valueSize, m.to.maxEntries, cpus);

  const maps: MapMigration[] = [];
  for (const m of migrating) {
    if (m.from.type === MapType.percpuArray) continue; // merged after the swap
    maps.push(copyMap(m, pinnedMap(m, pins, cpus), newMap(m)));
  }
  const t1 = performance.now();
  const swapped = swapPrograms(obj, plan.programs);
  const t2 = performance.now();
  for (const m of migrating) {
    if (m.from.type === MapType.percpuArray) maps.push(mergeCounters(m, pinnedMap(m, pins, cpus), newMap(m)));
  }
  for (const m of migrating) repin(m.name, newMap(m).fd, pinDir);
  return {
    fromLayout: plan.pinnedVersion, toLayout: plan.version, maps, swapped: swapped.map((f) => `${f.ifname} ${f.point}`),
    copyMs: t1 - t0, swapMs: t2 - t1, totalMs: performance.now() - t0,
  };
}

function pinnedMap(m: Migrate, pins: Pins, cpus: number): BpfMap {
  const p = pins.maps.get(m.name)!;
  return new BpfMap(m.name, p.fd, m.from.type, m.from.keySize, m.from.valueSize, m.from.maxEntries, cpus);
}

/** Values of `count` entries in the new layout (per-CPU: each CPU's slot converted). */
function converted(m: Migrate, old: BpfMap, neu: BpfMap, values: Buffer, count: number): Buffer {
  if (!m.convert && old.valueBytes === neu.valueBytes) return values;
  const out = Buffer.alloc(count * neu.valueBytes);
  const slots = old.percpu ? old.cpus : 1;
  const oldStride = old.valueBytes / slots;
  const newStride = neu.valueBytes / slots;
  const conv = m.convert ?? { oldSize: m.from.valueSize, newSize: m.to.valueSize, copies: [{ from: 0, to: 0, len: Math.min(m.from.valueSize, m.to.valueSize) }] };
  convertValues(conv, values, oldStride, out, newStride, count * slots);
  return out;
}

interface Chunk {
  keys: Buffer;
  values: Buffer;
  count: number;
}

function readAll(map: BpfMap): Chunk[] {
  const chunks: Chunk[] = [];
  map.forEachChunk((keys, values, n) => {
    chunks.push({ keys: Buffer.from(keys.subarray(0, n * map.keySize)), values: Buffer.from(values.subarray(0, n * map.valueBytes)), count: n });
  }, CHUNK);
  return chunks;
}

function copyMap(m: Migrate, old: BpfMap, neu: BpfMap): MapMigration {
  const lru = m.to.type === MapType.lruHash;
  // The LRU frees nodes ahead as it fills (up to 128 per CPU): near its size, order matters.
  const slack = lru ? 128 * old.cpus : 0;
  if (m.from.type !== MapType.array && m.from.maxEntries + slack <= m.to.maxEntries) {
    // A bigger table: everything fits whatever the order, so chunk by chunk (memory stays flat).
    let entries = 0;
    old.forEachChunk((keys, values, n) => {
      neu.updateBatch(keys, converted(m, old, neu, values, n), n);
      entries += n;
    }, CHUNK);
    return { name: m.name, reasons: m.reasons, entries, copied: entries, dropped: 0 };
  }
  const chunks = readAll(old);
  const entries = chunks.reduce((n, c) => n + c.count, 0);
  let copied = 0;
  if (m.from.type === MapType.array) {
    for (const c of chunks) {
      // Slots beyond a smaller array were checked to be empty (precheckMigration).
      let n = 0;
      while (n < c.count && c.keys.readUInt32LE(n * 4) < neu.maxEntries) n++;
      if (n > 0) neu.updateBatch(c.keys, converted(m, old, neu, c.values, n), n);
      copied += n;
    }
    return { name: m.name, reasons: m.reasons, entries, copied, dropped: 0 };
  }
  const recency = m.recency;
  const copy = (): number => {
    if (recency && entries + slack > neu.maxEntries) return copyMostRecent(m, old, neu, chunks, entries, recency.offset);
    let written = 0;
    for (const c of chunks) {
      const n = Math.min(c.count, neu.maxEntries - written);
      if (n <= 0) break;
      neu.updateBatch(c.keys, converted(m, old, neu, c.values, n), n);
      written += n;
    }
    return written;
  };
  // An LRU may evict some of what is written (see the top): fill it from one CPU, then count.
  if (lru) {
    onOneCpu(copy);
    copied = countEntries(neu);
  } else {
    copied = copy();
  }
  return { name: m.name, reasons: m.reasons, entries, copied, dropped: entries - copied };
}

function countEntries(map: BpfMap): number {
  let n = 0;
  map.forEachChunk((_keys, _values, count) => {
    n += count;
  }, CHUNK);
  return n;
}

/**
 * The newest `maxEntries` entries by last-seen, written oldest first. Sorted as numbers in a
 * Float64Array, natively: each entry's sort key is how recent it is — in units of 2^20 ns (~1 ms;
 * the program refreshes last-seen once a second, so nothing finer is lost) — times 2^bits, plus
 * its index. Ages beyond what the remaining bits of a double hold (over 100 days for a million
 * entries) all count as the oldest.
 */
function copyMostRecent(m: Migrate, old: BpfMap, neu: BpfMap, chunks: Chunk[], entries: number, recencyOffset: number): number {
  const K = old.keySize;
  const V = old.valueBytes;
  const keysIn = Buffer.concat(chunks.map((c) => c.keys));
  const valuesIn = Buffer.concat(chunks.map((c) => c.values));
  const units = new Float64Array(entries);
  let newest = -Infinity;
  for (let e = 0; e < entries; e++) {
    const at = e * V + recencyOffset;
    // (hi * 2^32 + lo) / 2^20, without BigInt
    units[e] = Math.floor(valuesIn.readUInt32LE(at + 4) * 4096 + valuesIn.readUInt32LE(at) / 2 ** 20);
    if (units[e]! > newest) newest = units[e]!;
  }
  const bits = Math.max(1, Math.ceil(Math.log2(entries)));
  const most = 2 ** (53 - bits) - 1;
  const order = new Float64Array(entries);
  for (let e = 0; e < entries; e++) order[e] = (most - Math.min(most, newest - units[e]!)) * 2 ** bits + e;
  order.sort();
  const keep = Math.min(entries, neu.maxEntries);
  const keys = Buffer.alloc(keep * K);
  const values = Buffer.alloc(keep * V);
  const mask = 2 ** bits;
  for (let j = 0; j < keep; j++) {
    const e = order[entries - keep + j]! % mask;
    for (let b = 0; b < K; b++) keys[j * K + b] = keysIn[e * K + b]!;
    for (let b = 0; b < V; b++) values[j * V + b] = valuesIn[e * V + b]!;
  }
  for (let at = 0; at < keep; at += CHUNK) {
    const n = Math.min(CHUNK, keep - at);
    neu.updateBatch(keys.subarray(at * K), converted(m, old, neu, values.subarray(at * V, (at + n) * V), n), n);
  }
  return keep;
}

/** Per-CPU counters: the new program has counted since the swap, the old one until it; add. */
function mergeCounters(m: Migrate, old: BpfMap, neu: BpfMap): MapMigration {
  const oldChunks = readAll(old);
  const now = new Map<number, Buffer>();
  neu.forEachChunk((keys, values, n) => {
    for (let i = 0; i < n; i++) now.set(keys.readUInt32LE(i * 4), Buffer.from(values.subarray(i * neu.valueBytes, (i + 1) * neu.valueBytes)));
  });
  let entries = 0;
  let copied = 0;
  for (const c of oldChunks) {
    entries += c.count;
    const vals = converted(m, old, neu, c.values, c.count);
    for (let i = 0; i < c.count; i++) {
      const idx = c.keys.readUInt32LE(i * 4);
      const cur = now.get(idx);
      if (!cur) continue; // beyond a smaller array: those counters are gone
      const add = vals.subarray(i * neu.valueBytes, (i + 1) * neu.valueBytes);
      // Every per-CPU value of ours is u64 counters (struct ws_counter).
      for (let w = 0; w + 8 <= cur.length; w += 8) cur.writeBigUInt64LE(BigInt.asUintN(64, cur.readBigUInt64LE(w) + add.readBigUInt64LE(w)), w);
      neu.update(c.keys.subarray(i * 4, i * 4 + 4), cur);
      copied++;
    }
  }
  return { name: m.name, reasons: m.reasons, entries, copied, dropped: entries - copied };
}

/** Every filter of ours to the new program of the same name; on failure, the swapped ones back. */
function swapPrograms(obj: native.NativePtr, programs: readonly string[]): OurFilter[] {
  const swapped: { filter: OurFilter; oldFd: number }[] = [];
  try {
    for (const filter of ourFilters()) {
      const oldFd = check(native.progGetFdById(filter.progId), DatapathErrorCode.ATTACH, `open program ${filter.progId} on ${filter.ifname}`);
      const info = native.progInfo(oldFd);
      const name = typeof info === 'number' ? undefined : programNamed(programs, info.name);
      const prog = name ? native.findProgram(obj, name) : -2;
      if (typeof prog === 'number') {
        native.closeFd(oldFd);
        throw new DatapathError(DatapathErrorCode.ATTACH, `swap ${filter.ifname} ${filter.point}`, 0, `the object has no program for the one running there`);
      }
      swapped.push({ filter, oldFd });
      replaceFilter(filter, native.programFd(prog));
    }
    return swapped.map((s) => s.filter);
  } catch (err) {
    for (const s of swapped) {
      try {
        replaceFilter(s.filter, s.oldFd);
      } catch {
        /* the interface went away meanwhile */
      }
    }
    throw err;
  } finally {
    for (const s of swapped) native.closeFd(s.oldFd);
  }
}

function repin(name: string, fd: number, pinDir: string): void {
  const path = join(pinDir, name);
  const staging = path + STAGING_SUFFIX;
  try {
    unlinkSync(staging); // left by a migration that crashed
  } catch {
    /* none */
  }
  check(native.objPin(fd, staging), DatapathErrorCode.PIN, `pin ${staging}`);
  try {
    renameSync(staging, path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new DatapathError(DatapathErrorCode.PIN, `rename ${staging} over ${path}`, e.errno ? -e.errno : 0, e.message);
  }
}
