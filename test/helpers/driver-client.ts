/** The test side of dp-driver.ts: start the facade in a namespace and call it. */
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import type { WanLab } from './netns.js';

const DRIVER = fileURLToPath(new URL('./dp-driver.ts', import.meta.url));

export class DatapathDriver {
  private next = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private stderr = '';

  private constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { id: number; ok: boolean; result?: unknown; error?: { code?: string; message: string } };
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(Object.assign(new Error(msg.error!.message), { code: msg.error!.code }));
    });
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    child.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`driver exited (${code}): ${this.stderr.slice(-2000)}`));
      this.pending.clear();
    });
  }

  /** Start a driver in `ns` of `lab`. */
  static start(lab: WanLab, ns: string): DatapathDriver {
    return new DatapathDriver(lab.spawn(ns, [process.execPath, '--import', 'tsx', DRIVER]));
  }

  call<T = unknown>(method: string, ...args: unknown[]): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.stdin!.write(JSON.stringify({ id, method, args }, (_k, v: unknown) => (typeof v === 'bigint' ? { $bigint: v.toString() } : v)) + '\n');
    });
  }

  /** Exit without tearing anything down: pins and tc filters stay, like an agent restart. */
  async exit(): Promise<void> {
    const done = new Promise((r) => this.child.once('exit', r));
    await this.call('exit').catch(() => {});
    await done;
  }

  /** Simulate a crash. */
  kill(): void {
    this.child.kill('SIGKILL');
  }
}
