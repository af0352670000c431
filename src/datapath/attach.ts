/**
 * Put a program on a WAN interface's tc egress (or ingress) hook, and take it off again.
 *
 * Our filter is identified by a fixed handle and priority, so a restarted agent finds and
 * replaces it in place (atomically: no packet sees an empty hook), and detaching removes only
 * our filter, never someone else's. The clsact qdisc is created when missing; an existing one
 * is not an error, and we only remove a qdisc this process created.
 */
import { execFileSync } from 'node:child_process';
import * as native from '../../native/libbpf.js';
import { DatapathError, DatapathErrorCode, check } from './errors.js';

/** 'WS' — the tc filter handle that marks our filter. */
export const TC_HANDLE = 0x5753;
/** tc filter priority: first on the hook, since we only ever touch our own flows. */
export const TC_PRIORITY_DEFAULT = 1;

const EEXIST = 17;
const ENOENT = 2;

/** Which entry point suits the device: Ethernet framing or raw IP (no L2 header). */
export type LinkFraming = 'eth' | 'l3';

export function interfaceIndex(ifname: string): number {
  const idx = native.ifNameToIndex(ifname);
  if (idx < 0) {
    throw new DatapathError(DatapathErrorCode.NO_INTERFACE, `interface ${ifname}`, -idx, `no interface named ${ifname} in this network namespace`);
  }
  return idx;
}

/**
 * Ethernet or raw IP? Asked of the kernel through `ip -j link` rather than /sys/class/net,
 * which shows the namespace /sys was mounted in, not necessarily ours.
 */
export function detectFraming(ifname: string): LinkFraming {
  let out: string;
  try {
    out = execFileSync('ip', ['-j', 'link', 'show', 'dev', ifname], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new DatapathError(DatapathErrorCode.NO_INTERFACE, `interface ${ifname}`, 0, `ip link show failed: ${(err as Error).message.split('\n')[0]}`);
  }
  const info = (JSON.parse(out) as { link_type?: string }[])[0];
  return info?.link_type === 'ether' ? 'eth' : 'l3';
}

export interface Attachment {
  ifname: string;
  ifindex: number;
  framing: LinkFraming;
  /** The program id now on the hook. */
  progId: number;
  /** This process created the clsact qdisc (and may remove it). */
  createdHook: boolean;
  /** Our filter was already there and was replaced in place. */
  replaced: boolean;
}

/** Which tc hook of the device: packets it sends (egress) or receives (ingress). */
export type TcHook = 'egress' | 'ingress';
const POINT: Record<TcHook, number> = { egress: native.TC_EGRESS, ingress: native.TC_INGRESS };

export function attachEgress(ifname: string, progFd: number, framing: LinkFraming, priority = TC_PRIORITY_DEFAULT): Attachment {
  return attachTc(ifname, 'egress', progFd, framing, priority);
}

/** The same on the ingress hook (reply-by-arrival learns there which link a flow came in by). */
export function attachIngress(ifname: string, progFd: number, framing: LinkFraming, priority = TC_PRIORITY_DEFAULT): Attachment {
  return attachTc(ifname, 'ingress', progFd, framing, priority);
}

function attachTc(ifname: string, hook: TcHook, progFd: number, framing: LinkFraming, priority: number): Attachment {
  const ifindex = interfaceIndex(ifname);
  const point = POINT[hook];
  const created = native.tcHookCreate(ifindex);
  if (created < 0 && created !== -EEXIST) check(created, DatapathErrorCode.ATTACH, `clsact on ${ifname}`);
  const before = native.tcQuery(ifindex, point, TC_HANDLE, priority);
  const replaced = before > 0;
  check(native.tcAttach(ifindex, point, progFd, TC_HANDLE, priority, true), DatapathErrorCode.ATTACH, `attach ${hook} ${ifname}`);
  const progId = check(native.tcQuery(ifindex, point, TC_HANDLE, priority), DatapathErrorCode.ATTACH, `query ${ifname}`);
  return { ifname, ifindex, framing, progId, createdHook: created === 0, replaced };
}

/** Remove our filter; remove the clsact qdisc too when `destroyHook` (we created it). */
export function detachEgress(ifname: string, priority = TC_PRIORITY_DEFAULT, destroyHook = false): boolean {
  return detachTc(ifname, 'egress', priority, destroyHook);
}

/** Remove our ingress filter; the qdisc (both hooks' home) too when `destroyHook`. */
export function detachIngress(ifname: string, priority = TC_PRIORITY_DEFAULT, destroyHook = false): boolean {
  return detachTc(ifname, 'ingress', priority, destroyHook);
}

function detachTc(ifname: string, hook: TcHook, priority: number, destroyHook: boolean): boolean {
  const idx = native.ifNameToIndex(ifname);
  if (idx < 0) return false; // the interface is gone, and our filter with it
  const rc = native.tcDetach(idx, POINT[hook], TC_HANDLE, priority);
  if (rc !== -ENOENT) check(rc, DatapathErrorCode.ATTACH, `detach ${hook} ${ifname}`);
  if (destroyHook) {
    const d = native.tcHookDestroy(idx);
    if (d !== -ENOENT && d !== -22 /* EINVAL: no qdisc */) check(d, DatapathErrorCode.ATTACH, `remove clsact on ${ifname}`);
  }
  return rc === 0;
}

/** The program id of our filter on `ifname`'s egress (or ingress), or null when it is not attached. */
export function attachedProgramId(ifname: string, priority = TC_PRIORITY_DEFAULT, hook: TcHook = 'egress'): number | null {
  const idx = native.ifNameToIndex(ifname);
  if (idx < 0) return null;
  const id = native.tcQuery(idx, POINT[hook], TC_HANDLE, priority);
  return id > 0 ? id : null;
}

/** One of our tc filters (our handle, the default priority), wherever it sits in this namespace. */
export interface OurFilter {
  ifname: string;
  ifindex: number;
  point: 'egress' | 'ingress';
  /** The program it runs now. */
  progId: number;
}

/**
 * Every filter of ours on every interface of this network namespace, egress and ingress: what
 * a map migration must move to the new maps. Interfaces come from `ip -j link` (see
 * detectFraming for why not /sys).
 */
export function ourFilters(): OurFilter[] {
  let links: { ifindex: number; ifname: string }[];
  try {
    links = JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as typeof links;
  } catch (err) {
    throw new DatapathError(DatapathErrorCode.ATTACH, 'list interfaces', 0, `ip link show failed: ${(err as Error).message.split('\n')[0]}`);
  }
  const found: OurFilter[] = [];
  for (const { ifindex, ifname } of links) {
    for (const [point, where] of [['egress', native.TC_EGRESS], ['ingress', native.TC_INGRESS]] as const) {
      const progId = native.tcQuery(ifindex, where, TC_HANDLE, TC_PRIORITY_DEFAULT);
      if (progId > 0) found.push({ ifname, ifindex, point, progId });
    }
  }
  return found;
}

/** Put `progFd` in place of the program `filter` runs, atomically (tc replace). Returns the new program id. */
export function replaceFilter(filter: OurFilter, progFd: number): number {
  const where = filter.point === 'egress' ? native.TC_EGRESS : native.TC_INGRESS;
  const op = `replace ${filter.point} filter on ${filter.ifname}`;
  check(native.tcAttach(filter.ifindex, where, progFd, TC_HANDLE, TC_PRIORITY_DEFAULT, true), DatapathErrorCode.ATTACH, op);
  return check(native.tcQuery(filter.ifindex, where, TC_HANDLE, TC_PRIORITY_DEFAULT), DatapathErrorCode.ATTACH, op);
}
