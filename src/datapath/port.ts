/**
 * DatapathPort: the operations the steering engine uses. The kernel datapath (Datapath)
 * implements it, and so does MemoryDatapath, which keeps the same tables in memory for the
 * agent's --dry-run mode and for tests of the layers above that need no kernel.
 */
import type { Reason } from './abi.js';
import type { FlowKey, FlowKeyView, LinkEntry, PolicyAction } from './codec.js';
import type { NeighbourScope } from './neighbours.js';

export interface Counter {
  packets: bigint;
  bytes: bigint;
}

export interface FlowEntry extends FlowKeyView {
  policyId: number;
  /** Monotonic-clock ns when the datapath (or the writer) last saw the flow. */
  lastSeenNs: bigint;
}

export interface Counters {
  /** Packets steered out of each link, by link id (links with traffic only). */
  links: Map<number, Counter>;
  /** Packets of each policy's sessions, by policy id (policies with traffic only). */
  policies: Map<number, Counter>;
  /** Every packet under one reason (dscp_rewritten in addition). */
  reasons: Record<Reason, Counter>;
}

/** One flow table's fill, and the flows its LRU evicted since the agent started. */
export interface FlowTableFill {
  family: 4 | 6;
  entries: number;
  maxEntries: number;
  /** Flows the LRU evicted to make room: steering lost while they were still active. */
  evicted: number;
}

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
  /** Delete an interface's neighbour entries in `scope` (they may hold redirected packets); how many. */
  flushNeighbours(ifindex: number, scope: NeighbourScope): number;
  setPolicy(id: number, action: PolicyAction): void;
  deletePolicy(id: number): void;
  listPolicies(): Map<number, PolicyAction>;
  setDscpPolicy(dscp: number, policyId: number | null): void;
  listDscpPolicies(): Map<number, number>;
  upsertFlow(key: FlowKey, policyId: number, now?: bigint): void;
  upsertFlows(entries: ReadonlyArray<{ key: FlowKey; policyId: number }>, now?: bigint): void;
  getFlow(key: FlowKey): { policyId: number; lastSeenNs: bigint } | null;
  deleteFlows(keys: ReadonlyArray<FlowKey>): number;
  /** Flows, all or those of one policy id or of a set of them (one walk of the table either way). */
  listFlows(filter?: FlowFilter): FlowEntry[];
  /**
   * One page of flows, in the table's own order, from where `after` left off: the cost is the
   * page's (at most `scan` entries walked), not the table's. The cursor is opaque and only
   * this datapath's; a malformed one throws DatapathError INVALID. Entries written or removed
   * while a caller pages may be missed or seen twice; those there throughout are seen once.
   */
  pageFlows(request: FlowPageRequest): FlowPage;
  countFlows(): number;
  /** Each family's table fill and LRU evictions, as of a walk at most `maxAgeMs` old. */
  flowTables(maxAgeMs?: number): FlowTableFill[];
  /** Flow entries per policy id, without decoding keys (for metrics). */
  countFlowsByPolicy(): Map<number, number>;
  ageFlows(maxIdleNs: bigint, now?: bigint): number;
  counters(): Counters;
  close(): void;
}

export interface FlowFilter {
  readonly policyId?: number;
  readonly policyIds?: ReadonlySet<number>;
}

/** Whether a flow of `policyId` passes `filter`. */
export function flowPasses(filter: FlowFilter, policyId: number): boolean {
  if (filter.policyId !== undefined && policyId !== filter.policyId) return false;
  return filter.policyIds === undefined || filter.policyIds.has(policyId);
}

/**
 * What the engine asks of the kernel for internet links (docs/links.md): InternetRouting, or
 * MemoryInternetRouting for --dry-run and tests above the kernel.
 */
export interface InternetRoutingPort {
  /** DSCP class -> internet link id, for new connections: the whole set. */
  setClasses(classes: ReadonlyMap<number, number>): void;
  /** The class -> link map in force. */
  classLinks(): ReadonlyMap<number, number>;
  /** The link died: delete its connections' conntrack entries (they get a reset). Returns how many. */
  resetConnections(linkId: number): number;
  /** The link is back: its routes into its table again. */
  refreshLink(linkId: number): void;
  close(): void;
}
