/**
 * Load the reply-by-arrival object (bpf/reply.bpf.c), or adopt the one a previous agent left
 * pinned: the same rules as the steering object's loader (../loader.ts), whose pin-directory
 * and pinning helpers it uses. Every map is pinned under `pinDir` by its name, so a restarted
 * agent keeps every learned arrival; the programs are loaded fresh and pinned too.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as native from '../../../native/libbpf.js';
import { ARRIVALS_DEFAULT, ReplyMapName, ReplyProgramName } from '../abi.js';
import { BpfMap } from '../bpf-map.js';
import { DatapathError, DatapathErrorCode, check } from '../errors.js';
import { mapPtr, pinnedMaxEntries, pinProgram, preparePinDir } from '../loader.js';

/** build/bpf/reply.bpf.o, from src/datapath/reply/ or dist/src/datapath/reply/. */
export function defaultReplyObjectPath(): string {
  const candidates = ['../../../build/bpf/reply.bpf.o', '../../../../build/bpf/reply.bpf.o'].map((rel) =>
    fileURLToPath(new URL(rel, import.meta.url)),
  );
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}

export interface ReplyLoadOptions {
  objectPath?: string;
  /** bpffs directory for the pins (default /sys/fs/bpf/wansteer). */
  pinDir?: string;
  /** Arrival entries per family; ignored when pinned tables exist (adopted as they are). */
  arrivalTableSize?: number;
  onLibbpfLog?: native.LibbpfLogSink;
}

export interface ReplyLoaded {
  obj: native.NativePtr;
  maps: Record<keyof typeof ReplyMapName, BpfMap>;
  programs: Record<keyof typeof ReplyProgramName, number>;
  pinDir: string;
  adopted: boolean;
  arrivalTableSize: number;
}

export function loadReplyDatapath(opts: ReplyLoadOptions = {}): ReplyLoaded {
  const objectPath = opts.objectPath ?? defaultReplyObjectPath();
  const pinDir = opts.pinDir ?? '/sys/fs/bpf/wansteer';
  const wanted = opts.arrivalTableSize ?? ARRIVALS_DEFAULT;
  if (!Number.isInteger(wanted) || wanted < 1 || wanted > 1 << 27) {
    throw new DatapathError(DatapathErrorCode.INVALID, 'load', 0, `arrivalTableSize must be 1..${1 << 27}, got ${wanted}`);
  }
  preparePinDir(pinDir);
  const log: string[] = [];
  native.setLogSink((level, msg) => {
    if (level !== 'debug') log.push(msg);
    opts.onLibbpfLog?.(level, msg);
  });
  try {
    const obj = native.objectOpen(objectPath);
    if (typeof obj === 'number') check(obj, DatapathErrorCode.OBJECT, `open ${objectPath}`, 'run `make -C bpf` to build it');
    const o = obj as native.NativePtr;
    try {
      const arrivalsPin = join(pinDir, ReplyMapName.arrivals4);
      const adopted = existsSync(arrivalsPin);
      const size = adopted ? (pinnedMaxEntries(arrivalsPin) ?? wanted) : wanted;
      for (const name of Object.values(ReplyMapName)) {
        const m = mapPtr(o, name);
        check(native.mapSetPinPath(m, join(pinDir, name)), DatapathErrorCode.PIN, `pin path ${name}`);
        if (name === ReplyMapName.arrivals4 || name === ReplyMapName.arrivals6) {
          check(native.mapSetMaxEntries(m, size), DatapathErrorCode.LOAD, `size ${name}`);
        }
      }
      const rc = native.objectLoad(o);
      if (rc < 0) {
        const tail = log.slice(-40).join('\n');
        check(rc, DatapathErrorCode.LOAD, `load ${objectPath}`, tail ? `kernel said:\n${tail}\n` : undefined);
      }
      const cpus = check(native.numPossibleCpus(), DatapathErrorCode.LOAD, 'count CPUs');
      const maps = {} as ReplyLoaded['maps'];
      for (const [key, name] of Object.entries(ReplyMapName) as [keyof typeof ReplyMapName, string][]) {
        maps[key] = BpfMap.fromFd(name, native.mapFd(mapPtr(o, name)), cpus);
      }
      const programs = {} as ReplyLoaded['programs'];
      for (const [key, name] of Object.entries(ReplyProgramName) as [keyof typeof ReplyProgramName, string][]) {
        programs[key] = pinProgram(o, name, pinDir);
      }
      return { obj: o, maps, programs, pinDir, adopted, arrivalTableSize: maps.arrivals4.maxEntries };
    } catch (err) {
      native.objectClose(o);
      throw err;
    }
  } finally {
    native.setLogSink(opts.onLibbpfLog ?? null);
  }
}
