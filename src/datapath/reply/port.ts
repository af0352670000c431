/**
 * ReplyDatapathPort: what a reply-by-arrival agent (the cloud end of overlay links) asks of its
 * datapath. ReplyDatapath drives the kernel (bpf/reply.bpf.c); MemoryReplyDatapath keeps the
 * tables in memory for --dry-run and tests of the layers above.
 */
import type { Reason } from '../abi.js';
import type { FlowKey, FlowKeyView, LinkEntry } from '../codec.js';
import type { Counter } from '../port.js';

/** A learned flow: its reply-direction tuple (src = this end) and the link it last arrived on. */
export interface ArrivalEntry extends FlowKeyView {
  linkId: number;
  /** Monotonic-clock ns of its last arrival (refreshed at most once a second). */
  lastSeenNs: bigint;
}

export interface ReplyCounters {
  /** Packets that arrived by each link (ingress), by link id; links with traffic only. */
  arrived: Map<number, Counter>;
  /** Replies that left by their flow's arrival link (egress), by link id. */
  replied: Map<number, Counter>;
  /** Every reply-side packet under one reason (redirected, on_link, no_match, link_down, …). */
  reasons: Record<Reason, Counter>;
}

export interface ReplyDatapathPort {
  readonly adopted: boolean;
  /** Arrival entries per family the tables hold at most. */
  readonly arrivalTableSize: number;
  ifindex(ifname: string): number;
  /** Both hooks of a link's interface: ingress learns, egress replies. */
  attach(ifname: string): unknown;
  /** Link `id`: its interface (packets arriving there are this link's) and where replies go. */
  setLink(id: number, link: LinkEntry): void;
  setLinkUp(id: number, up: boolean): void;
  deleteLink(id: number): void;
  listLinks(): Map<number, LinkEntry>;
  /** Write an arrival by hand (tests, tools); `key` in the reply direction. */
  setArrival(key: FlowKey, linkId: number, now?: bigint): void;
  getArrival(key: FlowKey): { linkId: number; lastSeenNs: bigint } | null;
  listArrivals(limit?: number): ArrivalEntry[];
  countArrivals(): number;
  /** Remove arrivals not refreshed for `maxIdleNs` (FlowAgeing calls it). Returns how many. */
  ageFlows(maxIdleNs: bigint, now?: bigint): number;
  counters(): ReplyCounters;
  close(): void;
}
