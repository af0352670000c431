/**
 * What a start compares before it loads anything: the layout of the object it is about to load
 * (its version and its maps' shapes, from the object's BTF) and the layout of the maps pinned
 * under the pin directory (their shapes from the kernel's BTF, their version from the stamp).
 * And the stamp itself: the pinned map ws_meta (struct ws_meta in steer_abi.h), written last.
 */
import { join } from 'node:path';
import * as native from '../../native/libbpf.js';
import { Layout, META_MAGIC, MapName, ProgramName, MetaMapName } from './abi.js';
import { Btf, describeShape, type TypeShape } from './btf.js';
import { DatapathError, DatapathErrorCode, check } from './errors.js';
import type { MapShape, ObjectLayout } from './migration-plan.js';

const ENOENT = 2;
const BPF_MAP_TYPE_ARRAY = 2;
/** The global in steer.bpf.c that says which layout the object was built with. */
const VERSION_VARIABLE = 'ws_layout_version';

/** The object's layout, read after open and before load. */
export function readObjectLayout(obj: native.NativePtr, objectPath: string): ObjectLayout {
  const raw = native.objectBtfRaw(obj);
  const btf = typeof raw === 'number' ? null : new Btf(raw);
  const maps = new Map<string, MapShape>();
  for (const name of Object.values(MapName)) {
    const m = native.findMap(obj, name);
    if (typeof m === 'number') {
      throw new DatapathError(DatapathErrorCode.OBJECT, `find map ${name}`, ENOENT, `the object has no map ${name}: rebuild it`);
    }
    const d = native.mapDef(m);
    maps.set(name, {
      type: d.type, keySize: d.keySize, valueSize: d.valueSize, maxEntries: d.maxEntries, flags: d.flags,
      key: btf && d.btfKeyTypeId ? btf.shape(d.btfKeyTypeId) : null,
      value: btf && d.btfValueTypeId ? btf.shape(d.btfValueTypeId) : null,
    });
  }
  const programs = Object.values(ProgramName).filter((p) => typeof native.findProgram(obj, p) !== 'number');
  return { version: objectVersion(obj, btf, objectPath), maps, programs };
}

function objectVersion(obj: native.NativePtr, btf: Btf | null, objectPath: string): number {
  const v = btf?.variable(VERSION_VARIABLE);
  const section = v ? native.findMap(obj, v.section) : -ENOENT;
  const data = typeof section === 'number' ? section : native.mapInitialValue(section);
  if (!v || typeof data === 'number' || v.size !== 4 || data.length < v.offset + 4) {
    throw new DatapathError(
      DatapathErrorCode.OBJECT, `open ${objectPath}`, 0,
      `the object does not say its map layout (no ${VERSION_VARIABLE}): it was built from older sources; rebuild it with \`make -C bpf\``,
    );
  }
  return data.readUInt32LE(v.offset);
}

/**
 * The fields this agent reads and writes must sit where src/datapath/abi.ts says, or the object
 * was built from other sources than the agent. Values may be longer (a later layout's appended
 * fields, which this agent leaves at zero); keys must be exactly as long.
 */
export function checkObjectMatchesAgent(layout: ObjectLayout, objectPath: string): void {
  const expect: [string, 'key' | 'value', Record<string, number>][] = [
    [MapName.flows4, 'key', Layout.flow4Key],
    [MapName.flows6, 'key', Layout.flow6Key],
    [MapName.flows4, 'value', Layout.flowVal],
    [MapName.flows6, 'value', Layout.flowVal],
    [MapName.policies, 'value', Layout.policy],
    [MapName.links, 'value', Layout.link],
    [MapName.reasons, 'value', Layout.counter],
  ];
  for (const [map, part, fields] of expect) {
    const shape = layout.maps.get(map)!;
    const size = part === 'key' ? shape.keySize : shape.valueSize;
    const sizeFits = part === 'key' ? size === fields.size : size >= fields.size!;
    const type: TypeShape | null = shape[part];
    const problem = !sizeFits ? `is ${size} bytes, this agent's is ${fields.size}` : type ? fieldProblem(type, fields) : null;
    if (problem) {
      throw new DatapathError(
        DatapathErrorCode.OBJECT, `open ${objectPath}`, 0,
        `${map}'s ${part} ${problem}: the object was built from other sources than this agent; rebuild it with \`make -C bpf\``,
      );
    }
  }
}

function fieldProblem(type: TypeShape, fields: Record<string, number>): string | null {
  for (const [field, offset] of Object.entries(fields)) {
    if (field === 'size') continue;
    const cName = field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    const m = type.members.find((x) => x.name === cName);
    if (!m || m.offset !== offset) return `${describeShape(type)} has ${cName} ${m ? `at ${m.offset}` : 'nowhere'}, this agent expects it at ${offset}`;
  }
  return null;
}

/** A pinned map: the fd this process opened (ours to close) and its shape. */
export interface PinnedMap {
  fd: number;
  id: number;
  shape: MapShape;
}

export interface Pins {
  /** The stamped layout; null when the pins have no stamp (an agent before stamps, or none). */
  version: number | null;
  maps: Map<string, PinnedMap>;
}

/** Open every map of ours pinned under `pinDir`, with its shape, and read the stamp. */
export function readPins(pinDir: string): Pins {
  const maps = new Map<string, PinnedMap>();
  const btfs = new Map<number, Btf | null>();
  try {
    for (const name of Object.values(MapName)) {
      const fd = native.objGet(join(pinDir, name));
      if (fd === -ENOENT) continue;
      check(fd, DatapathErrorCode.PIN, `open pinned ${name}`);
      const info = native.mapInfo(fd);
      if (typeof info === 'number') {
        native.closeFd(fd);
        check(info, DatapathErrorCode.PIN, `info of pinned ${name}`);
        continue;
      }
      let btf = btfs.get(info.btfId);
      if (btf === undefined && info.btfId) {
        const raw = native.btfRawById(info.btfId);
        btf = typeof raw === 'number' ? null : new Btf(raw);
        btfs.set(info.btfId, btf);
      }
      maps.set(name, {
        fd,
        id: info.id,
        shape: {
          type: info.type, keySize: info.keySize, valueSize: info.valueSize, maxEntries: info.maxEntries, flags: info.flags,
          key: btf && info.btfKeyTypeId ? btf.shape(info.btfKeyTypeId) : null,
          value: btf && info.btfValueTypeId ? btf.shape(info.btfValueTypeId) : null,
        },
      });
    }
    return { version: readStamp(pinDir), maps };
  } catch (err) {
    closePins({ version: null, maps });
    throw err;
  }
}

export function closePins(pins: Pins): void {
  for (const m of pins.maps.values()) native.closeFd(m.fd);
  pins.maps.clear();
}

const META_VALUE_SIZE = 16;

/** The layout the stamp says, or null when there is no stamp. Something else pinned there is refused. */
export function readStamp(pinDir: string): number | null {
  const path = join(pinDir, MetaMapName);
  const fd = native.objGet(path);
  if (fd === -ENOENT) return null;
  check(fd, DatapathErrorCode.PIN, `open ${path}`);
  try {
    const info = native.mapInfo(fd);
    const value = Buffer.alloc(META_VALUE_SIZE);
    const ok =
      typeof info !== 'number' && info.type === BPF_MAP_TYPE_ARRAY && info.keySize === 4 && info.valueSize === META_VALUE_SIZE &&
      native.mapLookup(fd, Buffer.alloc(4), value) === 0 && value.readUInt32LE(0) === META_MAGIC;
    if (!ok) {
      throw new DatapathError(
        DatapathErrorCode.LAYOUT, `read ${path}`, 0,
        `${path} is not a wansteer layout stamp: the pin directory holds something else; nothing was changed (choose another datapath.pinDir, or remove what is there)`,
      );
    }
    return value.readUInt32LE(4);
  } finally {
    native.closeFd(fd);
  }
}

/** Stamp the pins with `version` (struct ws_meta), creating the stamp map when it is not there. */
export function writeStamp(pinDir: string, version: number): void {
  const path = join(pinDir, MetaMapName);
  let fd = native.objGet(path);
  if (fd === -ENOENT) {
    fd = check(native.mapCreate(BPF_MAP_TYPE_ARRAY, MetaMapName, 4, META_VALUE_SIZE, 1), DatapathErrorCode.LOAD, `create ${MetaMapName}`);
    const pinned = native.objPin(fd, path);
    if (pinned < 0) native.closeFd(fd);
    check(pinned, DatapathErrorCode.PIN, `pin ${MetaMapName}`);
  }
  check(fd, DatapathErrorCode.PIN, `open ${path}`);
  try {
    const value = Buffer.alloc(META_VALUE_SIZE);
    value.writeUInt32LE(META_MAGIC, 0);
    value.writeUInt32LE(version, 4);
    check(native.mapUpdate(fd, Buffer.alloc(4), value), DatapathErrorCode.MAP, `update ${MetaMapName}`);
  } finally {
    native.closeFd(fd);
  }
}
