/**
 * The steering engine's contract with the outside: what a session report is, what the engine
 * answers, and the interface the HTTP and gRPC intakes and the REST API call. Nothing here
 * knows about HTTP, gRPC or BPF.
 *
 * A session is one connection as the reporting proxy sees it: `local` is the proxy's own end
 * (its pod address), `remote` the peer. Whatever the direction, the packets that leave over a
 * WAN link go local -> remote, so that is the flow entry written:
 *   inbound  (SIDECAR_INBOUND, a gateway's downstream): remote is the client; egress = replies
 *   outbound (a proxy's upstream connection):           remote is the server; egress = requests
 */
import type { Static } from '@sinclair/typebox';
import type { LinkName as LinkNameSchema } from '../config/schema.js';
import type { FlowTableFill } from '../datapath/index.js';
import type { Sla } from '../policies/model.js';
import type { Explanation } from '../routes/explain.js';
import { WansteerError } from '../base/errors.js';

type LinkName = Static<typeof LinkNameSchema>;

export type Direction = 'inbound' | 'outbound';

/** The request attributes route rules match on. Header names lower-case; several values joined by ','. */
export interface SessionRequest {
  authority: string;
  path: string;
  method: string;
  scheme?: string;
  headers?: Record<string, string>;
  /** Istio `sourceNamespace` / `sourceLabels` of the client workload, when the proxy knows them. */
  sourceNamespace?: string;
  sourceLabels?: Record<string, string>;
  /** Which proxy saw the request: `mesh` (a sidecar, the default) or a gateway as `namespace/name`. */
  gateway?: string;
  /**
   * The Envoy route the proxy matched (`streamInfo():routeName()`, Istio's `route[.match]` name),
   * when it knows: the engine then takes that route of the host's VirtualService instead of
   * matching the attributes again.
   */
  routeName?: string;
}

export interface SessionReport {
  direction: Direction;
  /** Default tcp. */
  protocol?: 'tcp' | 'udp';
  /** The reporting proxy's end, as Envoy writes it: `10.0.0.5:8080`, `[fd00::5]:8080`. */
  local: string;
  /** The peer's end, same form. */
  remote: string;
  request: SessionRequest;
}

/** Why a report was not turned into a flow entry. Stable strings: metrics labels and API codes. */
export const RejectReasons = [
  'bad-address', // local/remote not an ip:port, or families differ
  'spoofed-local', // local address is not the caller's and the caller is not an allowed proxy
  'rate-limited',
  'datapath-error',
] as const;
export type RejectReason = (typeof RejectReasons)[number];

/**
 * Reports that are valid but steer nothing. `not-ready`: the route rules or the policies are not
 * in yet (the cluster's first lists, with no snapshot of them on the node).
 */
export const UnmatchedReasons = ['no-virtual-service', 'no-route', 'no-policy', 'no-usable-link', 'not-ready'] as const;
export type UnmatchedReason = (typeof UnmatchedReasons)[number];

export type SessionOutcome =
  | { status: 'steered'; policy: string; link?: LinkName; dscp?: number; flow: FlowView }
  | { status: 'unmatched'; reason: UnmatchedReason; virtualService?: string; route?: string }
  | { status: 'rejected'; reason: RejectReason; message: string };

/** A flow as the API shows it. */
export interface FlowView {
  protocol: 'tcp' | 'udp' | number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  policy: string;
  /** Seconds since the datapath last saw a packet of the flow (~1 s resolution). */
  idleSeconds?: number;
}

/** Which flows GET /v1/flows asks for: a page of at most `limit`, from where `after` left off. */
export interface FlowFilter {
  policy?: string;
  /** Flows of the policies this link carries now. */
  link?: LinkName;
  limit?: number;
  /** The `next` of the page before. */
  after?: string;
}

/** A page of flows; `next` goes on after it, absent once every flow has been walked. */
export interface FlowViewPage {
  items: FlowView[];
  next?: string;
}

/** A cursor (`after`) that is not one the engine handed out. */
export class FlowCursorError extends WansteerError {
  override readonly name = 'FlowCursorError';
  readonly code = 'WS_FLOW_CURSOR_INVALID';
  constructor(readonly cursor: string, reason: string) {
    super(reason);
  }
}

/** Live state of a WAN link. */
export interface LinkStatus {
  name: LinkName;
  interface: string;
  ifindex: number | null;
  /** Carrier and probes agree the link can carry traffic. */
  up: boolean;
  /** Policies whose traffic this link carries now. */
  activeFor: string[];
  rttMs?: number;
  lossPercent?: number;
  jitterMs?: number;
  /** Why the link is in its state, for people. */
  reason?: string;
}

/** A policy as the engine holds it now (the API's policy status view). */
export interface PolicyStatus {
  name: string;
  id: number | null;
  /** Ordered link preference, as written. */
  links: string[];
  /** The link carrying its traffic now, if any. */
  link?: string;
  /** Its service level, when it has one; `slaMet` says whether the link carrying it meets it. */
  sla?: Sla;
  slaMet?: boolean;
  dscp?: number;
  /** It has a datapath entry, so its sessions get flows. */
  installed: boolean;
  reason: string;
}

/** What `POST /v1/explain` answers: the route trace, and what the engine would do with the session. */
export interface SessionExplanation {
  route: Explanation;
  outcome: Extract<SessionOutcome, { status: 'unmatched' }> | ExplainedSteer;
}

export interface ExplainedSteer {
  status: 'steered';
  policy: string;
  link?: string;
  dscp?: number;
  /** Why the policy is on that link (reconcile's reason). */
  reason?: string;
}

/** What the API and the intakes need from the engine. */
export interface SteeringEngine {
  /**
   * Classify and steer sessions reported by `caller` (the report's source address). One outcome
   * per report, in order. Duplicates are cheap; a report never throws. `receivedAtNs` (monotonic
   * clock) is when the transport received the report: report-to-datapath latency runs from it.
   */
  reportSessions(reports: readonly SessionReport[], caller: string, receivedAtNs?: bigint): SessionOutcome[];
  /** What a session with this request would get, without writing anything. */
  explainSession(request: SessionRequest & { port?: number }): SessionExplanation;
  links(): LinkStatus[];
  /** One page of the steered flows; the cost is the page's, not the table's. Throws FlowCursorError. */
  flows(filter?: FlowFilter): FlowViewPage;
  /** Each policy as the engine holds it now: the link carrying it, whether its SLA is met, why. */
  policyStatus(): PolicyStatus[];
  /** The datapath can take writes and the rule and policy sources have synced. */
  ready(): boolean;
  /** What it still waits for before it is ready, for people; empty when ready. */
  waitingFor(): string[];
  /** Each flow table's fill and LRU evictions, so an operator knows when to resize. */
  flowTables?(): FlowTableFill[];
}

