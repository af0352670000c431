/**
 * What to do with each pinned map when an agent starts: adopt it as it is, migrate it into a
 * new map (another size, another value layout, other flags), or create it (not pinned yet) —
 * or refuse to start, before anything is changed, when no migration can keep its meaning.
 *
 * Pure: the object's maps and the pinned ones come in as shapes (type, sizes, flags, and the
 * key and value types from BTF), the plan goes out. src/datapath/pins.ts reads the shapes,
 * src/datapath/migration.ts carries the plan out, docs/upgrades.md says it for operators.
 *
 * Values are converted field by field, matched by name: a field both layouts have (same size)
 * is copied, a field only the new layout has starts at zero, pad fields start at zero, a field
 * only the old layout has is dropped. So a layout change keeps its meaning as long as a field
 * whose meaning changes also changes its name, and a new field's zero means what the old layout
 * meant (as ws_link.flags did: a pad byte before, zero = not an internet link).
 */
import { describeShape, sameShape, type TypeShape } from './btf.js';
import { DatapathError, DatapathErrorCode } from './errors.js';

/** A map as the kernel defines it, with its key and value types when it carries BTF. */
export interface MapShape {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  key: TypeShape | null;
  value: TypeShape | null;
}

/** The object the agent is about to load: its layout version and its pinned maps' shapes. */
export interface ObjectLayout {
  version: number;
  maps: ReadonlyMap<string, MapShape>;
  programs: readonly string[];
}

/** What is pinned now: the stamp's layout (null: pins of an agent before stamps) and the maps. */
export interface PinnedLayout {
  version: number | null;
  maps: ReadonlyMap<string, MapShape>;
}

/** Copy `len` bytes from offset `from` of an old value to offset `to` of the new (zeroed) one. */
export interface ByteCopy {
  from: number;
  to: number;
  len: number;
}

/** How an old value becomes a new one; null in a plan means byte for byte (same layout). */
export interface ValueConversion {
  oldSize: number;
  newSize: number;
  copies: ByteCopy[];
}

export type MapPlan =
  | { name: string; action: 'create' }
  | { name: string; action: 'adopt' }
  | {
      name: string;
      action: 'migrate';
      /** Why, for the log: `max_entries 4096 -> 8192`, `value layout …`. */
      reasons: string[];
      from: MapShape;
      to: MapShape;
      convert: ValueConversion | null;
      /** Where a value keeps its last-seen time (for the LRU tables: which entries to keep). */
      recency: { offset: number } | null;
    };

export interface MigrationPlan {
  maps: MapPlan[];
  /** The layout the pins hold once the plan is carried out: the object's. */
  version: number;
  /** The layout the pins hold now (1 for unstamped pins). */
  pinnedVersion: number | null;
  /** Some map migrates: the programs on our hooks must be swapped to the new maps. */
  migrates: boolean;
  /** The object's programs, which replace the ones of the same name on our hooks. */
  programs: readonly string[];
}

/** Unstamped pins were written by agents before layout stamps: their layout is 1 (steer_abi.h). */
export const UNSTAMPED_LAYOUT = 1;
/** The value field that says how recently a flow was seen (struct ws_flow_val). */
export const RECENCY_FIELD = 'last_seen_ns';

const TYPE_NAMES: Record<number, string> = { 1: 'hash', 2: 'array', 6: 'percpu_array', 9: 'lru_hash' };
const typeName = (t: number) => TYPE_NAMES[t] ?? `type ${t}`;

/** What an operator can do when the pins cannot be taken over: in every refusal. */
export const REMEDY =
  'nothing was changed. Either start an agent that knows this layout, or remove the datapath with `wansteer cleanup` (every session loses its steering until it is reported again) and start this one';

function refuse(detail: string): DatapathError {
  return new DatapathError(DatapathErrorCode.LAYOUT, 'adopt pinned maps', 0, `${detail}: ${REMEDY}`);
}

export function planMigration(object: ObjectLayout, pinned: PinnedLayout): MigrationPlan {
  const pinnedVersion = pinned.maps.size > 0 ? (pinned.version ?? UNSTAMPED_LAYOUT) : pinned.version;
  if (pinnedVersion !== null && pinnedVersion > object.version) {
    throw refuse(
      `the pins hold layout ${pinnedVersion}, written by a newer agent; this agent's object has layout ${object.version} and would misread them`,
    );
  }
  const maps: MapPlan[] = [];
  for (const [name, want] of object.maps) {
    const have = pinned.maps.get(name);
    maps.push(have ? planMap(name, have, want) : { name, action: 'create' });
  }
  return { maps, version: object.version, pinnedVersion, migrates: maps.some((m) => m.action === 'migrate'), programs: object.programs };
}

/**
 * A migration moves every filter of ours to the new program of the same name. A program the
 * object lacks would keep running on the old maps after they were unpinned: refused.
 */
export function checkSwappable(object: ObjectLayout, hooks: readonly { where: string; program: string }[]): void {
  for (const h of hooks) {
    if (!programNamed(object.programs, h.program)) {
      throw refuse(`${h.where} runs our program ${h.program}, which this object lacks, so it could not be moved to the migrated maps`);
    }
  }
}

function planMap(name: string, have: MapShape, want: MapShape): MapPlan {
  if (have.type !== want.type) {
    throw refuse(`${name} is a ${typeName(have.type)} in the pins and a ${typeName(want.type)} in the object; no migration converts one into the other`);
  }
  if (have.keySize !== want.keySize || (have.key && want.key && !sameShape(have.key, want.key))) {
    throw refuse(`${name}'s key changed from ${describe(have.key, have.keySize)} to ${describe(want.key, want.keySize)}; its entries cannot be carried over`);
  }
  const reasons: string[] = [];
  if (have.maxEntries !== want.maxEntries) reasons.push(`max_entries ${have.maxEntries} -> ${want.maxEntries}`);
  if (have.flags !== want.flags) reasons.push(`map_flags 0x${have.flags.toString(16)} -> 0x${want.flags.toString(16)}`);
  let convert: ValueConversion | null = null;
  if (have.value && want.value) {
    if (!sameShape(have.value, want.value)) {
      convert = valueConversion(name, have.value, want.value);
      reasons.push(`value ${describeShape(have.value)} -> ${describeShape(want.value)}`);
    }
  } else if (have.valueSize !== want.valueSize) {
    throw refuse(`${name}'s value changed from ${have.valueSize} to ${want.valueSize} bytes and one side has no BTF to tell its fields`);
  }
  if (reasons.length === 0) return { name, action: 'adopt' };
  const recent = have.value?.members.find((m) => m.name === RECENCY_FIELD && m.size === 8);
  return { name, action: 'migrate', reasons, from: have, to: want, convert, recency: recent ? { offset: recent.offset } : null };
}

function describe(shape: TypeShape | null, size: number): string {
  return shape ? describeShape(shape) : `${size} bytes`;
}

/** The kernel keeps 15 characters of a program's name (BPF_OBJ_NAME_LEN): the object's program it names. */
export function programNamed(programs: readonly string[], kernelName: string): string | undefined {
  return programs.find((p) => p.slice(0, 15) === kernelName);
}

const isPad = (field: string) => /^(__)?pad\d*$/.test(field);

/** Field by field, by name (see the file comment). Refuses a field whose size changed. */
export function valueConversion(map: string, from: TypeShape, to: TypeShape): ValueConversion {
  if (from.members.length === 0 || to.members.length === 0) {
    if (from.size === to.size) return { oldSize: from.size, newSize: to.size, copies: [{ from: 0, to: 0, len: to.size }] };
    throw refuse(`${map}'s value changed from ${from.size} to ${to.size} bytes and is not a struct whose fields could be matched`);
  }
  const copies: ByteCopy[] = [];
  for (const field of to.members) {
    if (isPad(field.name)) continue;
    const old = from.members.find((m) => m.name === field.name);
    if (!old) continue; // a new field: zero, which must mean what the old layout meant
    if (old.size !== field.size) {
      throw refuse(`${map}'s field ${field.name} is ${old.size} bytes in the pins and ${field.size} in the object; no converter knows how to carry it over`);
    }
    const last = copies[copies.length - 1];
    if (last && last.from + last.len === old.offset && last.to + last.len === field.offset) last.len += field.size;
    else copies.push({ from: old.offset, to: field.offset, len: field.size });
  }
  return { oldSize: from.size, newSize: to.size, copies };
}

/**
 * Convert `count` values packed at `oldStride` in `src` into `dst` at `newStride` (zeroed
 * first). Per-CPU maps pass one slot per CPU as a value: the strides are then the slots'.
 * Byte loops, not Buffer#copy: a million values of a few fields each would be millions of
 * calls into C++ for 16 bytes apiece.
 */
export function convertValues(conv: ValueConversion, src: Buffer, oldStride: number, dst: Buffer, newStride: number, count: number): void {
  dst.fill(0, 0, count * newStride);
  for (const c of conv.copies) {
    for (let i = 0; i < count; i++) {
      const s = i * oldStride + c.from;
      const d = i * newStride + c.to;
      for (let b = 0; b < c.len; b++) dst[d + b] = src[s + b]!;
    }
  }
}
