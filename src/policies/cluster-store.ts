/**
 * ClusterPolicyStore: policies as WanPolicy custom resources, so every edge node sees the same
 * ones. Reads come from an informer's cache; writes go to the Kubernetes API, compare-and-swap
 * on metadata.resourceVersion (the version), and show in list() as soon as the API answers.
 *
 * policies/ may not import k8s/ (DESIGN.md), so the store is written against two ports that
 * src/k8s/wan-policy-store.ts fills with client-node: a writer and an informer.
 *
 * Objects written by others (kubectl, another node) are validated on the way in; an invalid one
 * is logged and left out, never stopping the rest. Links this node lacks are kept (other nodes
 * may have them; the steering engine skips them here) with a warning. Two objects that take the
 * same sessions: the older one wins (creationTimestamp, then name), the other is left out.
 */
import { silentLogger, type Logger } from '../routes/logger.js';
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

/** Why the API refused a write, as the writer port reports it. */
export type ClusterWriteFailure = 'exists' | 'conflict' | 'not-found' | 'invalid' | 'forbidden' | 'unavailable';

export class ClusterWriteError extends Error {
  constructor(readonly failure: ClusterWriteFailure, message: string) {
    super(message);
    this.name = 'ClusterWriteError';
  }
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
}

export interface ClusterPolicyStoreOptions {
  readonly namespace: string;
  readonly links: Iterable<string>;
  /** Those of the links that are internet links: what they cannot carry is refused (checkLinkKinds). */
  readonly internetLinks?: Iterable<string>;
  readonly writer: WanPolicyWriter;
  /** Builds the informer that feeds `events`; the store starts and stops it. */
  readonly informer: (events: WanPolicyEvents) => WanPolicyInformer;
  readonly logger?: Logger;
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
  private synced = false;
  /** Objects changed since the accepted policies were last derived. */
  private dirty = false;

  constructor(private readonly options: ClusterPolicyStoreOptions) {
    this.namespace = options.namespace;
    this.links = new Set(options.links);
    this.internetLinks = new Set(options.internetLinks ?? []);
    this.logger = options.logger ?? silentLogger;
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

  async replace(name: string, spec: WanPolicySpec, ifMatch?: string): Promise<WanPolicy> {
    this.checkWritable();
    checkPolicyName(name);
    const valid = validatePolicy(name, spec, { links: this.links, internetLinks: this.internetLinks, others: this.list() });
    const object = wanPolicyObject(this.namespace, name, valid, this.objects.get(name));
    // The API server is the judge of If-Match: our cache may lag behind it.
    if (ifMatch !== undefined) object.metadata.resourceVersion = ifMatch;
    const replaced = await this.call(name, ifMatch, () => this.options.writer.replace(object));
    return this.afterWrite(replaced, valid);
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

  async close(): Promise<void> {
    await this.informer.stop();
  }

  private checkWritable(): void {
    // Without a full list, duplicate matches cannot be ruled out.
    if (!this.synced) throw new PolicyStoreUnavailableError(`WanPolicies in ${this.namespace} are not listed yet (is the API server reachable?)`);
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
  }

  /**
   * An object came or went: the accepted policies are re-derived once the current burst of
   * events is over (a list is one add per object, all in one turn), or at the next read.
   * Re-deriving after every event made a first list of 4096 WanPolicies cost seconds.
   */
  private changed(): void {
    if (this.dirty) return;
    this.dirty = true;
    queueMicrotask(() => this.settle());
  }

  private settle(): void {
    if (!this.dirty) return;
    this.dirty = false;
    this.recompute();
  }

  /** Re-derives the accepted policies from all objects; notifies when they changed. */
  private recompute(): void {
    const next = new Map<string, WanPolicy>();
    const claims = new MatchIndex<WanPolicy>();
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
      this.reportOnce(object, 'warn', `WanPolicy ${this.namespace}/${name} (resourceVersion ${resourceVersion}) is left out: ${err.code}: ${err.message}`);
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

  private reportOnce(object: WanPolicyObject, level: 'info' | 'warn', message: string): void {
    const key = `${level}:${object.metadata.name}@${object.metadata.resourceVersion ?? ''}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.logger[level]({ policy: object.metadata.name, namespace: this.namespace }, message);
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
