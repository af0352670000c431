/**
 * native/libbpf.ts — a thin, policy-free binding over libbpf (libbpf.so.1) with koffi.
 *
 * Every wrapper mirrors one libbpf call and returns what libbpf returns in its 1.0 mode:
 * an fd or 0 on success, a negative errno on failure. Calls that return a pointer in C
 * return an opaque handle or a negative errno. No policy lives here: what to load, what to
 * pin and when to retry is decided above, in src/datapath/. src/datapath/errors.ts turns
 * the negative errnos into typed errors.
 *
 * Option structs (bpf_tc_hook, bpf_tc_opts, bpf_test_run_opts, ...) are laid out by hand in
 * Buffers: their layouts are libbpf's stable ABI (each starts with its own size, `sz`), and
 * building them as bytes keeps the hot calls free of marshalling work.
 */
import koffi from 'koffi';

/** An opaque libbpf object pointer (struct bpf_object *, bpf_map *, bpf_program *). */
export type NativePtr = { readonly __native: unique symbol };

const lib = koffi.load('libbpf.so.1');
const libc = koffi.load('libc.so.6');

const fn = {
  objectOpenFile: lib.func('void *bpf_object__open_file(const char *path, void *opts)'),
  objectLoad: lib.func('int bpf_object__load(void *obj)'),
  objectClose: lib.func('void bpf_object__close(void *obj)'),
  findMap: lib.func('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
  findProgram: lib.func('void *bpf_object__find_program_by_name(void *obj, const char *name)'),
  mapFd: lib.func('int bpf_map__fd(void *map)'),
  mapSetMaxEntries: lib.func('int bpf_map__set_max_entries(void *map, uint32_t max)'),
  mapSetPinPath: lib.func('int bpf_map__set_pin_path(void *map, const char *path)'),
  mapIsPinned: lib.func('bool bpf_map__is_pinned(void *map)'),
  mapType: lib.func('int bpf_map__type(void *map)'),
  mapKeySize: lib.func('uint32_t bpf_map__key_size(void *map)'),
  mapValueSize: lib.func('uint32_t bpf_map__value_size(void *map)'),
  mapMaxEntries: lib.func('uint32_t bpf_map__max_entries(void *map)'),
  mapFlags: lib.func('uint32_t bpf_map__map_flags(void *map)'),
  mapBtfKeyTypeId: lib.func('uint32_t bpf_map__btf_key_type_id(void *map)'),
  mapBtfValueTypeId: lib.func('uint32_t bpf_map__btf_value_type_id(void *map)'),
  mapInitialValue: lib.func('void *bpf_map__initial_value(void *map, _Out_ size_t *size)'),
  objectBtf: lib.func('void *bpf_object__btf(void *obj)'),
  btfRawData: lib.func('void *btf__raw_data(void *btf, _Out_ uint32_t *size)'),
  programFd: lib.func('int bpf_program__fd(void *prog)'),
  programSetAutoload: lib.func('int bpf_program__set_autoload(void *prog, bool autoload)'),

  objPin: lib.func('int bpf_obj_pin(int fd, const char *path)'),
  objGet: lib.func('int bpf_obj_get(const char *path)'),
  objGetInfoByFd: lib.func('int bpf_obj_get_info_by_fd(int fd, void *info, void *len)'),
  progGetFdById: lib.func('int bpf_prog_get_fd_by_id(uint32_t id)'),
  btfGetFdById: lib.func('int bpf_btf_get_fd_by_id(uint32_t id)'),
  mapCreate: lib.func(
    'int bpf_map_create(int type, const char *name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const void *opts)',
  ),

  mapLookup: lib.func('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
  mapUpdate: lib.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
  mapDelete: lib.func('int bpf_map_delete_elem(int fd, const void *key)'),
  mapGetNextKey: lib.func('int bpf_map_get_next_key(int fd, const void *key, void *next)'),
  mapUpdateBatch: lib.func(
    'int bpf_map_update_batch(int fd, const void *keys, const void *values, void *count, const void *opts)',
  ),
  mapDeleteBatch: lib.func('int bpf_map_delete_batch(int fd, const void *keys, void *count, const void *opts)'),
  mapLookupBatch: lib.func(
    'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, void *count, const void *opts)',
  ),

  tcHookCreate: lib.func('int bpf_tc_hook_create(void *hook)'),
  tcHookDestroy: lib.func('int bpf_tc_hook_destroy(void *hook)'),
  tcAttach: lib.func('int bpf_tc_attach(const void *hook, void *opts)'),
  tcDetach: lib.func('int bpf_tc_detach(const void *hook, const void *opts)'),
  tcQuery: lib.func('int bpf_tc_query(const void *hook, void *opts)'),

  progTestRun: lib.func('int bpf_prog_test_run_opts(int fd, void *opts)'),
  numPossibleCpus: lib.func('int libbpf_num_possible_cpus(void)'),
  setPrint: lib.func('void *libbpf_set_print(void *fn)'),

  ifNameToIndex: libc.func('unsigned int if_nametoindex(const char *name)'),
  close: libc.func('int close(int fd)'),
  vsnprintf: libc.func('int vsnprintf(void *buf, size_t size, void *fmt, void *ap)'),
};

function isNull(p: unknown): boolean {
  return p === null || p === undefined;
}

/** A failed pointer-returning call: libbpf 1.0 sets errno and returns NULL. */
function pointerOrErrno(p: unknown): NativePtr | number {
  if (isNull(p)) return -(koffi.errno() || 22 /* EINVAL */);
  return p as NativePtr;
}

// ---- libbpf's log ----------------------------------------------------------------------

/** Severity of a libbpf message, as libbpf numbers them. */
export type LibbpfLogLevel = 'warn' | 'info' | 'debug';
export type LibbpfLogSink = (level: LibbpfLogLevel, message: string) => void;

const LEVELS: LibbpfLogLevel[] = ['warn', 'info', 'debug'];
let logSink: LibbpfLogSink | null = null;
const logBuf = Buffer.alloc(8192);
const PrintFn = koffi.proto('int wansteer_libbpf_print(int level, void *fmt, void *ap)');
let printCb: unknown = null;

/**
 * Route libbpf's messages (verifier log on a failed load, warnings) to `sink`, or back to
 * libbpf's default (stderr) with null. The callback formats with vsnprintf: libbpf hands us
 * a printf format and a va_list, which is a pointer on the ABIs Node runs on (x86-64, arm64).
 */
export function setLogSink(sink: LibbpfLogSink | null): void {
  logSink = sink;
  if (sink && !printCb) {
    printCb = koffi.register((level: number, fmt: unknown, ap: unknown) => {
      const n = fn.vsnprintf(logBuf, logBuf.length, fmt, ap) as number;
      const text = logBuf.toString('utf8', 0, Math.max(0, Math.min(n, logBuf.length - 1))).trimEnd();
      if (text && logSink) logSink(LEVELS[level] ?? 'debug', text);
      return 0;
    }, koffi.pointer(PrintFn));
    fn.setPrint(printCb);
  } else if (!sink && printCb) {
    fn.setPrint(null);
    koffi.unregister(printCb as bigint);
    printCb = null;
  }
}

// ---- objects, maps, programs -----------------------------------------------------------

export function objectOpen(path: string): NativePtr | number {
  return pointerOrErrno(fn.objectOpenFile(path, null));
}
export function objectLoad(obj: NativePtr): number {
  return fn.objectLoad(obj) as number;
}
export function objectClose(obj: NativePtr): void {
  fn.objectClose(obj);
}
export function findMap(obj: NativePtr, name: string): NativePtr | number {
  const p = fn.findMap(obj, name);
  return isNull(p) ? -2 /* ENOENT */ : (p as NativePtr);
}
export function findProgram(obj: NativePtr, name: string): NativePtr | number {
  const p = fn.findProgram(obj, name);
  return isNull(p) ? -2 /* ENOENT */ : (p as NativePtr);
}
export function mapFd(map: NativePtr): number {
  return fn.mapFd(map) as number;
}
export function mapSetMaxEntries(map: NativePtr, max: number): number {
  return fn.mapSetMaxEntries(map, max) as number;
}
/** Before load: reuse the map pinned at `path` if it exists and is compatible, else pin it there. */
export function mapSetPinPath(map: NativePtr, path: string): number {
  return fn.mapSetPinPath(map, path) as number;
}
export function mapIsPinned(map: NativePtr): boolean {
  return fn.mapIsPinned(map) as boolean;
}
/** A map's definition in an opened (not yet loaded) object. */
export interface MapDef {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  /** BTF type ids of the key and value in the object's BTF (0: none). */
  btfKeyTypeId: number;
  btfValueTypeId: number;
}
export function mapDef(map: NativePtr): MapDef {
  return {
    type: fn.mapType(map) as number,
    keySize: fn.mapKeySize(map) as number,
    valueSize: fn.mapValueSize(map) as number,
    maxEntries: fn.mapMaxEntries(map) as number,
    flags: fn.mapFlags(map) as number,
    btfKeyTypeId: fn.mapBtfKeyTypeId(map) as number,
    btfValueTypeId: fn.mapBtfValueTypeId(map) as number,
  };
}
/** A copy of the bytes a global-data map (.data, .rodata) starts with, or -ENOENT. */
export function mapInitialValue(map: NativePtr): Buffer | number {
  const size = [0];
  const p = fn.mapInitialValue(map, size);
  if (isNull(p) || !size[0]) return -2 /* ENOENT */;
  return copyOut(p, size[0]);
}
/** A copy of an opened object's BTF, raw (header, types, strings), or -ENOENT without BTF. */
export function objectBtfRaw(obj: NativePtr): Buffer | number {
  const btf = fn.objectBtf(obj);
  if (isNull(btf)) return -2 /* ENOENT */;
  const size = [0];
  const p = fn.btfRawData(btf, size);
  if (isNull(p)) return -(koffi.errno() || 12 /* ENOMEM */);
  return copyOut(p, size[0]!);
}
function copyOut(p: unknown, size: number): Buffer {
  return Buffer.from(koffi.view(p as object, size)).subarray(0, size);
}
export function programFd(prog: NativePtr): number {
  return fn.programFd(prog) as number;
}
export function programSetAutoload(prog: NativePtr, autoload: boolean): number {
  return fn.programSetAutoload(prog, autoload) as number;
}

// ---- bpffs and object info -------------------------------------------------------------

export function objPin(fd: number, path: string): number {
  return fn.objPin(fd, path) as number;
}
/** Open a pinned map or program: an fd, or -errno (-ENOENT when nothing is pinned there). */
export function objGet(path: string): number {
  return fn.objGet(path) as number;
}
export function progGetFdById(id: number): number {
  return fn.progGetFdById(id) as number;
}

/**
 * The raw BTF (header, types, strings) the kernel holds under `id` — a map's btf_id — or -errno.
 * Two calls to bpf_obj_get_info_by_fd: the first learns the size, the second copies.
 */
export function btfRawById(id: number): Buffer | number {
  const fd = fn.btfGetFdById(id) as number;
  if (fd < 0) return fd;
  try {
    // struct bpf_btf_info { __u64 btf; __u32 btf_size; __u32 id; __u64 name; __u32 name_len; __u32 kernel_btf; }
    const info = Buffer.alloc(32);
    const len = new Uint32Array([info.length]);
    let rc = fn.objGetInfoByFd(fd, info, len) as number;
    if (rc < 0) return rc;
    const data = Buffer.alloc(info.readUInt32LE(8));
    info.fill(0);
    info.writeBigUInt64LE(koffi.address(data), 0);
    info.writeUInt32LE(data.length, 8);
    len[0] = info.length;
    rc = fn.objGetInfoByFd(fd, info, len) as number;
    return rc < 0 ? rc : data;
  } finally {
    fn.close(fd);
  }
}

/** bpf_map_create with no options (no BTF, no flags): an fd or -errno. */
export function mapCreate(type: number, name: string, keySize: number, valueSize: number, maxEntries: number): number {
  return fn.mapCreate(type, name, keySize, valueSize, maxEntries, null) as number;
}
/** Close an fd that bpf_obj_get or bpf_prog_get_fd_by_id returned. */
export function closeFd(fd: number): number {
  return fn.close(fd) === 0 ? 0 : -(koffi.errno() || 9 /* EBADF */);
}

/** The fields of struct bpf_map_info that we use (offsets from linux/bpf.h). */
export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
  /** The BTF object the map was created with (0: none), and its key and value types in it. */
  btfId: number;
  btfKeyTypeId: number;
  btfValueTypeId: number;
}
export function mapInfo(fd: number): MapInfo | number {
  const info = Buffer.alloc(96);
  const len = new Uint32Array([info.length]);
  const rc = fn.objGetInfoByFd(fd, info, len) as number;
  if (rc < 0) return rc;
  return {
    type: info.readUInt32LE(0),
    id: info.readUInt32LE(4),
    keySize: info.readUInt32LE(8),
    valueSize: info.readUInt32LE(12),
    maxEntries: info.readUInt32LE(16),
    flags: info.readUInt32LE(20),
    name: cString(info, 24, 16),
    btfId: info.readUInt32LE(64),
    btfKeyTypeId: info.readUInt32LE(68),
    btfValueTypeId: info.readUInt32LE(72),
  };
}

/** The fields of struct bpf_prog_info that we use. */
export interface ProgInfo {
  type: number;
  id: number;
  tag: string;
  name: string;
}
export function progInfo(fd: number): ProgInfo | number {
  const info = Buffer.alloc(240);
  const len = new Uint32Array([info.length]);
  const rc = fn.objGetInfoByFd(fd, info, len) as number;
  if (rc < 0) return rc;
  return {
    type: info.readUInt32LE(0),
    id: info.readUInt32LE(4),
    tag: info.subarray(8, 16).toString('hex'),
    name: cString(info, 64, 16),
  };
}

function cString(buf: Buffer, off: number, max: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('latin1', off, end < 0 || end > off + max ? off + max : end);
}

// ---- map operations --------------------------------------------------------------------

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

export function mapLookup(fd: number, key: Uint8Array, value: Uint8Array): number {
  return fn.mapLookup(fd, key, value) as number;
}
export function mapUpdate(fd: number, key: Uint8Array, value: Uint8Array, flags = BPF_ANY): number {
  return fn.mapUpdate(fd, key, value, flags) as number;
}
export function mapDelete(fd: number, key: Uint8Array): number {
  return fn.mapDelete(fd, key) as number;
}
/** The key after `key` (null: the first key). -ENOENT at the end. */
export function mapGetNextKey(fd: number, key: Uint8Array | null, next: Uint8Array): number {
  return fn.mapGetNextKey(fd, key, next) as number;
}

/** struct bpf_map_batch_opts { size_t sz; __u64 elem_flags; __u64 flags; } */
function batchOpts(elemFlags: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0);
  b.writeBigUInt64LE(BigInt(elemFlags), 8);
  return b;
}

/**
 * Update `count` entries packed back to back in `keys` and `values`.
 * Returns 0 or -errno, and in `done[0]` how many entries the kernel processed.
 * `done` is a one-element Uint32Array: koffi hands its memory to C, so it is both in and out.
 */
export function mapUpdateBatch(
  fd: number,
  keys: Uint8Array,
  values: Uint8Array,
  count: number,
  done: Uint32Array,
  elemFlags = BPF_ANY,
): number {
  done[0] = count;
  return fn.mapUpdateBatch(fd, keys, values, done, batchOpts(elemFlags)) as number;
}
export function mapDeleteBatch(fd: number, keys: Uint8Array, count: number, done: Uint32Array): number {
  done[0] = count;
  return fn.mapDeleteBatch(fd, keys, done, batchOpts(0)) as number;
}
/**
 * Read up to `count` entries starting after the opaque position `inBatch` (null: from the
 * start); the position to continue from is written to `outBatch`. -ENOENT with done[0]
 * entries means the walk reached the end.
 */
export function mapLookupBatch(
  fd: number,
  inBatch: Uint8Array | null,
  outBatch: Uint8Array,
  keys: Uint8Array,
  values: Uint8Array,
  count: number,
  done: Uint32Array,
): number {
  done[0] = count;
  return fn.mapLookupBatch(fd, inBatch, outBatch, keys, values, done, batchOpts(0)) as number;
}

export function numPossibleCpus(): number {
  return fn.numPossibleCpus() as number;
}

// ---- tc (clsact) -----------------------------------------------------------------------

export const TC_INGRESS = 1;
export const TC_EGRESS = 2;
export const TC_F_REPLACE = 1;

/** struct bpf_tc_hook { size_t sz; int ifindex; enum attach_point; __u32 parent; } */
function tcHook(ifindex: number, attachPoint: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0);
  b.writeInt32LE(ifindex, 8);
  b.writeUInt32LE(attachPoint, 12);
  return b;
}

/** struct bpf_tc_opts { size_t sz; int prog_fd; __u32 flags, prog_id, handle, priority; } */
function tcOpts(progFd: number, flags: number, handle: number, priority: number): Buffer {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(32n, 0);
  b.writeInt32LE(progFd, 8);
  b.writeUInt32LE(flags, 12);
  b.writeUInt32LE(0, 16);
  b.writeUInt32LE(handle, 20);
  b.writeUInt32LE(priority, 24);
  return b;
}

/** Create the clsact qdisc on `ifindex`. -EEXIST when one is there already. */
export function tcHookCreate(ifindex: number): number {
  return fn.tcHookCreate(tcHook(ifindex, TC_EGRESS)) as number;
}
/** Remove the clsact qdisc (and with it every tc filter on it) from `ifindex`. */
export function tcHookDestroy(ifindex: number): number {
  return fn.tcHookDestroy(tcHook(ifindex, TC_INGRESS | TC_EGRESS)) as number;
}
/** Attach `progFd` as a direct-action filter; replace ours in place when `replace` is set. */
export function tcAttach(
  ifindex: number,
  attachPoint: number,
  progFd: number,
  handle: number,
  priority: number,
  replace: boolean,
): number {
  return fn.tcAttach(
    tcHook(ifindex, attachPoint),
    tcOpts(progFd, replace ? TC_F_REPLACE : 0, handle, priority),
  ) as number;
}
export function tcDetach(ifindex: number, attachPoint: number, handle: number, priority: number): number {
  return fn.tcDetach(tcHook(ifindex, attachPoint), tcOpts(0, 0, handle, priority)) as number;
}
/** The id of the program attached with this handle and priority, or -ENOENT. */
export function tcQuery(ifindex: number, attachPoint: number, handle: number, priority: number): number {
  const opts = tcOpts(0, 0, handle, priority);
  const rc = fn.tcQuery(tcHook(ifindex, attachPoint), opts) as number;
  return rc < 0 ? rc : opts.readUInt32LE(16);
}

// ---- BPF_PROG_TEST_RUN -----------------------------------------------------------------

export interface TestRunResult {
  /** The program's return value (for tc: TC_ACT_*). */
  retval: number;
  /** Average run time per repeat, in ns, as the kernel measured it. */
  durationNs: number;
  /** Bytes of the packet after the program ran. */
  dataSizeOut: number;
  /** Bytes of struct __sk_buff written to ctxOut. */
  ctxSizeOut: number;
}

/**
 * Run `progFd` on `dataIn` `repeat` times in the kernel (struct bpf_test_run_opts, 80 bytes).
 * The packet after the run lands in `dataOut`; a context (struct __sk_buff) may be given.
 */
export function progTestRun(
  progFd: number,
  dataIn: Uint8Array,
  dataOut: Uint8Array,
  repeat: number,
  result: TestRunResult,
  ctxIn: Uint8Array | null = null,
  ctxOut: Uint8Array | null = null,
): number {
  const o = Buffer.alloc(80);
  o.writeBigUInt64LE(80n, 0);
  o.writeBigUInt64LE(koffi.address(dataIn), 8);
  o.writeBigUInt64LE(dataOut.length ? koffi.address(dataOut) : 0n, 16);
  o.writeUInt32LE(dataIn.length, 24);
  o.writeUInt32LE(dataOut.length, 28);
  if (ctxIn) {
    o.writeBigUInt64LE(koffi.address(ctxIn), 32);
    o.writeUInt32LE(ctxIn.length, 48);
  }
  if (ctxOut) {
    o.writeBigUInt64LE(koffi.address(ctxOut), 40);
    o.writeUInt32LE(ctxOut.length, 52);
  }
  o.writeInt32LE(repeat, 60);
  const rc = fn.progTestRun(progFd, o) as number;
  result.dataSizeOut = o.readUInt32LE(28);
  result.ctxSizeOut = o.readUInt32LE(52);
  result.retval = o.readUInt32LE(56);
  result.durationNs = o.readUInt32LE(64);
  return rc;
}

// ---- interfaces ------------------------------------------------------------------------

/** The ifindex of `name` in this process's network namespace, or -ENODEV. */
export function ifNameToIndex(name: string): number {
  const idx = fn.ifNameToIndex(name) as number;
  return idx === 0 ? -(koffi.errno() || 19 /* ENODEV */) : idx;
}
