/**
 * DatapathPort: the operations the steering engine uses. The kernel datapath (Datapath)
 * implements it, and so does MemoryDatapath, which keeps the same tables in memory for the
 * agent's --dry-run mode and for tests of the layers above that need no kernel.
 */
import type { FlowEntry, Counters } from './datapath.js';
import type { FlowKey, LinkEntry, PolicyAction } from './codec.js';

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
  /** Flows, all or those of one policy id or of a set of them (one walk of the table either way). */
  listFlows(filter?: FlowFilter): FlowEntry[];
  countFlows(): number;
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
