/**
 * Tells the file store when its file may have changed. Watches the directory, not the file:
 * editors save by writing a new file and renaming it over the old one, which a watch on the old
 * inode would miss. Events are debounced (an editor's save is several events), and a slow poll
 * backs inotify up where it is blind (network file systems, a watch that failed).
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { silentLogger, type Logger } from '../base/logger.js';

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms).unref(),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

export interface FileWatchOptions {
  /** Quiet time after the last event before `onChange` runs. */
  readonly debounceMs?: number;
  /** Safety-net poll; 0 turns it off. */
  readonly pollMs?: number;
  readonly timers?: Timers;
  readonly logger?: Logger;
}

export interface FileWatch {
  close(): void;
}

export function watchFile(path: string, onChange: () => void, options: FileWatchOptions = {}): FileWatch {
  const timers = options.timers ?? realTimers;
  const logger = options.logger ?? silentLogger;
  const debounceMs = options.debounceMs ?? 100;
  const name = basename(path);
  let pending: unknown;
  let closed = false;
  const schedule = (): void => {
    if (closed) return;
    if (pending !== undefined) timers.clearTimeout(pending);
    pending = timers.setTimeout(() => {
      pending = undefined;
      if (!closed) onChange();
    }, debounceMs);
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, filename) => {
      // No filename (some platforms): it may have been ours.
      if (!filename || filename === name) schedule();
    });
    watcher.on('error', (err) => {
      logger.warn({ path, err: err.message }, 'watching the policy file directory failed; falling back to polling');
      watcher?.close();
      watcher = undefined;
    });
  } catch (err) {
    logger.warn({ path, err: (err as Error).message }, 'cannot watch the policy file directory; polling only');
  }
  const pollMs = options.pollMs ?? 2000;
  const poll = pollMs > 0 ? timers.setInterval(schedule, pollMs) : undefined;

  return {
    close() {
      closed = true;
      watcher?.close();
      if (pending !== undefined) timers.clearTimeout(pending);
      if (poll !== undefined) timers.clearInterval(poll);
    },
  };
}
