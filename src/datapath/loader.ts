/**
 * Load the steering object, or adopt the one a previous agent left pinned.
 *
 * Every map is pinned under `pinDir` by its name. libbpf reuses a pinned map when one is
 * there (so a restarted agent keeps every flow, policy and counter) and pins a new one when
 * not. The programs are loaded fresh each time and pinned too, so tools and the next agent
 * can find them; the tc hook keeps its own reference to the program it runs.
 *
 * A pinned map this object needs in another shape (another flow table size, a value with a new
 * field) is migrated on the way in (migration-plan.ts, migration.ts); pins that cannot be
 * (a newer agent's layout) are refused before anything changes. The pins are stamped with the
 * object's layout version (ws_meta).
 */
import { existsSync, mkdirSync, statfsSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as native from '../../native/libbpf.js';
import { FLOWS_DEFAULT, MapName, ProgramName } from './abi.js';
import { ourFilters } from './attach.js';
import { BpfMap } from './bpf-map.js';
import { DatapathError, DatapathErrorCode, check } from './errors.js';
import { checkSwappable, planMigration } from './migration-plan.js';
import { carryOutMigration, precheckMigration, type MigrationReport } from './migration.js';
import { checkObjectMatchesAgent, closePins, readObjectLayout, readPins, writeStamp, type Pins } from './pins.js';

const BPF_FS_MAGIC = 0xcafe4a11;
/**
 * Where `make -C bpf` puts the object: two levels up from src/datapath/, three from
 * dist/src/datapath/. (The datapath imports nothing but native/, so it finds its own object.)
 */
export function defaultObjectPath(): string {
  const candidates = ['../../build/bpf/steer.bpf.o', '../../../build/bpf/steer.bpf.o'].map((rel) =>
    fileURLToPath(new URL(rel, import.meta.url)),
  );
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}

export interface LoadOptions {
  /** The compiled BPF object (default: build/bpf/steer.bpf.o). */
  objectPath?: string;
  /** bpffs directory for the pins (default /sys/fs/bpf/wansteer). */
  pinDir?: string;
  /**
   * Flow table entries, per family (ws_flows4 and ws_flows6 each get this many). Pinned tables
   * of another size are migrated to it; unset, pinned tables keep their size (new ones get
   * WS_FLOWS_DEFAULT).
   */
  flowTableSize?: number;
  /** Where libbpf's own messages go (verifier log, warnings). */
  onLibbpfLog?: native.LibbpfLogSink;
}

export interface Loaded {
  obj: native.NativePtr;
  maps: Record<keyof typeof MapName, BpfMap>;
  programs: { eth: number; l3: number };
  pinDir: string;
  /** True when the maps were already pinned: this process adopted a running datapath. */
  adopted: boolean;
  /** The flow tables' size in force, per family. */
  flowTableSize: number;
  /** The map layout the pins hold now (the object's). */
  layoutVersion: number;
  /** What was migrated on the way in, or null when every pinned map was adopted as it was. */
  migration: MigrationReport | null;
}

export function loadDatapath(opts: LoadOptions = {}): Loaded {
  const objectPath = opts.objectPath ?? defaultObjectPath();
  const pinDir = opts.pinDir ?? '/sys/fs/bpf/wansteer';
  const wanted = opts.flowTableSize;
  if (wanted !== undefined && (!Number.isInteger(wanted) || wanted < 1 || wanted > 1 << 27)) {
    throw new DatapathError(DatapathErrorCode.INVALID, 'load', 0, `flowTableSize must be 1..${1 << 27}, got ${wanted}`);
  }
  preparePinDir(pinDir);

  // Collect libbpf's log while loading, so a verifier rejection can say why.
  const log: string[] = [];
  native.setLogSink((level, msg) => {
    if (level !== 'debug') log.push(msg);
    opts.onLibbpfLog?.(level, msg);
  });
  let pins: Pins | null = null;
  try {
    const obj = native.objectOpen(objectPath);
    if (typeof obj === 'number') {
      check(obj, DatapathErrorCode.OBJECT, `open ${objectPath}`, 'run `make -C bpf` to build it');
    }
    const o = obj as native.NativePtr;
    try {
      // 1. Compare what is pinned with what this object needs; refuse before anything changes.
      pins = readPins(pinDir);
      const pinnedFlows = pins.maps.get(MapName.flows4)?.shape.maxEntries;
      const flowTableSize = wanted ?? pinnedFlows ?? FLOWS_DEFAULT;
      for (const name of [MapName.flows4, MapName.flows6]) {
        check(native.mapSetMaxEntries(mapPtr(o, name), flowTableSize), DatapathErrorCode.LOAD, `size ${name}`);
      }
      const layout = readObjectLayout(o, objectPath);
      checkObjectMatchesAgent(layout, objectPath);
      const plan = planMigration(layout, { version: pins.version, maps: new Map([...pins.maps].map(([n, p]) => [n, p.shape])) });
      const cpus = check(native.numPossibleCpus(), DatapathErrorCode.LOAD, 'count CPUs');
      if (plan.migrates) {
        checkSwappable(layout, ourFilters().map((f) => ({ where: `${f.ifname} ${f.point}`, program: programName(f.progId) })));
        precheckMigration(plan, pins, cpus);
      }

      // 2. Load: libbpf reuses the pins of maps adopted as they are and pins the new ones; a
      // map that migrates gets no pin path, so the load creates it fresh beside the old one.
      for (const m of plan.maps) {
        if (m.action !== 'migrate') check(native.mapSetPinPath(mapPtr(o, m.name), join(pinDir, m.name)), DatapathErrorCode.PIN, `pin path ${m.name}`);
      }
      const rc = native.objectLoad(o);
      if (rc < 0) {
        const tail = log.slice(-40).join('\n');
        check(rc, DatapathErrorCode.LOAD, `load ${objectPath}`, tail ? `kernel said:\n${tail}\n` : undefined);
      }

      // 3. Move the entries, the programs on the hooks, and the pins over to the new maps.
      const migration = plan.migrates ? carryOutMigration(plan, pins, o, pinDir, cpus) : null;
      writeStamp(pinDir, plan.version);

      const maps = {} as Loaded['maps'];
      for (const [key, name] of Object.entries(MapName) as [keyof typeof MapName, string][]) {
        maps[key] = BpfMap.fromFd(name, native.mapFd(mapPtr(o, name)), cpus);
      }
      const programs = {
        eth: pinProgram(o, ProgramName.eth, pinDir),
        l3: pinProgram(o, ProgramName.l3, pinDir),
      };
      const adopted = pins.maps.size > 0;
      return { obj: o, maps, programs, pinDir, adopted, flowTableSize: maps.flows4.maxEntries, layoutVersion: plan.version, migration };
    } catch (err) {
      native.objectClose(o);
      throw err;
    }
  } finally {
    if (pins) closePins(pins);
    native.setLogSink(opts.onLibbpfLog ?? null);
  }
}

/** The name of the program with this id (`?` when it is gone meanwhile). */
function programName(id: number): string {
  const fd = native.progGetFdById(id);
  if (fd < 0) return '?';
  const info = native.progInfo(fd);
  native.closeFd(fd);
  return typeof info === 'number' ? '?' : info.name;
}

export function preparePinDir(pinDir: string): void {
  // Check the mount before creating anything: a recursive mkdir on sysfs (bpffs not mounted,
  // or hidden by `ip netns exec`) loops forever instead of failing. The nearest directory that
  // exists must be on bpffs; below it, creating directories is safe.
  let existing = pinDir;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  let fsType: number | null = null;
  try {
    fsType = Number(statfsSync(existing).type);
  } catch {
    /* unreadable: reported below */
  }
  if (fsType !== BPF_FS_MAGIC) {
    const mount = existing === pinDir ? dirname(pinDir) : existing;
    throw new DatapathError(
      DatapathErrorCode.PIN,
      `pin dir ${pinDir}`,
      0,
      `${existing} is not on a bpffs mount: mount one with \`mount -t bpf bpf ${mount}\` (under \`ip netns exec\`, /sys is remounted: use nsenter --net instead)`,
    );
  }
  try {
    mkdirSync(pinDir, { recursive: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new DatapathError(DatapathErrorCode.PIN, `pin dir ${pinDir}`, e.errno ? -e.errno : 0, e.message);
  }
}

export function pinnedMaxEntries(path: string): number | null {
  const fd = native.objGet(path);
  if (fd < 0) return null;
  const info = native.mapInfo(fd);
  closeFd(fd);
  return typeof info === 'number' ? null : info.maxEntries;
}

export function mapPtr(obj: native.NativePtr, name: string): native.NativePtr {
  const m = native.findMap(obj, name);
  if (typeof m === 'number') {
    throw new DatapathError(DatapathErrorCode.OBJECT, `find map ${name}`, 2, `the object has no map ${name}: rebuild it`);
  }
  return m;
}

/** Pin the freshly loaded program, replacing the previous agent's pin. Returns its fd. */
export function pinProgram(obj: native.NativePtr, name: string, pinDir: string): number {
  const p = native.findProgram(obj, name);
  if (typeof p === 'number') {
    throw new DatapathError(DatapathErrorCode.OBJECT, `find program ${name}`, 2, `the object has no program ${name}`);
  }
  const fd = native.programFd(p);
  const path = join(pinDir, name);
  try {
    unlinkSync(path);
  } catch {
    /* nothing pinned yet */
  }
  check(native.objPin(fd, path), DatapathErrorCode.PIN, `pin ${name}`);
  return fd;
}

/** fds from bpf_obj_get are ours to close; everything else belongs to the bpf_object. */
export function closeFd(fd: number): void {
  native.closeFd(fd);
}
