import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * Added delay and jitter on one device's outgoing frames, set while the lab runs:
 *
 *   const wan1Back = await lab.delayLine(lab.cloud, 'c1');   // the cloud -> edge half of wan1
 *   await wan1Back.set(80);        // +80 ms
 *   await wan1Back.set(0, 40);     // + uniform(0, 40) ms, in order
 *   await wan1Back.set(0);         // no fault (frames held already still wait their time)
 */
export class DelayLine {
  readonly ready: Promise<void>;
  private readonly acks: (() => void)[] = [];
  private err = '';

  constructor(private readonly child: ChildProcess) {
    child.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    this.ready = new Promise((resolve, reject) => {
      child.once('exit', (code) => {
        const why = new Error(`delay line exited ${code}: ${this.err}`);
        reject(why);
        for (const ack of this.acks.splice(0)) ack();
      });
      let first = true;
      createInterface({ input: child.stdout! }).on('line', () => {
        if (first) {
          first = false;
          resolve();
        } else {
          this.acks.shift()?.();
        }
      });
    });
  }

  /** Set the delay; resolves when the delay line has (de)attached its program. */
  async set(delayMs: number, jitterMs = 0): Promise<void> {
    await this.ready;
    if (this.child.exitCode !== null) throw new Error(`delay line exited ${this.child.exitCode}: ${this.err}`);
    const acked = new Promise<void>((resolve) => this.acks.push(resolve));
    this.child.stdin!.write(`${delayMs} ${jitterMs}\n`);
    await acked;
  }
}
