/**
 * Goodput as a user feels it, for the demo, the tests and the benchmarks: the bytes the
 * receiving application got, in order, per TCP connection, each read timed in the receiver —
 * and from them, how long a fault kept each connection below 80 % of the rate
 * it had before. The first packet on the other link says when the datapath moved; this says
 * when the session's data flows again, which can be seconds later (a segment parked on a dead
 * link's neighbour entry, a retransmission timer backed off in a blackhole).
 *
 *   const meter = await GoodputMeter.start(lab, lab.cloud, 8080);     // the HTTP service, sampling
 *   const upload = startUploads(lab, lab.edge, { src, sports: [42001, 42002], dst, port: 8080, ... });
 *   const fault = lab.drop('wan1', 100);
 *   ...
 *   meter.gap(42001, fault)      // { rateBefore, stalled, gapMs }: fault -> goodput back
 *
 * The receiver is scripts/ns-http.mjs (`serve PORT PRINT_MS`); the clock is CLOCK_MONOTONIC,
 * which every namespace shares, so its sample times compare with process.hrtime here.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fromRoot } from '../config/paths.js';
import type { Lab } from './namespaces.js';

const NS_HTTP = fromRoot('scripts/ns-http.mjs');

/** One read of one connection: when it returned (CLOCK_MONOTONIC ns), and the bytes read so far. */
export interface GoodputSample {
  at: bigint;
  bytes: number;
}

export interface GapOptions {
  /** The rate before the fault is measured over this long before it. Default 1000 ms. */
  beforeMs?: number;
  /** Goodput at an instant is the bytes read in the `windowMs` before it. Default 50 ms. */
  windowMs?: number;
  /** "Back" is this share of the rate before. Default 0.8. */
  share?: number;
  /** A dip that starts later than this after the fault is not the fault's. Default 100 ms. */
  startWithinMs?: number;
  /** Until when the reads are known (the receiver's last print); default the last read. */
  end?: bigint;
}

export interface Gap {
  /** Bytes per second over `beforeMs` before the fault. */
  rateBefore: number;
  /** Whether goodput fell below `share` of that at all. */
  stalled: boolean;
  /**
   * Fault -> the first read that brings goodput back to `share` of the rate before: 0 when it
   * never fell, Infinity when it is not back by `end`.
   */
  gapMs: number;
}

const MS = 1_000_000n;

/**
 * How long the fault at `fault` kept the connection below `share` of its rate before. Goodput at
 * an instant is the bytes read in the `windowMs` before it, checked every millisecond. Each time
 * it falls below `share` of the rate before, within `startWithinMs` of the fault, a dip starts;
 * it ends at the read that lifts it to `share` again. The gap ends with the last of those dips
 * (a wobble just before the stall does not hide the stall). With a window W, a stall shorter
 * than (1 − share)·W is not seen; a connection that resumes with its backlog (as TCP does: what
 * was sent meanwhile arrives at once) is back when the backlog arrives, one that resumes at its
 * old pace up to share·W later.
 */
export function goodputGap(reads: readonly GoodputSample[], fault: bigint, opts: GapOptions = {}): Gap {
  const beforeNs = BigInt(Math.round((opts.beforeMs ?? 1000) * 1e6));
  const windowNs = BigInt(Math.round((opts.windowMs ?? 50) * 1e6));
  const share = opts.share ?? 0.8;
  const startWithin = fault + BigInt(Math.round((opts.startWithinMs ?? 100) * 1e6));
  const end = opts.end ?? reads.at(-1)?.at ?? fault;
  const first = reads[0];
  if (!first || first.at > fault - beforeNs) throw new Error(`goodput: the connection was not reading ${Number(beforeNs) / 1e6} ms before the fault`);
  const rateBefore = ((bytesAt(reads, fault) - bytesAt(reads, fault - beforeNs)) * 1e9) / Number(beforeNs);
  if (!(rateBefore > 0)) throw new Error('goodput: the connection carried nothing before the fault');
  const floor = (share * rateBefore * Number(windowNs)) / 1e9;
  let stalled = false;
  let below = false;
  let back = fault;
  for (let t = fault + MS; t <= end; t += MS) {
    if (!below && t > startWithin) break; // a later dip is not the fault's
    const low = bytesAt(reads, t) - bytesAt(reads, t - windowNs) < floor;
    if (low && !below) {
      stalled = below = true;
    } else if (!low && below) {
      below = false;
      back = reads[firstAfter(reads, t) - 1]!.at; // the read that lifted it
    }
  }
  if (!stalled) return { rateBefore, stalled, gapMs: 0 };
  return { rateBefore, stalled, gapMs: below ? Infinity : Number(back - fault) / 1e6 };
}

/** The bytes read by `t`: those of the last read at or before it (0 before the first). */
export function bytesAt(reads: readonly GoodputSample[], t: bigint): number {
  const i = firstAfter(reads, t) - 1;
  return i >= 0 ? reads[i]!.bytes : 0;
}

/** Index of the first read after `t` (reads.length when none). */
function firstAfter(reads: readonly GoodputSample[], t: bigint): number {
  let lo = 0;
  let hi = reads.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (reads[mid]!.at <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The receiving end: scripts/ns-http.mjs's HTTP service in a namespace, recording every read. */
export class GoodputMeter {
  private readonly reads = new Map<number, GoodputSample[]>();
  /** The receiver's last print: reads up to here are in. */
  private last = 0n;

  private constructor(readonly receiver: ChildProcess) {
    createInterface({ input: receiver.stdout! }).on('line', (line) => this.parse(line));
  }

  /** Start the service on `port` in `ns`, printing reads every `printMs`; killed with the lab. */
  static async start(lab: Lab, ns: string, port: number, printMs = 5): Promise<GoodputMeter> {
    return new GoodputMeter(await lab.spawnReady(ns, [process.execPath, NS_HTTP, 'serve', String(port), String(printMs)], 'the goodput receiver'));
  }

  private parse(line: string): void {
    const fields = line.split(' ');
    if (fields[0] === 't') {
      this.last = BigInt(fields[1]!);
      return;
    }
    if (fields[0] !== 'g') return;
    const port = Number(fields[1]);
    let s = this.reads.get(port);
    if (!s) this.reads.set(port, (s = []));
    for (let i = 2; i < fields.length; i++) {
      const [at, bytes] = fields[i]!.split(':');
      const n = Number(bytes);
      // The same port again from fewer bytes: a new connection. Keep the latest one.
      if (s.length > 0 && n < s.at(-1)!.bytes) s.length = 0;
      s.push({ at: BigInt(at!), bytes: n });
    }
  }

  /** The reads of the connection from client port `sport` (empty when none arrived). */
  samples(sport: number): readonly GoodputSample[] {
    return this.reads.get(sport) ?? [];
  }

  /** How long the fault at `fault` kept that connection's goodput down (goodputGap), by what is in now. */
  gap(sport: number, fault: bigint, opts?: GapOptions): Gap {
    return goodputGap(this.samples(sport), fault, { end: this.last, ...opts });
  }

  /** Resolves once the receiver has printed past `t` (CLOCK_MONOTONIC ns); rejects after `timeoutMs`. */
  async until(t: bigint, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.last < t) {
      if (Date.now() > deadline || this.receiver.exitCode !== null) throw new Error('the goodput receiver stopped printing');
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

export interface UploadOptions {
  /** Source address, the ports of its connections (one each), destination address and port. */
  src: string;
  sports: readonly number[];
  dst: string;
  port: number;
  /** The request's Host and end-user headers. */
  host: string;
  user: string;
  durationMs: number;
  /** Each connection's pace. Default 200 KiB/s. */
  kibPerSecond?: number;
}

/** Long HTTP uploads from `ns`, one connection per source port, in one process (killed with the lab). */
export function startUploads(lab: Lab, ns: string, o: UploadOptions): ChildProcess {
  return lab.spawn(ns, [
    process.execPath, NS_HTTP, 'upload', o.src, o.sports.join(','), o.dst, String(o.port), o.host, o.user, String(o.durationMs), String(o.kibPerSecond ?? 200),
  ]);
}
