/**
 * The steering engine: sessions × route rules × policies × link health -> datapath state.
 *
 *   const engine = new Engine({ datapath, config, logger });
 *   ruleSet.onChange(() => engine.setRoutes(ruleSet.table()));
 *   store.subscribe((list) => engine.setPolicies(list));   // after store.ready(): full lists
 *   engine.start();                                        // adopt pinned state, reconcile
 *   engine.setLinkHealth('lte', { up: false });            // one policy write per policy moved
 *   engine.reportSessions(reports, callerAddress);         // classify, batch-write flows
 *
 * Level-based: every change recomputes the desired link/policy/DSCP entries from the whole
 * picture (reconcile.ts) and writes only what differs from what the datapath holds. Flows are
 * written only by reports (and deleted by ageing, or when their policy goes away): a policy
 * edit or a link failure rewrites policy entries, never flows.
 *
 * Link ids are positions in `config.links` (0, 1, …). Reordering the config renumbers them;
 * that is harmless because flows point at policies, and the start-up reconcile rewrites every
 * link and policy entry to the new numbering.
 *
 * Duplicate reports: a report of a flow already in the table is written again, in the same
 * batched upsert as the rest of its batch. Checking first would cost a map lookup syscall per
 * report, while the batch write costs one syscall for the whole batch; rewriting the same
 * policy id is idempotent and refreshes the flow's last-seen, which is what a fresh report of
 * a live session should do. So a duplicate costs a classification and a slot in the batch.
 *
 * Classification is not cached: it takes ~0.6 µs (bench/results/classify.json), and a correct
 * key (authority, path with query, method, scheme, source, gateway and every header some rule
 * reads) costs about as much to build as the classification it would save. What is cached is
 * the step after it: route match -> policy, keyed by the identity of the frozen RouteMatch the
 * compiled table returns, and dropped whenever routes, policies or link choices change.
 */
import { silentLogger, type Logger } from '../base/logger.js';
import { classifyByRouteName, classifyRequest } from '../routes/classify.js';
import { explainRequest } from '../routes/explain.js';
import type { RouteRequest } from '../routes/model.js';
import { RouteTable } from '../routes/route-table.js';
import type { AgentConfig } from '../config/schema.js';
import type { DatapathPort, FlowTableFill, InternetRoutingPort } from '../datapath/index.js';
import type { LinkHealth } from '../links/health.js';
import type { WanPolicy } from '../policies/model.js';
import { CallerPolicy, emptySession, parseSession, spoofProblem, type ParsedSession } from './intake.js';
import type { PolicyIdsLoad } from './policy-ids.js';
import { PolicyRuntimes, type PolicyRuntime, type Unmatched } from './policy-runtime.js';
import {
  applyChanges, ChoiceMemo, desiredState, linksLeft, planChanges, sameDesired, tableOf, usable,
  type ActualState, type DesiredState, type LinkInput, type PolicyChoice, type PolicyInput, type Table,
} from './reconcile.js';
import { LatencyRecorder, SessionCounts, type PolicyCounts, type SteeringStats } from './stats.js';
import type {
  FlowFilter, FlowView, FlowViewPage, LinkStatus, PolicyStatus, RejectReason, SessionExplanation, SessionOutcome, SessionReport, SessionRequest, SteeringEngine, UnmatchedReason,
} from './types.js';
import { explainOutcome, flowPage, linkInput, linkRuntimes, linkStatuses, policyStatuses, type LinkRuntime } from './views.js';


export interface EngineOptions {
  datapath: DatapathPort;
  config: AgentConfig;
  logger?: Logger;
  /** CLOCK_MONOTONIC in ns (the clock the datapath's last-seen uses). Default process.hrtime.bigint. */
  clock?: () => bigint;
  /** Attach the program to each link's interface at start. Default true. */
  attach?: boolean;
  /** The kernel side of internet links; needed when config.links has any. */
  routing?: InternetRoutingPort;
}

export type LinkChangeKind = 'failover' | 'failback';

export type { LinkHealth };

export type { PolicyStatus } from './types.js';

const unmatched = (reason: UnmatchedReason): Unmatched => Object.freeze({ status: 'unmatched', reason }) as Unmatched;
const NO_VIRTUAL_SERVICE = unmatched('no-virtual-service');
const NO_ROUTE = unmatched('no-route');
const NOT_READY = unmatched('not-ready');
/** Status may walk the flow tables (1M entries: ~0.1 s) at most this often; ageing and scrapes walk them too. */
const STATUS_TABLE_WALK_MS = 5000;

export class Engine implements SteeringEngine, SteeringStats {
  readonly sessions = new SessionCounts();
  readonly latency = new LatencyRecorder();
  readonly writeErrors: Record<Table, number> = { flows: 0, policies: 0, links: 0, dscp: 0, classes: 0, neighbours: 0 };
  /** Connections reset because their internet link died, per link name (read by the metrics). */
  readonly connectionResets = new Map<string, number>();
  /** `policy\0kind` -> moves counted by noteLinkChange. */
  private readonly linkChangeCounts = new Map<string, number>();

  private readonly dp: DatapathPort;
  private readonly config: AgentConfig;
  private readonly log: Logger;
  private readonly clock: () => bigint;
  private readonly attach: boolean;
  private readonly routing: InternetRoutingPort | undefined;
  /** Internet link id -> usable at the last reconcile: a change resets or refreshes the link. */
  private readonly internetUsable = new Map<number, boolean>();
  private readonly callers: CallerPolicy;
  private readonly linkList: LinkRuntime[];
  private readonly linkByName = new Map<string, LinkRuntime>();

  private table: RouteTable = RouteTable.empty();
  private routesSynced = false;
  private policyList: readonly WanPolicy[] = [];
  private policiesSynced = false;
  private readonly policies: PolicyRuntimes;
  private lastApplied: DesiredState | undefined;
  private lastWarnings = '';
  private started = false;
  private stopped = false;
  /** Choices kept between reconciles (reconcile.ts ChoiceMemo). */
  private readonly choices = new ChoiceMemo();
  private readonly scratch: ParsedSession = emptySession();

  constructor(opts: EngineOptions) {
    this.dp = opts.datapath;
    this.config = opts.config;
    this.log = opts.logger ?? silentLogger;
    this.clock = opts.clock ?? process.hrtime.bigint;
    this.attach = opts.attach ?? true;
    this.routing = opts.routing;
    this.callers = new CallerPolicy(opts.config.intake?.allowedProxies ?? []);
    this.policies = new PolicyRuntimes(this.log);
    this.linkList = linkRuntimes(opts.config.links);
    for (const link of this.linkList) this.linkByName.set(link.name, link);
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /**
   * Adopt what the datapath holds and reconcile. Flows are kept when their policy ids can be
   * trusted (the id file is there and knows them); policy and DSCP entries are left as found
   * until the policies have arrived (setPolicies), so traffic keeps its steering meanwhile.
   */
  start(): void {
    if (this.started) return;
    const found = this.policies.load(this.config.stateDir);
    if (this.dp.adopted) this.dropUntrustedFlows(found);
    for (const link of this.linkList) this.resolveLink(link);
    this.started = true;
    // At start, before serving, the file is written at once: a restart finds it, whatever comes next.
    if (this.policiesSynced) this.syncPolicies(true);
    else this.reconcile(true);
  }

  /** Stop taking reports. The datapath keeps its state: the next agent adopts it. */
  stop(): void {
    this.stopped = true;
  }

  ready(): boolean {
    return this.started && !this.stopped && this.routesSynced && this.policiesSynced;
  }

  /** What the engine still waits for before it can steer (empty when ready), for /readyz. */
  waitingFor(): string[] {
    if (this.stopped) return ['the agent is shutting down'];
    const waiting: string[] = [];
    if (!this.started) waiting.push('the datapath state is not adopted yet');
    if (!this.routesSynced) waiting.push('route rules: the VirtualServices are not listed yet');
    if (!this.policiesSynced) waiting.push('policies: the WanPolicies are not listed yet');
    return waiting;
  }

  private dropUntrustedFlows(found: PolicyIdsLoad): void {
    const ids = this.policies.ids!;
    try {
      const flows = this.dp.listFlows();
      if (flows.length === 0) return;
      if (found.status !== 'loaded') {
        const deleted = this.dp.deleteFlows(flows);
        this.log.warn(
          { file: ids.file, found: found.status, ...(found.status === 'unreadable' ? { problem: found.problem } : {}), deleted },
          'adopted flows but no usable policy id file: their policy ids cannot be matched to policies, so the flows were deleted (sessions are steered again when next reported)',
        );
        return;
      }
      const orphans = flows.filter((f) => !ids.hasId(f.policyId));
      if (orphans.length > 0) {
        const deleted = this.dp.deleteFlows(orphans);
        this.log.warn({ deleted }, 'adopted flows whose policy id no policy holds: deleted');
      }
      this.log.info({ kept: flows.length - orphans.length }, 'adopted flows from the pinned datapath');
    } catch (err) {
      this.writeErrors.flows++;
      this.log.error({ err }, 'could not check the adopted flows');
    }
  }

  // ---- inputs ----------------------------------------------------------------------------

  /** The compiled route rules now in force (RuleSet.table()). */
  setRoutes(table: RouteTable): void {
    this.table = table;
    this.routesSynced = true;
    this.policies.clearResolved();
  }

  /** The full policy list (PolicyStore.subscribe gives one on every change). Missing names are removed. */
  setPolicies(list: readonly WanPolicy[]): void {
    this.policyList = list;
    this.policiesSynced = true;
    if (this.started) this.syncPolicies();
  }

  /** What the health monitor knows of a link. Unknown names are ignored (false). */
  setLinkHealth(name: string, health: LinkHealth): boolean {
    const link = this.linkByName.get(name);
    if (!link) {
      this.log.warn({ link: name }, 'health for a link that is not configured: ignored');
      return false;
    }
    link.up = health.up;
    link.carrier = health.carrier;
    link.rttMs = health.rttMs;
    link.lossPercent = health.lossPercent;
    link.jitterMs = health.jitterMs;
    link.healthReason = health.reason;
    this.reconcile();
    return true;
  }

  private resolveLink(link: LinkRuntime): void {
    if (link.configProblem) return;
    try {
      link.ifindex = this.dp.ifindex(link.interface);
      link.interfaceProblem = undefined;
    } catch (err) {
      link.ifindex = null;
      link.interfaceProblem = `interface ${link.interface} not found: ${(err as Error).message}`;
      return;
    }
    if (!this.attach) return;
    try {
      this.dp.attach(link.interface);
    } catch (err) {
      // Still a redirect target: only sessions leaving by this interface go unsteered.
      this.log.error({ err, link: link.name, interface: link.interface }, 'could not attach the steering program');
    }
  }

  /**
   * Takes the policy list in (policy-runtime.ts: ids, runtimes, the id save), then one
   * reconcile, and the flows of every removed policy deleted in one walk of the flow table. The
   * store hands over a burst of changes as one list, so 1000 deletions are one id save and one
   * walk, not 1000.
   */
  private syncPolicies(blocking = false): void {
    const removed = this.policies.take(this.policyList, { blocking });
    if (removed.size > 0) this.choices.keepOnly(this.policies);
    this.reconcile(true);
    if (removed.size > 0) this.deleteFlowsOf(removed);
  }

  /** Resolves once the id file holds the ids in use now (the agent waits for it when it stops). */
  async idsSaved(): Promise<void> {
    await this.policies.saved();
  }

  /** Deletes the flows of removed policies (id -> name), in one walk of the flow table. */
  private deleteFlowsOf(removed: ReadonlyMap<number, string>): void {
    const policies = removed.size <= 10 ? [...removed.values()] : `${removed.size} policies`;
    try {
      const flows = this.dp.listFlows({ policyIds: new Set(removed.keys()) });
      const deleted = flows.length ? this.dp.deleteFlows(flows) : 0;
      this.log.info({ policies, deleted }, 'policies removed: their flows deleted');
    } catch (err) {
      this.writeErrors.flows++;
      this.log.error({ err, policies }, 'could not delete the flows of removed policies');
    }
  }

  // ---- reconcile -------------------------------------------------------------------------

  /**
   * Make the datapath's link, policy and DSCP entries match the desired state. Skips the
   * datapath entirely when nothing changed since the last successful apply, unless forced
   * (the agent may force one now and then to repair drift). Returns the writes attempted.
   */
  reconcile(force = false): number {
    if (!this.started) return 0;
    for (const link of this.linkList) if (link.ifindex === null && !link.configProblem) this.resolveLink(link);
    const manage = this.policiesSynced;
    const inputs: PolicyInput[] = manage ? [...this.policies.values()].map((p) => ({ name: p.name, id: p.id, spec: p.spec, ...(p.choice?.link ? { current: p.choice.link } : {}) })) : [];
    const links = this.linkList.map(linkInput);
    const desired = desiredState(links, inputs, this.choices);
    this.reconcileInternet(links, desired, manage);
    for (const p of this.policies.values()) {
      const before = p.choice;
      p.choice = desired.choices.get(p.name);
      if (before && p.choice && before.link !== p.choice.link) this.noteLinkChange(p, before, p.choice);
    }
    this.policies.clearResolved();
    const warnings = desired.warnings.join('\n');
    if (warnings !== this.lastWarnings) for (const w of desired.warnings) this.log.warn({}, w);
    this.lastWarnings = warnings;
    if (!force && this.lastApplied && sameDesired(desired, this.lastApplied)) return 0;
    let actual: ActualState;
    try {
      actual = {
        links: this.dp.listLinks(),
        ...(manage ? { policies: this.dp.listPolicies(), dscp: this.dp.listDscpPolicies() } : {}),
      };
    } catch (err) {
      this.lastApplied = undefined;
      this.log.error({ err }, 'could not read the datapath to reconcile');
      return 0;
    }
    const plan = planChanges(desired, actual);
    const failed = applyChanges(this.dp, plan, (change, err) => {
      this.writeErrors[tableOf(change)]++;
      this.log.error({ err, change }, 'datapath write failed');
    });
    if (plan.length > 0) this.log.info({ writes: plan.length, failed }, 'reconciled the datapath');
    this.releaseNeighbours(linksLeft(actual, desired));
    this.lastApplied = failed === 0 && manage ? desired : undefined;
    return plan.length;
  }

  /**
   * Internet links are chosen before routing: new connections of each mark-mode class go to
   * the link its policy chose (the class rules), and when a link dies its connections — bound to
   * its address, unable to move — are reset at once, so applications reconnect over another
   * link instead of waiting out their timeouts. A link that changes state gets its routes again.
   */
  private reconcileInternet(links: readonly LinkInput[], desired: DesiredState, manage: boolean): void {
    const routing = this.routing;
    if (!routing) return;
    // Until the policies are in, the class rules a previous agent left stay as they are.
    if (manage) {
      try {
        routing.setClasses(desired.classes);
      } catch (err) {
        this.writeErrors.classes++;
        this.log.error({ err }, 'could not write the class rules of internet links');
      }
    }
    for (const l of links) {
      if (!l.internet) continue;
      const now = usable(l);
      const before = this.internetUsable.get(l.id);
      this.internetUsable.set(l.id, now);
      if (before === true && !now) this.resetConnections(routing, l);
      // Its route may be what failed (someone flushed the table; the interface went away and
      // came back): put it back on either change. Replacing an intact route is a no-op.
      if (before !== undefined && before !== now) {
        try {
          routing.refreshLink(l.id);
        } catch (err) {
          this.log.warn({ err, link: l.name }, 'could not put the internet link\'s routes back');
        }
      }
    }
  }

  private resetConnections(routing: InternetRoutingPort, l: LinkInput): void {
    try {
      const n = routing.resetConnections(l.id);
      this.connectionResets.set(l.name, (this.connectionResets.get(l.name) ?? 0) + n);
      this.log.warn({ link: l.name, connections: n }, `internet link ${l.name} is down: its connections were reset, so applications reconnect over another link`);
    } catch (err) {
      this.writeErrors.classes++;
      this.log.error({ err, link: l.name }, 'could not reset the connections of a dead internet link');
    }
  }

  /**
   * Right after the write that moved traffic off these links: delete their unresolved neighbour
   * entries (all but permanent ones when the carrier is gone). Packets the program redirected
   * there just before the write may wait on such an entry for seconds, and TCP will not resend a
   * segment still queued in the host; deleted, they are freed and resent on the new path now.
   */
  private releaseNeighbours(left: readonly { id: number; ifindex: number }[]): void {
    for (const { id, ifindex } of left) {
      const link = this.linkList[id];
      const scope = link?.carrier === false ? 'all' : 'unresolved';
      try {
        const deleted = this.dp.flushNeighbours(ifindex, scope);
        if (deleted > 0) this.log.info({ link: link?.name ?? id, ifindex, scope, deleted }, 'traffic moved off the link: its neighbour entries deleted, packets parked on them freed');
      } catch (err) {
        this.writeErrors.neighbours++;
        this.log.error({ err, link: link?.name ?? id, ifindex }, 'could not delete the neighbour entries of a link traffic moved off');
      }
    }
  }

  /**
   * A policy's traffic moved to another link (or to its original path when none is usable):
   * counted and logged with the reason. Failover: to a link later in its preference (or to no
   * link); failback: to an earlier one. Policy edits are not counted (their runtime is new).
   */
  private noteLinkChange(p: PolicyRuntime, before: PolicyChoice, after: PolicyChoice): void {
    const prefs = p.spec.action.links;
    const rank = (link: string | undefined) => (link === undefined ? prefs.length : prefs.indexOf(link));
    const kind: LinkChangeKind = rank(after.link) > rank(before.link) ? 'failover' : 'failback';
    const key = `${p.name}\u0000${kind}`;
    this.linkChangeCounts.set(key, (this.linkChangeCounts.get(key) ?? 0) + 1);
    const left = before.link !== undefined ? this.linkByName.get(before.link) : undefined;
    const why = left && !usable(linkInput(left)) ? (left.healthReason ?? left.interfaceProblem ?? 'down') : after.reason;
    this.log.warn(
      { policy: p.name, kind, from: before.link ?? 'original path', to: after.link ?? 'original path', reason: why, choice: after.reason },
      `${kind}: policy ${p.name} moved from ${before.link ?? 'its original path'} to ${after.link ?? 'its original path'}`,
    );
  }

  /** Failovers and failbacks per policy since start (read by the metrics at scrape time). */
  linkChanges(): { policy: string; kind: LinkChangeKind; count: number }[] {
    return [...this.linkChangeCounts].map(([key, count]) => {
      const [policy, kind] = key.split('\u0000') as [string, LinkChangeKind];
      return { policy, kind, count };
    });
  }

  // ---- sessions --------------------------------------------------------------------------

  /**
   * Classify and steer a batch. All flows of the batch go to the datapath in one batched
   * write. `receivedAtNs` (the engine's clock) is when the intake got the reports; the
   * report-to-datapath latency is measured from it (default: now).
   */
  reportSessions(reports: readonly SessionReport[], caller: string, receivedAtNs?: bigint): SessionOutcome[] {
    const t0 = receivedAtNs ?? this.clock();
    const n = reports.length;
    const outcomes = new Array<SessionOutcome>(n);
    if (!this.started || this.stopped) {
      for (let i = 0; i < n; i++) outcomes[i] = this.reject('datapath-error', 'the steering engine is not running');
      return outcomes;
    }
    const who = this.callers.caller(caller);
    const s = this.scratch;
    const entries: { key: FlowView; policyId: number }[] = [];
    const slots: number[] = [];
    const owners: PolicyRuntime[] = [];
    for (let i = 0; i < n; i++) {
      const report = reports[i]!;
      let answer: PolicyRuntime | Unmatched;
      try {
        const problem = parseSession(report, s) ?? spoofProblem(who, s);
        if (problem) {
          outcomes[i] = this.reject(problem.reason, problem.message);
          continue;
        }
        answer = this.classify(report.request);
      } catch (err) {
        outcomes[i] = this.reject('bad-address', `the report could not be read: ${(err as Error).message}`);
        continue;
      }
      if ('status' in answer) {
        this.sessions.countUnmatched(answer.reason);
        outcomes[i] = answer;
        continue;
      }
      const flow: FlowView = {
        protocol: s.protocol, src: s.local.ip, sport: s.local.port, dst: s.remote.ip, dport: s.remote.port, policy: answer.name,
      };
      entries.push({ key: flow, policyId: answer.id! });
      slots.push(i);
      owners.push(answer);
    }
    if (entries.length > 0) this.writeFlows(entries, slots, owners, outcomes, t0);
    return outcomes;
  }

  private writeFlows(
    entries: { key: FlowView; policyId: number }[], slots: number[], owners: PolicyRuntime[], outcomes: SessionOutcome[], t0: bigint,
  ): void {
    let failedAt: Set<number> | undefined;
    try {
      this.dp.upsertFlows(entries);
    } catch (err) {
      // Retry one by one, so one bad entry (or a transient error) does not sink the batch.
      this.log.warn({ err, entries: entries.length }, 'batched flow write failed: writing one by one');
      failedAt = new Set();
      for (let k = 0; k < entries.length; k++) {
        try {
          this.dp.upsertFlow(entries[k]!.key, entries[k]!.policyId);
        } catch (err2) {
          this.writeErrors.flows++;
          failedAt.add(k);
          this.log.error({ err: err2, flow: entries[k]!.key }, 'flow write failed');
        }
      }
    }
    let written = 0;
    for (let k = 0; k < entries.length; k++) {
      if (failedAt?.has(k)) {
        outcomes[slots[k]!] = this.reject('datapath-error', 'the datapath did not take the flow');
        continue;
      }
      const p = owners[k]!;
      p.counts.hits++;
      written++;
      outcomes[slots[k]!] = { status: 'steered', policy: p.name, link: p.choice?.link, dscp: p.choice?.dscp, flow: entries[k]!.key };
    }
    this.sessions.steered += written;
    if (written > 0) this.latency.record(Number(this.clock() - t0) / 1e9, written);
  }

  private reject(reason: RejectReason, message: string): SessionOutcome {
    this.sessions.countRejected(reason);
    return { status: 'rejected', reason, message };
  }

  private classify(q: SessionRequest): PolicyRuntime | Unmatched {
    // Without the rules or the policies every answer would be a wrong "no-virtual-service" or "no-policy".
    if (!this.routesSynced || !this.policiesSynced) return NOT_READY;
    const request = routeRequest(q);
    // The route the proxy matched, when it says (outbound and gateway placements), else ours.
    const res = (q.routeName ? classifyByRouteName(this.table, request, q.routeName) : undefined) ?? classifyRequest(this.table, request);
    if (!res.matched) return res.reason === 'no-route' ? NO_ROUTE : NO_VIRTUAL_SERVICE;
    return this.policies.resolve(res);
  }

  /** What a session with this request would get, and why, without writing anything. */
  explainSession(request: SessionRequest & { port?: number }): SessionExplanation {
    const route = explainRequest(this.table, { ...routeRequest(request), ...(request.port !== undefined ? { port: request.port } : {}) });
    return explainOutcome(route, (m) => this.policies.resolve(m));
  }

  // ---- views (views.ts) ------------------------------------------------------------------

  links(): LinkStatus[] {
    return linkStatuses(this.linkList, this.policies.values());
  }

  /** Flow table fill for status: a walk of the tables at most every STATUS_TABLE_WALK_MS. */
  flowTables(): FlowTableFill[] {
    return this.dp.flowTables(STATUS_TABLE_WALK_MS);
  }

  policyStatus(): PolicyStatus[] {
    return policyStatuses(this.policies.values());
  }

  /** A page of the steered flows (views.ts flowPage): the cost is the page's, not the table's. */
  flows(filter: FlowFilter = {}): FlowViewPage {
    return flowPage(this.dp, this.policies.ids, this.policies.values(), filter, this.clock());
  }

  // ---- stats (read by src/metrics at scrape time) ---------------------------------------

  policyCounts(): ReadonlyMap<string, PolicyCounts> {
    return this.policies.policyCounts();
  }

  linkNames(): ReadonlyMap<number, string> {
    return new Map(this.linkList.map((l) => [l.id, l.name]));
  }

  policyNames(): ReadonlyMap<number, string> {
    return this.policies.names();
  }
}

function routeRequest(q: SessionRequest): RouteRequest {
  return {
    host: q.authority,
    path: q.path,
    method: q.method,
    scheme: q.scheme,
    headers: q.headers,
    sourceNamespace: q.sourceNamespace,
    sourceLabels: q.sourceLabels,
    gateway: q.gateway,
  };
}
