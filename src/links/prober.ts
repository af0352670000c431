/**
 * Active probes over one link: TWAMP-light test packets (twamp.ts) to a reflector, one every
 * `intervalMs`, each answered or declared lost after `timeoutMs`.
 *
 *   const p = new Prober({ local: '10.10.2.1', target: '10.20.0.1', intervalMs: 100, timeoutMs: 250,
 *                          onSample: (s) => machine.sample(s) });
 *   await p.start();      // binds local:0; p.port is the source port (probe-route.ts pins it to the link)
 *
 * Suspect mode: when a probe is not answered within its expected time (srtt + 4·rttvar, at least
 * 20 ms, as TCP computes its retransmission timeout), the prober sends every
 * `intervalMs / FAST_FACTOR` until an answer arrives. Such probes weigh 1/FAST_FACTOR of a miss
 * (health.ts), so a blackhole is confirmed in the same ~3 intervals but by many more lost probes,
 * and random loss almost never adds up to a false "down".
 *
 * With `tickMs`, the owner calls tick() that often (the link monitor's carrier poll) and normal
 * probes go out on those ticks instead of on a timer of their own: waking the process is most of
 * what a probe costs, and the tick wakes it anyway. Sends keep the interval on average, each at
 * most half a tick off it; suspect mode keeps its own, faster timer.
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { ProbeSample } from './health.js';
import { decodeReflected, encodeSender, ntpDiffNs, ntpNow, PACKET_BYTES, TWAMP_PORT } from './twamp.js';

export const FAST_FACTOR = 5;
const MIN_SUSPECT_MS = 20;
const MIN_FAST_MS = 10;

export interface ProberOptions {
  /** Source address (the link's own address): probe-route.ts routes it out of the link. */
  local: string;
  target: string;
  port?: number;
  intervalMs: number;
  timeoutMs: number;
  onSample: (sample: ProbeSample) => void;
  /** The owner calls tick() every `tickMs`: normal probes are sent then (see above). */
  tickMs?: number;
}

interface Outstanding {
  sentNs: bigint;
  weight: number;
  timeout: NodeJS.Timeout;
  suspect: NodeJS.Timeout | undefined;
}

export class Prober {
  /** Probes sent, answers received, bytes sent and received (UDP payload), for the cost figures. */
  readonly stats = { sent: 0, answered: 0, lost: 0, bytesOut: 0, bytesIn: 0 };
  private socket: Socket | undefined;
  private seq = 0;
  private readonly outstanding = new Map<number, Outstanding>();
  private timer: NodeJS.Timeout | undefined;
  private fast = false;
  private srtt: number | undefined;
  private rttvar = 0;
  private readonly buf = Buffer.alloc(PACKET_BYTES);
  private stopped = false;
  private suspectAllowed = true;
  private lastAnsweredSeq = -1;
  /** With ticks: when the next normal probe is due (performance.now() ms, ideal, not rounded to a tick). */
  private nextAt = 0;

  constructor(private readonly opts: ProberOptions) {}

  /** The bound source port (after start). */
  get port(): number {
    return this.socket?.address().port ?? 0;
  }

  async start(): Promise<void> {
    const socket = createSocket({ type: isIPv6(this.opts.local) ? 'udp6' : 'udp4' });
    socket.on('message', (msg) => this.onAnswer(msg));
    // Unreachable errors (ICMP) when the path is gone: the probe counts as lost at its timeout.
    socket.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      const failed = (err: Error) => {
        socket.close(); // e.g. EADDRNOTAVAIL: the address is gone, or IPv6 and still tentative
        reject(err);
      };
      socket.once('error', failed);
      socket.bind(0, this.opts.local, () => {
        socket.off('error', failed);
        resolve();
      });
    });
    this.socket = socket;
  }

  /** Begin sending (after the probe route is in place). */
  run(): void {
    if (!this.socket || this.timer || this.nextAt || this.stopped) return;
    this.send();
  }

  /** The owner's tick (with `tickMs`): send the normal probe if it is due. */
  tick(now = performance.now()): void {
    if (!this.nextAt || this.fast || this.stopped) return;
    if (now >= this.nextAt - this.opts.tickMs! / 2) this.send();
  }

  /** The next normal probe `after` ms from now, on the owner's tick or on a timer of its own. */
  private scheduleNormal(after: number): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.opts.tickMs) {
      this.timer = setTimeout(() => this.send(), after);
      return;
    }
    // From the due time of the probe just sent, so ticks keep the interval on average; from now
    // after suspect mode, at the start, or when the ticks came late (a stalled event loop).
    const now = performance.now();
    const keep = this.nextAt && !this.fast && this.nextAt > now - this.opts.tickMs;
    this.nextAt = (keep ? this.nextAt : now) + after;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const o of this.outstanding.values()) {
      clearTimeout(o.timeout);
      clearTimeout(o.suspect);
    }
    this.outstanding.clear();
    this.socket?.close();
    this.socket = undefined;
  }

  private get fastIntervalMs(): number {
    return Math.max(MIN_FAST_MS, this.opts.intervalMs / FAST_FACTOR);
  }

  private send(): void {
    if (this.stopped || !this.socket) return;
    const seq = this.seq++ >>> 0;
    const interval = this.fast ? this.fastIntervalMs : this.opts.intervalMs;
    const weight = interval / this.opts.intervalMs;
    const sentNs = process.hrtime.bigint();
    const o: Outstanding = {
      sentNs,
      weight,
      // The verdict waits for setImmediate: after a stall of the event loop, timers run before
      // the socket is read, and answers already waiting would be counted as losses.
      timeout: setTimeout(() => setImmediate(() => this.onTimeout(seq)), this.opts.timeoutMs),
      suspect: this.fast ? undefined : setTimeout(() => setImmediate(() => this.onSuspect(seq)), this.suspectMs()),
    };
    this.outstanding.set(seq, o);
    encodeSender(seq, ntpNow(), this.buf);
    this.stats.sent++;
    this.stats.bytesOut += PACKET_BYTES;
    this.socket.send(this.buf, this.opts.port ?? TWAMP_PORT, this.opts.target);
    if (this.fast) this.timer = setTimeout(() => this.send(), interval);
    else this.scheduleNormal(interval);
  }

  private suspectMs(): number {
    const rto = this.srtt === undefined ? this.opts.timeoutMs : this.srtt + 4 * this.rttvar;
    return Math.min(this.opts.timeoutMs, Math.max(MIN_SUSPECT_MS, rto));
  }

  private onSuspect(seq: number): void {
    if (!this.outstanding.has(seq) || seq < this.lastAnsweredSeq) return;
    this.enterFast();
  }

  /**
   * Suspect mode is for links that are up (to confirm a failure fast). A link that is down
   * proves itself at the normal pace: `upAfter` answers are `upAfter` intervals of hysteresis.
   */
  set suspectMode(allowed: boolean) {
    this.suspectAllowed = allowed;
    if (!allowed && this.fast) this.leaveFast();
  }

  private enterFast(): void {
    if (this.stopped || this.fast || !this.suspectAllowed) return;
    this.fast = true;
    clearTimeout(this.timer);
    this.nextAt = 0;
    this.send();
  }

  /** Back to the normal pace, from now. */
  private leaveFast(): void {
    this.fast = false;
    this.scheduleNormal(this.opts.intervalMs);
  }

  private onTimeout(seq: number): void {
    const o = this.outstanding.get(seq);
    if (!o) return;
    this.outstanding.delete(seq);
    clearTimeout(o.suspect);
    this.stats.lost++;
    this.opts.onSample({ seq, lost: true, weight: o.weight });
    // A miss is suspicious even before any RTT is known; not one older than the last answer.
    if (seq > this.lastAnsweredSeq) this.enterFast();
  }

  private onAnswer(msg: Buffer): void {
    const nowNs = process.hrtime.bigint();
    const r = decodeReflected(msg);
    if (!r) return;
    const o = this.outstanding.get(r.senderSeq);
    if (!o) return; // late (already counted lost) or not ours
    this.outstanding.delete(r.senderSeq);
    clearTimeout(o.timeout);
    clearTimeout(o.suspect);
    this.stats.answered++;
    this.lastAnsweredSeq = Math.max(this.lastAnsweredSeq, r.senderSeq);
    this.stats.bytesIn += msg.length;
    // Round trip minus the reflector's own turnaround (its clocks need no sync with ours).
    const turnaround = ntpDiffNs(r.rxTimestamp, r.timestamp);
    let rttNs = nowNs - o.sentNs;
    if (turnaround > 0n && turnaround < rttNs) rttNs -= turnaround;
    const rttMs = Number(rttNs) / 1e6;
    if (this.srtt === undefined) {
      this.srtt = rttMs;
      this.rttvar = rttMs / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - rttMs);
      this.srtt = 0.875 * this.srtt + 0.125 * rttMs;
    }
    if (this.fast) this.leaveFast(); // answered
    this.opts.onSample({ seq: r.senderSeq, rttMs });
  }
}
