/**
 * FilePolicyStore: the standalone store, one YAML file (policy-file.ts) replaced atomically on
 * every write (atomic-write.ts), so a crash mid-write leaves the old or the new file, whole.
 *
 * The file is the truth: writes are serialized in one queue, and each write first re-reads the
 * file, so an edit made by hand a moment ago is built on rather than overwritten. Outside edits
 * are picked up by a watch; a broken one is logged with its reason, the last good state stays
 * in force, and API writes are refused (503) until the file is fixed, so nobody's hand edit is
 * silently replaced. Missing file at start: an empty store; the file and its directory are
 * created on the first write.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { silentLogger, type Logger } from '../base/logger.js';
import { removeStaleTempFiles, writeFileAtomic } from '../base/atomic-write.js';
import {
  PolicyConflictError,
  PolicyError,
  PolicyExistsError,
  PolicyNotFoundError,
  PolicyStoreUnavailableError,
} from './errors.js';
import { watchFile, type FileWatch, type FileWatchOptions } from './file-watch.js';
import type { WanPolicy, WanPolicySpec } from './model.js';
import { parsePolicyFile, renderPolicyFile, type PolicyFileContent } from './policy-file.js';
import { SerialQueue } from './serial-queue.js';
import type { PolicyStore } from './store.js';
import { Subscribers, type PolicyListener } from './subscribers.js';
import { checkPolicyName, validatePolicy } from './validate.js';

export interface FilePolicyStoreOptions {
  readonly path: string;
  /** Link names configured on this node: policies may only use these. */
  readonly links: Iterable<string>;
  /** Those of the links that are internet links: what they cannot carry is refused (checkLinkKinds). */
  readonly internetLinks?: Iterable<string>;
  readonly logger?: Logger;
  /** Watch for outside edits (default true); debounce, poll and timers for tests. */
  readonly watch?: boolean | FileWatchOptions;
}

export class FilePolicyStore implements PolicyStore {
  private readonly path: string;
  private readonly links: ReadonlySet<string>;
  private readonly internetLinks: ReadonlySet<string>;
  private readonly logger: Logger;
  private readonly queue = new SerialQueue();
  private readonly subscribers: Subscribers;
  private policies = new Map<string, WanPolicy>();
  /** The last version handed out; persisted as the file's `revision`. */
  private revision = 0;
  /** The file text the state was read from or written as; undefined: no file yet. */
  private text: string | undefined;
  /** Why the file on disk is not in force (a broken outside edit), if it is not. */
  private brokenReason: string | undefined;
  private watcher: FileWatch | undefined;
  private readonly started: Promise<void>;
  private closed = false;

  constructor(private readonly options: FilePolicyStoreOptions) {
    this.path = options.path;
    this.links = new Set(options.links);
    this.internetLinks = new Set(options.internetLinks ?? []);
    this.logger = options.logger ?? silentLogger;
    this.subscribers = new Subscribers(this.logger);
    this.started = this.queue.run(() => this.start());
    // ready() reports a failed start; this keeps it from being an unhandled rejection meanwhile.
    this.started.catch(() => undefined);
  }

  /** Rejects with PolicyFileInvalidError when the file at start is broken: there is no good state to keep. */
  ready(): Promise<void> {
    return this.started;
  }

  list(): WanPolicy[] {
    return [...this.policies.values()];
  }

  get(name: string): WanPolicy | undefined {
    return this.policies.get(name);
  }

  create(name: string, spec: WanPolicySpec): Promise<WanPolicy> {
    return this.write(name, (current) => {
      if (current) throw new PolicyExistsError(name);
      return spec;
    }) as Promise<WanPolicy>;
  }

  replace(name: string, spec: WanPolicySpec, ifMatch?: string): Promise<WanPolicy> {
    return this.write(name, (current) => {
      if (!current) throw new PolicyNotFoundError(name);
      checkVersion(current, ifMatch);
      return spec;
    }) as Promise<WanPolicy>;
  }

  async delete(name: string, ifMatch?: string): Promise<void> {
    await this.write(name, (current) => {
      if (!current) throw new PolicyNotFoundError(name);
      checkVersion(current, ifMatch);
      return undefined;
    });
  }

  subscribe(listener: PolicyListener): () => void {
    return this.subscribers.add(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    await this.queue.idle();
  }

  private async start(): Promise<void> {
    const removed = await removeStaleTempFiles(this.path);
    if (removed > 0) this.logger.info({ path: this.path, removed }, 'removed temp files an interrupted write left behind');
    const text = await this.readText();
    // No good state to fall back on: a broken file at start stops the agent, with the reason.
    if (text !== undefined) this.adopt(parsePolicyFile(text, this.path, this.links, this.internetLinks), text, false);
    if (this.options.watch === false) return;
    // The directory must exist to be watched; creating it early costs nothing.
    await mkdir(dirname(this.path), { recursive: true }).catch(() => undefined);
    const watchOptions = typeof this.options.watch === 'object' ? this.options.watch : {};
    this.watcher = watchFile(this.path, () => void this.queue.run(() => this.reload()), { logger: this.logger, ...watchOptions });
  }

  /** One serialized read-modify-write. `decide` returns the new spec, or undefined to delete. */
  private write(name: string, decide: (current: WanPolicy | undefined) => WanPolicySpec | undefined): Promise<WanPolicy | undefined> {
    return this.queue.run(async () => {
      await this.started;
      if (this.closed) throw new PolicyStoreUnavailableError('the store is closed');
      checkPolicyName(name);
      // Build on what the file holds now, not on what the last watch event showed.
      await this.reload();
      if (this.brokenReason) throw new PolicyStoreUnavailableError(`${this.brokenReason}; fix or revert the file, then retry`);
      const spec = decide(this.policies.get(name));
      const next = new Map(this.policies);
      let written: WanPolicy | undefined;
      if (spec === undefined) next.delete(name);
      else {
        const others = [...next.values()];
        written = { name, spec: validatePolicy(name, spec, { links: this.links, internetLinks: this.internetLinks, others }), version: String(this.revision + 1) };
        next.set(name, written);
      }
      const content: PolicyFileContent = {
        revision: this.revision + 1,
        items: [...next.values()].map((p) => ({ name: p.name, spec: p.spec, version: Number(p.version) })),
      };
      const text = renderPolicyFile(content);
      try {
        await writeFileAtomic(this.path, text);
      } catch (err) {
        throw new PolicyStoreUnavailableError(`cannot write ${this.path}: ${(err as Error).message}`);
      }
      this.revision = content.revision;
      this.policies = next;
      this.text = text;
      this.subscribers.notify(this.list());
      return written;
    });
  }

  /** Reads the file and adopts it if it changed and is valid; a broken file is logged and kept out. */
  private async reload(): Promise<void> {
    if (this.closed) return;
    let text: string | undefined;
    try {
      text = (await this.readText()) ?? '';
    } catch (err) {
      this.markBroken(`cannot read ${this.path}: ${(err as Error).message}`);
      return;
    }
    if (text === (this.text ?? '')) {
      this.clearBroken();
      return;
    }
    try {
      this.adopt(parsePolicyFile(text, this.path, this.links, this.internetLinks), text, true);
      this.clearBroken();
      this.logger.info({ path: this.path, policies: this.policies.size }, 'policy file changed on disk; reloaded');
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      this.markBroken(err.message);
    }
  }

  /**
   * Takes a parsed file as the state. A policy whose version is missing (added by hand) or
   * unchanged although its spec changed (edited by hand) gets a new version, so an ETag never
   * names two different specs.
   */
  private adopt(content: PolicyFileContent, text: string, notify: boolean): void {
    let revision = Math.max(this.revision, content.revision, ...content.items.map((i) => i.version ?? 0));
    const next = new Map<string, WanPolicy>();
    for (const item of content.items) {
      const previous = this.policies.get(item.name);
      const edited = previous !== undefined && previous.version === String(item.version) && !sameSpec(previous.spec, item.spec);
      const version = item.version === undefined || edited ? ++revision : item.version;
      next.set(item.name, { name: item.name, spec: item.spec, version: String(version) });
    }
    this.revision = revision;
    this.policies = next;
    this.text = text;
    if (notify) this.subscribers.notify(this.list());
  }

  private async readText(): Promise<string | undefined> {
    try {
      return await readFile(this.path, 'utf8');
    } catch (err) {
      // Gone (or never there): an empty store. Anything else is a real failure.
      if ((err as { code?: string }).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  private markBroken(reason: string): void {
    if (reason !== this.brokenReason) this.logger.warn({ path: this.path, reason }, 'policy file not reloaded; keeping the last good policies');
    this.brokenReason = reason;
  }

  private clearBroken(): void {
    if (this.brokenReason) this.logger.info({ path: this.path }, 'policy file is valid again');
    this.brokenReason = undefined;
  }
}

function checkVersion(current: WanPolicy, ifMatch: string | undefined): void {
  if (ifMatch !== undefined && ifMatch !== current.version) throw new PolicyConflictError(current.name, ifMatch, current.version);
}

function sameSpec(a: WanPolicySpec, b: WanPolicySpec): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
