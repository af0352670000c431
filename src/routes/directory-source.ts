/**
 * Standalone route rules: every `*.yaml` / `*.yml` file in a directory, reloaded when the directory
 * changes. Each file is its own share of the RuleSet, so a broken file never takes other files'
 * rules with it; a file with a YAML error keeps its last good rules until it is fixed (an editor
 * half-way through a save must not drop routes), and a deleted file drops its rules.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { WansteerError } from '../base/errors.js';
import { FileReadError, FileTooLargeError } from './errors.js';
import { silentLogger, type Logger } from '../base/logger.js';
import { DEFAULT_MAX_FILE_BYTES, parseRuleDocuments } from './rule-documents.js';
import type { RuleSet } from './rule-set.js';

export interface DirectorySourceOptions {
  readonly directory: string;
  readonly ruleSet: RuleSet;
  readonly logger?: Logger;
  readonly maxFileBytes?: number;
  /** Quiet time after a change before reloading, so one save is one reload. Default 100 ms. */
  readonly debounceMs?: number;
  readonly setTimer?: (fn: () => void, ms: number) => { unref?(): void };
  readonly clearTimer?: (timer: unknown) => void;
}

export interface SourceProblem {
  readonly file: string;
  readonly code: string;
  readonly message: string;
}

export interface LoadReport {
  readonly files: number;
  readonly virtualServices: number;
  /** Files that could not be read or parsed (their last good rules stay). */
  readonly brokenFiles: SourceProblem[];
  /** Objects skipped for failing validation. */
  readonly invalidObjects: SourceProblem[];
}

const RULE_FILE = /\.ya?ml$/i;

export class DirectoryRuleSource {
  private readonly logger: Logger;
  private readonly known = new Set<string>();
  private watcher: FSWatcher | undefined;
  private timer: unknown;
  private reloading: Promise<LoadReport> | undefined;
  private pending = false;
  /** Counts of skipped objects and broken files by error code, since start. */
  readonly skipped = new Map<string, number>();

  constructor(private readonly options: DirectorySourceOptions) {
    this.logger = options.logger ?? silentLogger;
  }

  /** Reads every rule file now. Safe to call while a reload runs: calls are serialised. */
  async load(): Promise<LoadReport> {
    while (this.reloading) await this.reloading.catch(() => undefined);
    this.reloading = this.loadOnce();
    try {
      return await this.reloading;
    } finally {
      this.reloading = undefined;
    }
  }

  /** Loads, then reloads on every change in the directory until stop(). */
  async start(): Promise<LoadReport> {
    const report = await this.load();
    this.watcher = watch(this.options.directory, () => this.scheduleReload());
    this.watcher.on('error', (err) => this.logger.warn({ err, directory: this.options.directory }, 'route rule directory watch failed'));
    return report;
  }

  stop(): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.timer !== undefined) (this.options.clearTimer ?? clearTimeout)(this.timer as NodeJS.Timeout);
    this.timer = undefined;
  }

  private scheduleReload(): void {
    if (this.timer !== undefined) (this.options.clearTimer ?? clearTimeout)(this.timer as NodeJS.Timeout);
    const set = this.options.setTimer ?? setTimeout;
    this.timer = set(() => {
      this.timer = undefined;
      if (this.reloading) this.pending = true;
      void this.load().then(() => {
        if (this.pending) {
          this.pending = false;
          this.scheduleReload();
        }
      });
    }, this.options.debounceMs ?? 100);
  }

  private async loadOnce(): Promise<LoadReport> {
    const { directory, ruleSet } = this.options;
    const brokenFiles: SourceProblem[] = [];
    const invalidObjects: SourceProblem[] = [];
    let names: string[];
    try {
      names = (await readdir(directory)).filter((n) => RULE_FILE.test(n)).sort();
    } catch (err) {
      const problem = new FileReadError((err as Error).message).located(directory);
      this.report(brokenFiles, directory, problem);
      return { files: 0, virtualServices: 0, brokenFiles, invalidObjects };
    }
    let count = 0;
    for (const name of names) {
      const file = join(directory, name);
      try {
        const docs = parseRuleDocuments(await this.read(file), { origin: file, maxBytes: this.maxBytes });
        for (const err of docs.invalid) this.report(invalidObjects, file, err);
        for (const kind of docs.ignoredKinds) this.logger.debug({ file }, `ignoring ${kind}`);
        ruleSet.replaceSource(sourceId(file), docs.virtualServices);
        count += docs.virtualServices.length;
      } catch (err) {
        if (!(err instanceof WansteerError)) throw err;
        this.report(brokenFiles, file, err);
      }
    }
    // Files that are gone take their rules with them.
    const present = new Set(names.map((n) => join(directory, n)));
    for (const file of this.known) if (!present.has(file)) ruleSet.replaceSource(sourceId(file), []);
    this.known.clear();
    for (const file of present) this.known.add(file);
    this.logger.info({ directory, files: names.length, virtualServices: count }, 'route rules loaded');
    return { files: names.length, virtualServices: count, brokenFiles, invalidObjects };
  }

  private get maxBytes(): number {
    return this.options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  }

  /** Checks the size before reading, so a huge file is never loaded into memory. */
  private async read(file: string): Promise<string> {
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch (err) {
      throw new FileReadError((err as Error).message).located(file);
    }
    if (size > this.maxBytes) throw new FileTooLargeError(String(size), String(this.maxBytes)).located(file);
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new FileReadError((err as Error).message).located(file);
    }
  }

  private report(into: SourceProblem[], file: string, err: WansteerError): void {
    into.push({ file, code: err.code, message: err.message });
    this.skipped.set(err.code, (this.skipped.get(err.code) ?? 0) + 1);
    this.logger.warn({ file, code: err.code }, err.message);
  }
}

function sourceId(file: string): string {
  return `file:${file}`;
}
