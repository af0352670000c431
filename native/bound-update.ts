/**
 * native/bound-update.ts — single map writes through the agent's Node-API addon
 * (native/addon/bound_update.c, built by `make -C native/addon` into build/native/).
 *
 * A BoundUpdate holds a key buffer and a value buffer for good; each `run(fd)` is one
 * bpf(BPF_MAP_UPDATE_ELEM) of whatever those buffers hold at that moment, optionally with the
 * value's time field stamped just before (CLOCK_MONOTONIC ns, read in C: in JavaScript the
 * clock costs a BigInt per write). It is for the one write the agent makes per reported
 * session, where the crossing into native code is a large part of the cost (bench/flow-writes.ts: 82 % of a C loop's rate against 65 % through koffi,
 * measured in one process). Everything else goes through native/libbpf.ts.
 *
 * Like native/libbpf.ts this is policy-free: `run` returns 0 or a negative errno.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

interface Addon {
  bind(key: Uint8Array, value: Uint8Array, stampAt: number): object;
  update(binding: object, fd: number, flags: number, stamp: boolean): number;
}

/** Two levels up from native/, three from dist/native/ (as the BPF objects are found). */
function addonPath(): string {
  const candidates = ['../build/native/bound_update.node', '../../build/native/bound_update.node'].map((rel) =>
    fileURLToPath(new URL(rel, import.meta.url)),
  );
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw Object.assign(new Error(`the native addon is not built (looked for ${candidates.join(', ')}): run scripts/setup.sh or make -C native/addon`), {
      code: 'WS_NATIVE_MISSING',
    });
  }
  return found;
}

let addon: Addon | undefined;
function load(): Addon {
  addon ??= createRequire(import.meta.url)(addonPath()) as Addon;
  return addon;
}

export class BoundUpdate {
  private readonly binding: object;
  private readonly update: Addon['update'];

  /**
   * `key` and `value` must keep their size: the kernel reads the map's key and value sizes.
   * `stampAt`: the byte offset in `value` of an 8-aligned u64 that `run(…, true)` sets to the
   * time of the write, or -1 for none.
   */
  constructor(key: Uint8Array, value: Uint8Array, stampAt = -1) {
    const a = load();
    this.binding = a.bind(key, value, stampAt);
    this.update = a.update;
  }

  /** Write the buffers' key and value into the map `fd`, stamped or not: 0, or a negative errno. */
  run(fd: number, flags = 0, stamp = false): number {
    return this.update(this.binding, fd, flags, stamp);
  }
}
