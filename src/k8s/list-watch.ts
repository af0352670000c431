/**
 * The list/watch loop every informer here runs, independent of the resource: list (paged) to get
 * a full picture and a resourceVersion, then watch from that version; resume from the last seen
 * version when a watch ends, relist when the version has expired (410 Gone), back off on errors.
 * It keeps its own cache of objects, so a relist turns into adds, updates and deletes for the
 * handler. Clock and sleep are options, so tests drive time.
 */
import { silentLogger, type Logger } from '../base/logger.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import {
  apiMessageOf, failureOf, httpStatusOf, isExpired, isRefusal, ListFailedError, WatchFailedError, type SourceFailure,
} from './errors.js';

export interface KubeObject {
  readonly metadata?: { readonly name?: string; readonly namespace?: string; readonly resourceVersion?: string };
}

export interface ListPage<T> {
  readonly items: readonly T[];
  readonly resourceVersion: string;
  readonly continueToken?: string | undefined;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchHandle {
  abort(): void;
}

/** How a ListWatch reaches one resource (one version, one namespace or all). */
export interface ResourceClient<T> {
  /** What the resource is, for messages: `virtualservices.networking.istio.io in shop`. */
  readonly description: string;
  list(options: { limit: number; continueToken?: string | undefined }): Promise<ListPage<T>>;
  /** Starts a watch; `onDone` is called exactly once, with an error unless the server ended it cleanly. */
  watch(
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: unknown) => void,
    onDone: (err: unknown) => void,
  ): Promise<WatchHandle>;
}

export interface ListWatchHandler<T> {
  onAdd(object: T): void;
  onUpdate(object: T, previous: T): void;
  onDelete(object: T): void;
  /** After each complete list: the cache now mirrors the server. */
  onSynced?(): void;
}

export interface ListWatchOptions {
  readonly now?: () => number;
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly backoff?: BackoffOptions;
  readonly pageSize?: number;
  /** A watch that ends sooner than this without error counts as a failure (no hot reconnect loop). */
  readonly minWatchMs?: number;
  readonly logger?: Logger;
  readonly onError?: (err: Error) => void;
}

export type ListWatchPhase = 'idle' | 'listing' | 'watching' | 'backing-off' | 'stopped';

export interface ListWatchStatus {
  readonly phase: ListWatchPhase;
  /** True once the first list completed; stays true through later reconnects (the cache is still good). */
  readonly synced: boolean;
  readonly resourceVersion: string;
  readonly lastSyncAt: number | undefined;
  /** Why the last list or watch failed, until one succeeds again (a list completes, a watch is established). */
  readonly lastError: string | undefined;
  readonly failure: SourceFailure | undefined;
  readonly relists: number;
}

export class ListWatch<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly stopper = new AbortController();
  private readonly backoff: Backoff;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly logger: Logger;
  private phase: ListWatchPhase = 'idle';
  private resourceVersion = '';
  private synced = false;
  private lastSyncAt: number | undefined;
  private lastError: string | undefined;
  private failure: SourceFailure | undefined;
  private relists = 0;
  private watchHandle: WatchHandle | undefined;
  private loop: Promise<void> | undefined;
  private readonly syncWaiters: (() => void)[] = [];

  constructor(
    private readonly client: ResourceClient<T>,
    private readonly handler: ListWatchHandler<T>,
    private readonly options: ListWatchOptions = {},
  ) {
    this.backoff = new Backoff(options.backoff);
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? abortableSleep;
    this.logger = options.logger ?? silentLogger;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopper.abort();
    this.watchHandle?.abort();
    await this.loop;
    this.phase = 'stopped';
  }

  /** Resolves after the first successful list. */
  whenSynced(): Promise<void> {
    return this.synced ? Promise.resolve() : new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  status(): ListWatchStatus {
    return {
      phase: this.phase,
      synced: this.synced,
      resourceVersion: this.resourceVersion,
      lastSyncAt: this.lastSyncAt,
      lastError: this.lastError,
      failure: this.failure,
      relists: this.relists,
    };
  }

  /** Why the last list or watch failed, until one succeeds again; undefined while all is well. */
  problem(): { readonly failure: SourceFailure; readonly message: string } | undefined {
    return this.failure !== undefined && this.lastError !== undefined ? { failure: this.failure, message: this.lastError } : undefined;
  }

  objects(): T[] {
    return [...this.cache.values()];
  }

  private get stopped(): boolean {
    return this.stopper.signal.aborted;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.resourceVersion === '') await this.relist();
        if (this.stopped) break;
        await this.watchOnce();
      } catch (err) {
        if (this.stopped) break;
        if (isExpired(err)) {
          // Our version fell out of the server's window: start over with a fresh list, no wait.
          this.logger.info({ resource: this.client.description }, 'resourceVersion expired (410 Gone), relisting');
          this.resourceVersion = '';
          continue;
        }
        this.fail(err);
        // A refused watch says only `Forbidden`; a list says who was refused what, and after a
        // change of credentials or RBAC a fresh picture is due anyway.
        if (isRefusal(err)) this.resourceVersion = '';
        this.phase = 'backing-off';
        await this.sleep(this.backoff.next(), this.stopper.signal).catch(() => undefined);
      }
    }
    this.phase = 'stopped';
  }

  private async relist(): Promise<void> {
    this.phase = 'listing';
    const items: T[] = [];
    let continueToken: string | undefined;
    let resourceVersion = '';
    do {
      let page: ListPage<T>;
      try {
        page = await this.client.list({ limit: this.options.pageSize ?? 500, continueToken });
      } catch (err) {
        throw isExpired(err) ? err : sourceError(ListFailedError, this.client.description, err);
      }
      for (const item of page.items) items.push(withoutManagedFields(item));
      continueToken = page.continueToken || undefined;
      resourceVersion = page.resourceVersion;
    } while (continueToken && !this.stopped);
    if (this.stopped) return;
    this.replace(items);
    this.resourceVersion = resourceVersion;
    this.relists++;
    this.lastSyncAt = this.now();
    this.healthy();
    this.backoff.reset();
    if (!this.synced) {
      this.synced = true;
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    }
    this.handler.onSynced?.();
  }

  /** Runs one watch until the server ends it, the connection drops, or the version expires. */
  private async watchOnce(): Promise<void> {
    this.phase = 'watching';
    const startedAt = this.now();
    let expired = false;
    let ended = false;
    let eventError: Error | undefined;
    let onStop = (): void => undefined;
    const done = new Promise<unknown>((resolve) => {
      // stop() must not wait for a watch still connecting: its handle arrives later and is aborted then.
      onStop = () => resolve(undefined);
      this.stopper.signal.addEventListener('abort', onStop, { once: true });
      void this.client
        .watch(
          this.resourceVersion,
          (type, object) => {
            if (expired || eventError) return;
            const outcome = this.apply(type, object);
            if (outcome === 'expired') expired = true;
            else if (outcome instanceof Error) eventError = outcome;
            if (expired || eventError) this.watchHandle?.abort();
          },
          (err) => {
            ended = true;
            resolve(err);
          },
        )
        .then((handle) => {
          this.watchHandle = handle;
          // The handle comes once the server has answered 200 (or after the watch already ended).
          if (!ended) this.healthy();
          // Events can arrive before the handle does; honour an abort they asked for.
          if (this.stopped || expired || eventError) handle.abort();
        }, resolve);
    });
    const err = await done;
    this.stopper.signal.removeEventListener('abort', onStop);
    this.watchHandle = undefined;
    if (this.stopped) return;
    if (expired) throw Object.assign(new Error('resourceVersion expired'), { code: 410 });
    if (eventError) throw eventError;
    if (err) throw isExpired(err) ? err : sourceError(WatchFailedError, this.client.description, err);
    if (this.now() - startedAt < (this.options.minWatchMs ?? 1000)) {
      throw new WatchFailedError(this.client.description, 'the server ended the watch at once');
    }
    this.backoff.reset();
  }

  private apply(type: WatchEventType, object: unknown): 'expired' | Error | undefined {
    if (type === 'ERROR') {
      const status = object as { code?: number; message?: string } | undefined;
      if (status?.code === 410) return 'expired';
      return new WatchFailedError(this.client.description, `server sent ERROR: ${status?.message ?? JSON.stringify(object)}`);
    }
    const obj = withoutManagedFields(object as T);
    const rv = obj?.metadata?.resourceVersion;
    if (type === 'BOOKMARK') {
      // A bookmark only moves our version forward, so a reconnect resumes from here.
      if (rv) this.resourceVersion = rv;
      return undefined;
    }
    const key = keyOf(obj);
    const previous = this.cache.get(key);
    if (type === 'DELETED') {
      if (previous) {
        this.cache.delete(key);
        this.handler.onDelete(obj);
      }
    } else if (previous) {
      this.cache.set(key, obj);
      if (previous.metadata?.resourceVersion !== rv) this.handler.onUpdate(obj, previous);
    } else {
      this.cache.set(key, obj);
      this.handler.onAdd(obj);
    }
    if (rv) this.resourceVersion = rv;
    return undefined;
  }

  /** Makes the cache equal to a fresh list, telling the handler what changed. */
  private replace(items: readonly T[]): void {
    const fresh = new Map(items.map((o) => [keyOf(o), o]));
    for (const [key, old] of this.cache) {
      if (!fresh.has(key)) {
        this.cache.delete(key);
        this.handler.onDelete(old);
      }
    }
    for (const [key, obj] of fresh) {
      const previous = this.cache.get(key);
      this.cache.set(key, obj);
      if (!previous) this.handler.onAdd(obj);
      else if (previous.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.handler.onUpdate(obj, previous);
    }
  }

  private fail(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.lastError = error.message;
    this.failure = (error as { failure?: SourceFailure }).failure ?? failureOf(error);
    const status = httpStatusOf(error);
    this.logger.warn(
      { resource: this.client.description, code: (error as { code?: unknown }).code, failure: this.failure, ...(status !== undefined ? { status } : {}) },
      error.message,
    );
    this.options.onError?.(error);
  }

  private healthy(): void {
    if (this.lastError !== undefined) this.logger.info({ resource: this.client.description }, `${this.client.description}: the API server answers again`);
    this.lastError = undefined;
    this.failure = undefined;
  }
}

/**
 * The object without metadata.managedFields (server-side apply's field ownership): nothing here
 * reads it, and it is often the larger part of a small object — dropped on the way in, as
 * client-go informers are told to, it is not held in the cache, the store and the snapshot.
 */
function withoutManagedFields<T>(object: T): T {
  const metadata = (object as { metadata?: { managedFields?: unknown } } | undefined)?.metadata;
  if (metadata && 'managedFields' in metadata) delete metadata.managedFields;
  return object;
}

export function keyOf(obj: KubeObject): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

/** A list or watch failure in the API server's words, keeping its status and kind for status and metrics. */
function sourceError(ErrorClass: typeof ListFailedError, description: string, err: unknown): Error {
  const status = httpStatusOf(err);
  return Object.assign(new ErrorClass(description, apiMessageOf(err)), { failure: failureOf(err), ...(status !== undefined ? { statusCode: status } : {}) });
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
