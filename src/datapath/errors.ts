/**
 * Typed errors for the datapath. The native binding returns 0 or -errno; this is the one
 * place that turns a negative errno into an error a caller can act on. Each error carries a
 * stable `code` (for logs, metrics and API answers), the failed operation, and the errno.
 */
import { constants } from 'node:os';
import { WansteerError } from '../base/errors.js';

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(constants.errno).map(([name, num]) => [num, name]),
);

/** Stable codes for datapath failures. */
export const DatapathErrorCode = {
  /** The BPF object file is missing or not a BPF object. */
  OBJECT: 'WS_DATAPATH_OBJECT',
  /** The kernel refused to load the program (verifier) or create a map. */
  LOAD: 'WS_DATAPATH_LOAD',
  /** Pinning to or opening from bpffs failed. */
  PIN: 'WS_DATAPATH_PIN',
  /** Creating the clsact hook or attaching/detaching the tc filter failed. */
  ATTACH: 'WS_DATAPATH_ATTACH',
  /** No such network interface. */
  NO_INTERFACE: 'WS_DATAPATH_NO_INTERFACE',
  /** A map read or write failed. */
  MAP: 'WS_DATAPATH_MAP',
  /** The flow table is full (only for non-LRU tables; the LRU evicts instead). */
  FULL: 'WS_DATAPATH_FULL',
  /** A value passed in is out of range (link id, policy id, DSCP, address). */
  INVALID: 'WS_DATAPATH_INVALID',
  /** Missing privilege: CAP_BPF / CAP_NET_ADMIN, or bpffs not mounted. */
  PERMISSION: 'WS_DATAPATH_PERMISSION',
  /** BPF_PROG_TEST_RUN failed. */
  TEST_RUN: 'WS_DATAPATH_TEST_RUN',
  /**
   * The pinned maps cannot be adopted or migrated by this agent (a newer agent's layout, a key or
   * type that changed): refused before anything was changed. The message says what to do.
   */
  LAYOUT: 'WS_DATAPATH_LAYOUT',
  /** An rtnetlink socket could not be opened, or the kernel refused a question on it (carrier poll, neighbours). */
  NETLINK: 'WS_DATAPATH_NETLINK',
} as const;
export type DatapathErrorCode = (typeof DatapathErrorCode)[keyof typeof DatapathErrorCode];

export class DatapathError extends WansteerError {
  override readonly name = 'DatapathError';
  constructor(
    readonly code: DatapathErrorCode,
    /** What we were doing, e.g. `update ws_flows`. */
    readonly op: string,
    /** The errno, positive (EPERM = 1), or 0 when the error is not a syscall failure. */
    readonly errno: number,
    detail?: string,
  ) {
    super(`${op}: ${detail ?? describeErrno(errno)}`);
  }

  /** The errno's symbolic name, e.g. `ENOENT`. */
  get errnoName(): string {
    return ERRNO_NAMES.get(this.errno) ?? `errno ${this.errno}`;
  }
}

export function describeErrno(errno: number): string {
  const name = ERRNO_NAMES.get(errno);
  return name ? `${name} (${errno})` : `errno ${errno}`;
}

/**
 * Throw a DatapathError when `rc` is a negative errno; return `rc` otherwise.
 * EPERM/EACCES become PERMISSION whatever the operation: the fix is the same.
 */
export function check(rc: number, code: DatapathErrorCode, op: string, detail?: string): number {
  if (rc >= 0) return rc;
  const errno = -rc;
  if (errno === constants.errno.EPERM || errno === constants.errno.EACCES) {
    throw new DatapathError(
      DatapathErrorCode.PERMISSION,
      op,
      errno,
      `${describeErrno(errno)}: needs CAP_BPF and CAP_NET_ADMIN (run as root) and bpffs at /sys/fs/bpf`,
    );
  }
  throw new DatapathError(code, op, errno, detail ? `${detail}: ${describeErrno(errno)}` : undefined);
}

export function invalid(op: string, detail: string): DatapathError {
  return new DatapathError(DatapathErrorCode.INVALID, op, 0, detail);
}
