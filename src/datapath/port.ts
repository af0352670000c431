/**
 * DatapathPort: the operations the steering engine uses. The kernel datapath (Datapath)
 * implements it, and so does MemoryDatapath, which keeps the same tables in memory for the
 * agent's --dry-run mode and for tests of the layers above that need no kernel.
 */
import type { FlowEntry, Counters } from './datapath.js';
import type { FlowKey, LinkEntry, PolicyAction } from './codec.js';

/** What to page through: see DatapathPort.pageFlows. */
export interface FlowPageRequest {
  /** The `next` of the page before; absent: from the start. */
  after?: string;
  /** Most entries to return. */
  limit: number;
  /** Only flows of these policy ids. */
  policyIds?: ReadonlySet<number>;
  /** Most entries to walk, those filtered out included (default pageScan(limit)). */
  scan?: number;
}

/** A page of flows; `next` goes on after it, and is absent once the walk is over. */
export interface FlowPage {
  items: FlowEntry[];
  next?: string;
}

/** Entries a page walks at most: a filtered page costs what a few full ones do, however few match. */
export function pageScan(limit: number): number {
  return Math.max(4 * limit, 4096);
}

export interface DatapathPort {
  readonly adopted: boolean;
  readonly flowTableSize: number;
  ifindex(ifname: string): number;
  attach(ifname: string): unknown;
  setLink(id: number, link: LinkEntry): void;
  setLinkUp(id: number, up: boolean): void;
  listLinks(): Map<number, LinkEntry>;
  setPolicy(id: number, action: PolicyAction): void;
  deletePolicy(id: number): void;
  listPolicies(): Map<number, PolicyAction>;
  setDscpPolicy(dscp: number, policyId: number | null): void;
  listDscpPolicies(): Map<number, number>;
  upsertFlow(key: FlowKey, policyId: number, now?: bigint): void;
  upsertFlows(entries: ReadonlyArray<{ key: FlowKey; policyId: number }>, now?: bigint): void;
  getFlow(key: FlowKey): { policyId: number; lastSeenNs: bigint } | null;
  deleteFlows(keys: ReadonlyArray<FlowKey>): number;
  /** Every flow (for the engine's own bookkeeping: start-up, a removed policy). */
  listFlows(filter?: { policyId?: number }): FlowEntry[];
  /**
   * One page of flows, in the table's own order, from where `after` left off: the cost is the
   * page's (at most `scan` entries walked), not the table's. The cursor is opaque and only
   * this datapath's; a malformed one throws DatapathError INVALID. Entries written or removed
   * while a caller pages may be missed or seen twice; those there throughout are seen once.
   */
  pageFlows(request: FlowPageRequest): FlowPage;
  countFlows(): number;
  /** Flow entries per policy id, without decoding keys (for metrics). */
  countFlowsByPolicy(): Map<number, number>;
  ageFlows(maxIdleNs: bigint, now?: bigint): number;
  counters(): Counters;
  close(): void;
}
