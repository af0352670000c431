// Proves the policy file watch: a burst of events (an editor's save) runs the reload once after
// the quiet time, an editor's rename-replace of the file is seen, other files in the directory
// are not, and the safety-net poll fires on its own; timers are injected, so no test waits for them.
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { watchFile, type FileWatch, type Timers } from '../../src/policies/file-watch.js';

/** Timers that run only when the test says so. */
class ManualTimers implements Timers {
  private next = 0;
  readonly timeouts = new Map<number, () => void>();
  readonly intervals = new Map<number, () => void>();
  setTimeout = (fn: () => void) => (this.timeouts.set(++this.next, fn), this.next);
  clearTimeout = (h: unknown) => void this.timeouts.delete(h as number);
  setInterval = (fn: () => void) => (this.intervals.set(++this.next, fn), this.next);
  clearInterval = (h: unknown) => void this.intervals.delete(h as number);
  fireTimeouts(): void {
    const due = [...this.timeouts.values()];
    this.timeouts.clear();
    for (const fn of due) fn();
  }
  tick(): void {
    for (const fn of this.intervals.values()) fn();
  }
}

let dir: string;
let watch: FileWatch | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wansteer-watch-'));
});
afterEach(async () => {
  watch?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('watchFile', () => {
  it('debounces a burst of writes into one change, pending until the quiet time ends', async () => {
    const timers = new ManualTimers();
    const onChange = vi.fn();
    const path = join(dir, 'policies.yaml');
    watch = watchFile(path, onChange, { timers, pollMs: 0 });
    for (let i = 0; i < 5; i++) await writeFile(path, `revision: ${i}\n`);
    await vi.waitFor(() => expect(timers.timeouts.size).toBe(1));
    expect(onChange).not.toHaveBeenCalled();
    timers.fireTimeouts();
    expect(onChange).toHaveBeenCalledTimes(1);
  });

  it('sees a rename over the file, and ignores other files in the directory', async () => {
    const timers = new ManualTimers();
    const onChange = vi.fn();
    const path = join(dir, 'policies.yaml');
    watch = watchFile(path, onChange, { timers, pollMs: 0 });
    await writeFile(join(dir, 'other.yaml'), 'x');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(timers.timeouts.size).toBe(0);
    await writeFile(join(dir, 'new.tmp'), 'revision: 9\n');
    await rename(join(dir, 'new.tmp'), path);
    await vi.waitFor(() => expect(timers.timeouts.size).toBe(1));
    timers.fireTimeouts();
    expect(onChange).toHaveBeenCalledTimes(1);
  });

  it('polls as a safety net, and stops everything on close', () => {
    const timers = new ManualTimers();
    const onChange = vi.fn();
    watch = watchFile(join(dir, 'policies.yaml'), onChange, { timers, pollMs: 1000 });
    timers.tick();
    timers.fireTimeouts();
    expect(onChange).toHaveBeenCalledTimes(1);
    watch.close();
    expect(timers.intervals.size).toBe(0);
    timers.tick();
    timers.fireTimeouts();
    expect(onChange).toHaveBeenCalledTimes(1);
  });
});
