/**
 * ClusterPolicyStore: policies as WanPolicy custom resources, so every edge node sees the same
 * ones. Reads come from an informer's cache; writes go to the Kubernetes API, compare-and-swap
 * on metadata.resourceVersion (the version), and show in list() as soon as the API answers.
 *
 * policies/ may not import k8s/ (docs/architecture.md), so the store is written against two ports that
 * src/k8s/wan-policy-store.ts fills with client-node: a writer and an informer.
 *
 * Objects written by others (kubectl, another node) are validated on the way in; an invalid one
 * is left out, never stopping the rest, and said where operators look: a log line, refused()
 * (for `wansteer status` and a metric by reason) and, through the optional recorder, a
 * Kubernetes Event on the object. Links this node lacks are kept (other nodes may have them;
 * the steering engine skips them here) with a warning. Two objects that take the same
 * sessions: the older one wins (creationTimestamp, then name), the other is left out.
 *
 * Bursts cost what they change: events mark the store dirty, and the accepted policies are
 * re-derived (and subscribers told) once per burst, as RouteTableFeed does for route tables —
 * on the next timer turn, and at least twice the last derivation's time after the previous one,
 * so a stream of 2000 watch events is a handful of derivations, not 2000. A read in between
 * (list, get, a REST write) derives at once, so it never sees an old picture.
 */
import { silentLogger, type Logger } from '../base/logger.js';
import {
  PolicyConflictError,
  PolicyError,
  PolicyExistsError,
  PolicyForbiddenError,
  PolicyInvalidError,
  PolicyNotFoundError,
  PolicyStoreUnavailableError,
} from './errors.js';
import type { WanPolicy, WanPolicySpec } from './model.js';
import type { PolicyStore } from './store.js';
import { Subscribers, type PolicyListener } from './subscribers.js';
import { checkLinkKinds, checkPolicyItself, checkPolicyName, MatchIndex, validatePolicy } from './validate.js';
import { toWanPolicy, wanPolicyObject, type WanPolicyObject } from './wan-policy-object.js';
import { WansteerError } from '../base/errors.js';

/** Why the API refused a write, as the writer port reports it. */
export type ClusterWriteFailure = 'exists' | 'conflict' | 'not-found' | 'invalid' | 'forbidden' | 'unavailable';

/** The writer port's failure; the store answers it as a PolicyError. */
export class ClusterWriteError extends WansteerError {
  readonly code = 'WS_K8S_WRITE_FAILED';
  constructor(readonly failure: ClusterWriteFailure, message: string) {
    super(message);
    this.name = 'ClusterWriteError';
  }
}

/** An object left out, and why. */
export interface RefusedPolicy {
  readonly name: string;
  readonly resourceVersion: string;
  /** The WS_POLICY_* code. */
  readonly code: string;
  readonly message: string;
}

/** Tells the cluster that this node leaves an object out (a Kubernetes Event on it); never throws. */
export interface RefusalRecorder {
  refused(object: WanPolicyObject, refusal: RefusedPolicy): void;
}

/** Why the informer cannot list or watch now (the shape of k8s/list-watch.ts's status). */
export interface InformerProblem {
  /** `forbidden`, `unauthorized`, `unreachable`, … (k8s/errors.ts SourceFailure). */
  readonly failure: string;
  readonly message: string;
}

/** Writes to the API server; fails with ClusterWriteError. */
export interface WanPolicyWriter {
  create(object: WanPolicyObject): Promise<WanPolicyObject>;
  /** `object.metadata.resourceVersion`, when set, is the precondition (409 when stale). */
  replace(object: WanPolicyObject): Promise<WanPolicyObject>;
  delete(namespace: string, name: string, resourceVersion: string | undefined): Promise<void>;
}

/** The informer's callbacks (the shape of k8s/list-watch.ts's ListWatchHandler). */
export interface WanPolicyEvents {
  onAdd(object: WanPolicyObject): void;
  onUpdate(object: WanPolicyObject, previous: WanPolicyObject): void;
  onDelete(object: WanPolicyObject): void;
  onSynced?(): void;
}

export interface WanPolicyInformer {
  start(): void;
  stop(): Promise<void>;
  whenSynced(): Promise<void>;
  /** Why it fails now, if it does. */
  problem?(): InformerProblem | undefined;
}

export interface ClusterPolicyStoreOptions {
  readonly namespace: string;
  readonly links: Iterable<string>;
  /** Those of the links that are internet links: what they cannot carry is refused (checkLinkKinds). */
  readonly internetLinks?: Iterable<string>;
  readonly writer: WanPolicyWriter;
  /** Builds the informer that feeds `events`; the store starts and stops it. */
  readonly informer: (events: WanPolicyEvents) => WanPolicyInformer;
  readonly recorder?: RefusalRecorder;
  readonly logger?: Logger;
  /** Least time between two derivations in a stream of events, in ms. Default 20. */
  readonly minGapMs?: number;
  /** How long a write with `If-Match: *` waits for the watch to bring a newer version after a conflict. Default 5000. */
  readonly conflictWaitMs?: number;
  readonly now?: () => number;
}

export class ClusterPolicyStore implements PolicyStore {
  private readonly namespace: string;
  private readonly links: ReadonlySet<string>;
  private readonly internetLinks: ReadonlySet<string>;
  private readonly logger: Logger;
  private readonly subscribers: Subscribers;
  private readonly informer: WanPolicyInformer;
  /** Every object in the namespace, valid or not, by name. */
  private readonly objects = new Map<string, WanPolicyObject>();
  /** Names deleted through this store, with the last version seen: stale events must not revive them. */
  private readonly deleted = new Map<string, string>();
  /** The objects that passed validation, as policies. */
  private accepted = new Map<string, WanPolicy>();
  /** Each object's own checks (name, schema, meaning), done once: a spec, or why it is refused. */
  private readonly checked = new WeakMap<WanPolicyObject, WanPolicySpec | PolicyError>();
  /** resourceVersions already reported as invalid, so a relist does not repeat the warning. */
  private readonly reported = new Set<string>();
  /** The objects left out by the last derivation. */
  private refusals = new Map<string, RefusedPolicy>();
  private synced = false;
  /** Objects changed since the accepted policies were last derived. */
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private lastDeriveAt = -Infinity;
  private lastDeriveMs = 0;
  /** Writers waiting for the watch to bring a newer version of a name (If-Match: * after a conflict). */
  private readonly versionWaiters = new Map<string, Set<() => void>>();
  private readonly now: () => number;

  constructor(private readonly options: ClusterPolicyStoreOptions) {
    this.namespace = options.namespace;
    this.links = new Set(options.links);
    this.internetLinks = new Set(options.internetLinks ?? []);
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? (() => performance.now());
    this.subscribers = new Subscribers(this.logger);
    this.informer = options.informer({
      onAdd: (object) => this.observe(object),
      onUpdate: (object) => this.observe(object),
      onDelete: (object) => this.forget(object.metadata.name, object.metadata.resourceVersion),
      onSynced: () => {
        this.synced = true;
      },
    });
    this.informer.start();
  }

  async ready(): Promise<void> {
    await this.informer.whenSynced();
    this.synced = true;
  }

  list(): WanPolicy[] {
    this.settle();
    return [...this.accepted.values()];
  }

  get(name: string): WanPolicy | undefined {
    this.settle();
    return this.accepted.get(name);
  }

  async create(name: string, spec: WanPolicySpec): Promise<WanPolicy> {
    this.checkWritable();
    if (this.objects.has(name)) throw new PolicyExistsError(name);
    const valid = validatePolicy(name, spec, { links: this.links, internetLinks: this.internetLinks, others: this.list() });
    const created = await this.call(name, undefined, () => this.options.writer.create(wanPolicyObject(this.namespace, name, valid)));
    return this.afterWrite(created, valid);
  }

  /**
   * Without `ifMatch` (REST `If-Match: *`) the replace overwrites whatever version is current.
   * A custom resource cannot be updated without a resourceVersion (422), so the cached one is
   * sent; when the cache lagged (409), the write waits for the watch to bring the newer
   * version and tries again, a few times.
   */
  async replace(name: string, spec: WanPolicySpec, ifMatch?: string): Promise<WanPolicy> {
    this.checkWritable();
    checkPolicyName(name);
    const valid = validatePolicy(name, spec, { links: this.links, internetLinks: this.internetLinks, others: this.list() });
    for (let attempt = 1; ; attempt++) {
      const current = this.objects.get(name);
      if (ifMatch === undefined && !current) throw new PolicyNotFoundError(name);
      const object = wanPolicyObject(this.namespace, name, valid, current);
      // The API server is the judge of If-Match: our cache may lag behind it.
      object.metadata.resourceVersion = ifMatch ?? current!.metadata.resourceVersion;
      try {
        const replaced = await this.call(name, ifMatch, () => this.options.writer.replace(object));
        return this.afterWrite(replaced, valid);
      } catch (err) {
        const lagged = ifMatch === undefined && err instanceof PolicyConflictError && attempt < 4;
        if (!lagged) throw err;
        await this.newerThan(name, object.metadata.resourceVersion ?? '', this.options.conflictWaitMs ?? 5000);
      }
    }
  }

  async delete(name: string, ifMatch?: string): Promise<void> {
    this.checkWritable();
    checkPolicyName(name);
    await this.call(name, ifMatch, () => this.options.writer.delete(this.namespace, name, ifMatch));
    this.forget(name);
  }

  subscribe(listener: PolicyListener): () => void {
    return this.subscribers.add(listener);
  }

  /** The objects in the namespace left out now, and why (each also logged once, and recorded as an Event). */
  refused(): RefusedPolicy[] {
    this.settle();
    return [...this.refusals.values()];
  }

  /** Why the informer cannot list or watch now (`forbidden: …`), if it cannot. */
  problem(): InformerProblem | undefined {
    return this.informer.problem?.();
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.informer.stop();
  }

  private checkWritable(): void {
    if (this.synced) return;
    // Without a full list, duplicate matches cannot be ruled out. Say why there is none: a
    // refusal (RBAC, credentials) is not a server out of reach.
    const problem = this.problem();
    const why = `WanPolicies in ${this.namespace} are not listed yet`;
    if (problem && (problem.failure === 'forbidden' || problem.failure === 'unauthorized')) {
      throw new PolicyForbiddenError(`${why}: the API server refused: ${problem.message} (check the agent's RBAC on wanpolicies.wansteer.io)`);
    }
    throw new PolicyStoreUnavailableError(problem ? `${why}: ${problem.message}` : `${why}: the API server has not answered yet`);
  }

  /** Resolves when the watch brings a version of `name` newer than `version` (or it goes), or after `timeoutMs`. */
  private newerThan(name: string, version: string, timeoutMs: number): Promise<void> {
    const held = this.objects.get(name)?.metadata.resourceVersion;
    if (held === undefined || isNewer(held, version)) return Promise.resolve();
    return new Promise((resolve) => {
      let waiters = this.versionWaiters.get(name);
      if (!waiters) this.versionWaiters.set(name, (waiters = new Set()));
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0 && this.versionWaiters.get(name) === waiters) this.versionWaiters.delete(name);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      waiters.add(done);
    });
  }

  private wake(name: string): void {
    for (const done of [...(this.versionWaiters.get(name) ?? [])]) done();
  }

  /** Runs one API write, turning the writer's failure into the store's error. */
  private async call<T>(name: string, ifMatch: string | undefined, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      if (!(err instanceof ClusterWriteError)) throw err;
      throw this.errorFor(err, name, ifMatch);
    }
  }

  private errorFor(err: ClusterWriteError, name: string, ifMatch: string | undefined): PolicyError {
    switch (err.failure) {
      case 'exists':
        return new PolicyExistsError(name);
      case 'conflict':
        return new PolicyConflictError(name, ifMatch ?? '(none)', this.objects.get(name)?.metadata.resourceVersion ?? 'newer');
      case 'not-found':
        return new PolicyNotFoundError(name);
      case 'invalid':
        return new PolicyInvalidError(`the API server refused it: ${err.message}`, 'correct the field it names').atField('spec');
      case 'forbidden':
        return new PolicyForbiddenError(`${err.message} (check the agent's RBAC on wanpolicies.wansteer.io)`);
      case 'unavailable':
        return new PolicyStoreUnavailableError(err.message);
    }
  }

  private afterWrite(object: WanPolicyObject, spec: WanPolicySpec): WanPolicy {
    this.observe(object);
    return this.get(object.metadata.name) ?? toWanPolicy(object, spec);
  }

  /** Takes an object from the informer or a write answer, unless it is older than what we hold. */
  private observe(object: WanPolicyObject): void {
    const name = object.metadata.name;
    const version = object.metadata.resourceVersion ?? '';
    const held = this.objects.get(name)?.metadata.resourceVersion ?? this.deleted.get(name);
    if (held !== undefined && !isNewer(version, held)) return;
    this.deleted.delete(name);
    this.objects.set(name, object);
    this.changed();
    this.wake(name);
  }

  /** Drops a deleted object; with `version` (a watch event), only if the event is not older than what we hold. */
  private forget(name: string, version?: string): void {
    const held = this.objects.get(name);
    if (!held) return;
    // A late DELETED for an earlier incarnation must not remove one created since.
    if (version !== undefined && held.metadata.resourceVersion !== undefined && isNewer(held.metadata.resourceVersion, version)) return;
    this.deleted.set(name, held.metadata.resourceVersion ?? '');
    this.objects.delete(name);
    this.changed();
    this.wake(name);
  }

  /**
   * An object came or went: the accepted policies are re-derived once the current burst of
   * events is over, or at the next read. Re-deriving after every event made a first list of
   * 4096 WanPolicies cost seconds, and a stream of 1000 new ones block the event loop 8 s.
   */
  private changed(): void {
    if (this.dirty) return;
    this.dirty = true;
    const gap = Math.max(this.options.minGapMs ?? 20, 2 * this.lastDeriveMs);
    const wait = Math.max(0, this.lastDeriveAt + gap - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.settle();
    }, wait);
    this.timer.unref();
  }

  private settle(): void {
    if (!this.dirty) return;
    this.dirty = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const t0 = this.now();
    this.recompute();
    this.lastDeriveAt = this.now();
    this.lastDeriveMs = this.lastDeriveAt - t0;
  }

  /** Re-derives the accepted policies from all objects; notifies when they changed. */
  private recompute(): void {
    const next = new Map<string, WanPolicy>();
    const claims = new MatchIndex<WanPolicy>();
    this.refusals = new Map();
    for (const object of [...this.objects.values()].sort(byAge)) {
      const policy = this.accept(object, claims);
      if (policy) {
        next.set(policy.name, policy);
        claims.add(policy);
      }
    }
    const changed = next.size !== this.accepted.size || [...next].some(([name, p]) => this.accepted.get(name)?.version !== p.version);
    this.accepted = next;
    if (changed) this.subscribers.notify(this.list());
  }

  private accept(object: WanPolicyObject, claims: MatchIndex<WanPolicy>): WanPolicy | undefined {
    const { name, resourceVersion = '' } = object.metadata;
    try {
      const spec = this.specOf(object);
      const duplicate = claims.duplicateOf(name, spec);
      if (duplicate) throw duplicate;
      checkLinkKinds(spec, this.internetLinks);
      const unknown = spec.action.links.filter((l) => !this.links.has(l));
      if (unknown.length > 0) this.reportOnce(object, 'info', `links ${unknown.join(', ')} are not configured on this node; it uses the others`);
      return toWanPolicy(object, spec);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      const refusal: RefusedPolicy = { name, resourceVersion, code: err.code, message: err.message };
      this.refusals.set(name, refusal);
      const first = this.reportOnce(object, 'warn', `WanPolicy ${this.namespace}/${name} (resourceVersion ${resourceVersion}) is left out: ${err.code}: ${err.message}`);
      if (first) this.options.recorder?.refused(object, refusal);
      return undefined;
    }
  }

  /**
   * The object's name and spec checked once per object, not on every recompute (each change
   * re-derives all policies; the schema check is most of that). Objects are replaced, never
   * changed in place, so the object itself is the key.
   */
  private specOf(object: WanPolicyObject): WanPolicySpec {
    let checked = this.checked.get(object);
    if (!checked) {
      try {
        checked = checkPolicyItself(object.metadata.name, object.spec);
      } catch (err) {
        if (!(err instanceof PolicyError)) throw err;
        checked = err;
      }
      this.checked.set(object, checked);
    }
    if (checked instanceof PolicyError) throw checked;
    return checked;
  }

  /** Logs `message` once per object version; true the first time. */
  private reportOnce(object: WanPolicyObject, level: 'info' | 'warn', message: string): boolean {
    const key = `${level}:${object.metadata.name}@${object.metadata.resourceVersion ?? ''}`;
    if (this.reported.has(key)) return false;
    this.reported.add(key);
    this.logger[level]({ policy: object.metadata.name, namespace: this.namespace }, message);
    return true;
  }
}

/**
 * Kubernetes asks clients to treat resourceVersions as opaque, but every API server gives etcd
 * revisions (integers); comparing them is the only way to drop a watch event older than a write's
 * answer. Anything not numeric is taken as newer.
 */
function isNewer(candidate: string, held: string): boolean {
  if (!/^[0-9]+$/.test(candidate) || !/^[0-9]+$/.test(held)) return candidate !== held;
  return BigInt(candidate) > BigInt(held);
}

function byAge(a: WanPolicyObject, b: WanPolicyObject): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  return ta === tb ? a.metadata.name.localeCompare(b.metadata.name) : ta < tb ? -1 : 1;
}
