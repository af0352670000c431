/**
 * The engine's policy runtime: each WanPolicy as the engine holds it (its datapath id, its hit
 * counts, the link it is on now), the id file behind the ids, and the answer to "which policy
 * does this route match steer by?".
 *
 *   const runtime = new PolicyRuntimes(logger);
 *   const found = runtime.load(stateDir);              // the ids a previous agent assigned
 *   const removed = runtime.take(list, { blocking });  // id -> name of the policies gone
 *   runtime.resolve(routeMatch)                         // PolicyRuntime, or why none
 *
 * Ids are saved off the event loop a moment after they reach the datapath (policy-ids.ts says
 * why that is safe), never two saves at once; a burst of changes is one list, so one save.
 */
import type { Logger } from '../base/logger.js';
import type { WanPolicy, WanPolicySpec } from '../policies/model.js';
import type { RouteMatch } from '../routes/route-table.js';
import { PolicyIds, type PolicyIdsLoad } from './policy-ids.js';
import type { PolicyChoice } from './reconcile.js';
import type { PolicyCounts } from './stats.js';
import type { SessionOutcome } from './types.js';

/** A policy as the engine holds it. */
export interface PolicyRuntime {
  name: string;
  spec: WanPolicySpec;
  id: number | null;
  counts: PolicyCounts;
  /** The link and DSCP reconcile chose for it last. */
  choice?: PolicyChoice;
}

export type Unmatched = Extract<SessionOutcome, { status: 'unmatched' }>;

export class PolicyRuntimes {
  private idFile: PolicyIds | undefined;
  private byName = new Map<string, PolicyRuntime>();
  private readonly counts = new Map<string, PolicyCounts>();
  /** VirtualService key -> the policies that match its routes. */
  private byVirtualService = new Map<string, PolicyRuntime[]>();
  /** Route match -> answer, keyed by the identity of the frozen RouteMatch; cleared on any change. */
  private readonly resolved = new Map<RouteMatch, PolicyRuntime | Unmatched>();
  private saving: Promise<void> | undefined;
  private saveAgain = false;

  constructor(private readonly log: Logger) {}

  /** Read the id file a previous agent left (what it found says whether adopted flows can be trusted). */
  load(stateDir: string): PolicyIdsLoad {
    const { ids, found } = PolicyIds.load(stateDir);
    this.idFile = ids;
    return found;
  }

  /** The id file; present once loaded. */
  get ids(): PolicyIds | undefined {
    return this.idFile;
  }

  /** A policy of the list last taken. */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  values(): IterableIterator<PolicyRuntime> {
    return this.byName.values();
  }

  /** Hit counts per policy name (read by the metrics at scrape time). */
  policyCounts(): ReadonlyMap<string, PolicyCounts> {
    return this.counts;
  }

  /** Datapath id -> policy name, for the policies that have one. */
  names(): ReadonlyMap<number, string> {
    const out = new Map<number, string>();
    for (const p of this.byName.values()) if (p.id !== null) out.set(p.id, p.name);
    return out;
  }

  /**
   * Take the full policy list in: ids for new names (saved once for the whole list; `blocking`
   * at start, so a restart finds the file whatever comes next), runtimes rebuilt (an unchanged
   * policy keeps its own, with its current link). Returns the ids released (id -> name): the
   * caller deletes their flows.
   */
  take(list: readonly WanPolicy[], opts: { blocking: boolean }): Map<number, string> {
    const ids = this.idFile!;
    const names = new Set(list.map((p) => p.name));
    const removed = new Map<number, string>();
    for (const name of ids.names()) {
      if (!names.has(name)) removed.set(ids.release(name)!, name);
    }
    let assigned = false;
    const runtimes = new Map<string, PolicyRuntime>();
    for (const p of list) {
      const had = ids.get(p.name);
      const id = ids.assign(p.name);
      if (had === undefined && id !== null) assigned = true;
      if (id === null) this.log.error({ policy: p.name }, 'no free datapath policy id: the policy is not installed');
      const runtime = this.byName.get(p.name);
      if (runtime && runtime.spec === p.spec && runtime.id === id) {
        runtimes.set(p.name, runtime);
        continue;
      }
      let counts = this.counts.get(p.name);
      if (!counts) this.counts.set(p.name, (counts = { hits: 0 }));
      runtimes.set(p.name, { name: p.name, spec: p.spec, id, counts });
    }
    for (const name of removed.values()) this.counts.delete(name);
    if (assigned || removed.size > 0) {
      if (opts.blocking) this.saveNow();
      else this.save();
    }
    this.byName = runtimes;
    this.index();
    return removed;
  }

  /** The policy a route match steers by (memoised per RouteMatch object until clearResolved). */
  resolve(m: RouteMatch): PolicyRuntime | Unmatched {
    const known = this.resolved.get(m);
    if (known) return known;
    const vs = `${m.virtualService.namespace}/${m.virtualService.name}`;
    const route = m.routeName ?? String(m.routeIndex);
    let best: PolicyRuntime | undefined;
    let bestScore = -1;
    // Most specific wins: route name and index over the whole VirtualService; ties by name.
    for (const p of this.byVirtualService.get(vs) ?? []) {
      const r = (p.spec.match as { route: { route?: string; routeIndex?: number } }).route;
      if (r.route !== undefined && r.route !== m.routeName) continue;
      if (r.routeIndex !== undefined && r.routeIndex !== m.routeIndex) continue;
      const score = (r.route !== undefined ? 1 : 0) + (r.routeIndex !== undefined ? 1 : 0);
      if (score > bestScore || (score === bestScore && best !== undefined && p.name < best.name)) {
        best = p;
        bestScore = score;
      }
    }
    let answer: PolicyRuntime | Unmatched;
    if (!best) answer = Object.freeze({ status: 'unmatched', reason: 'no-policy', virtualService: vs, route }) as Unmatched;
    else if (best.id === null || !best.choice?.action) answer = Object.freeze({ status: 'unmatched', reason: 'no-usable-link', virtualService: vs, route }) as Unmatched;
    else answer = best;
    this.resolved.set(m, answer);
    return answer;
  }

  /** Forget the memoised answers (routes, policies or link choices changed). */
  clearResolved(): void {
    this.resolved.clear();
  }

  /** Resolves once the id file holds the ids in use now (the agent waits for it when it stops). */
  async saved(): Promise<void> {
    while (this.saving) await this.saving;
  }

  private index(): void {
    const index = new Map<string, PolicyRuntime[]>();
    for (const p of this.byName.values()) {
      const m = p.spec.match;
      if (!('route' in m)) continue;
      let list = index.get(m.route.virtualService);
      if (!list) index.set(m.route.virtualService, (list = []));
      list.push(p);
    }
    this.byVirtualService = index;
    this.resolved.clear();
  }

  private saveNow(): void {
    try {
      this.idFile!.save();
    } catch (err) {
      this.log.error({ err, file: this.idFile!.file }, 'could not save the policy id assignment');
    }
  }

  /** Starts a save of the id file, or asks for one more after the save in flight (never two at once). */
  private save(): void {
    if (this.saving) {
      this.saveAgain = true;
      return;
    }
    const ids = this.idFile!;
    this.saving = ids
      .saveAsync()
      .catch((err: unknown) => {
        // Steering goes on; a restart before the next good save drops the flows of new ids.
        this.log.error({ err, file: ids.file }, 'could not save the policy id assignment');
      })
      .finally(() => {
        this.saving = undefined;
        if (this.saveAgain) {
          this.saveAgain = false;
          this.save();
        }
      });
  }
}
