/**
 * A link's health from its carrier and its probe samples: pure, no clock, no I/O.
 *
 *   const h = new LinkHealthMachine({ downAfter: 3, upAfter: 10, window: 50 });
 *   h.carrier(false)                       // -> { up: false, reason: 'carrier lost' } at once
 *   h.sample({ seq: 7, rttMs: 12.3 })      // an answered probe
 *   h.sample({ seq: 8, lost: true })       // a probe whose answer did not come within the timeout
 *
 * Hysteresis, so that a lossy link does not flap:
 * - Down on carrier loss, at once; or after `downAfter` consecutive misses. "Consecutive" is in
 *   send order: a miss older than an answered probe does not count, the link answered since.
 *   Misses are counted in units of the normal probe interval: a probe sent in the prober's fast
 *   (suspect) mode weighs `fastInterval / interval`, so a blackhole is confirmed by ~3 intervals
 *   of silence sampled densely — 11 probes lost in a row at the defaults, which a 20%-lossy link
 *   does about once in 5·10^7 probes, against once in 125 for 3 probes.
 * - Up again after `upAfter` consecutive answered probes with carrier (failback hysteresis).
 * RTT, loss and jitter are over the last `window` samples; jitter is the mean absolute
 * difference of consecutive RTTs (RFC 3550's interarrival jitter, unsmoothed).
 */

/**
 * A link's health as the monitor reports it and the engine takes it: the one shape both speak.
 * Tests and the API may hand the engine less (`{ up: false }`).
 */
export interface LinkHealth {
  up: boolean;
  /** False when the link's carrier is gone (absent: unknown, or there). */
  carrier?: boolean;
  rttMs?: number;
  lossPercent?: number;
  jitterMs?: number;
  /** Why, for people (e.g. `3 probes lost`). */
  reason?: string;
}

/** Who takes the monitor's reports: the steering engine, or the cloud end's ReplyEnd. */
export interface LinkHealthSink {
  setLinkHealth(link: string, health: LinkHealth): unknown;
}

export interface HealthSettings {
  downAfter: number;
  upAfter: number;
  window: number;
}

export type ProbeSample =
  | { seq: number; rttMs: number; lost?: false }
  | { seq: number; lost: true; /** In normal-interval units (fast-mode probes weigh less). Default 1. */ weight?: number };

export interface HealthView {
  up: boolean;
  carrier: boolean;
  rttMs?: number;
  lossPercent?: number;
  jitterMs?: number;
  /** Why the link is in its state (for logs and the API). */
  reason: string;
}

const EPSILON = 1e-9;

export class LinkHealthMachine {
  private carrierUp = true;
  private probeUp = true;
  private missWeight = 0;
  private misses = 0;
  private answered = 0;
  private lastAnsweredSeq = -1;
  private reason = 'starting: assumed up until carrier or probes say otherwise';
  /** Ring of the last `window` samples: RTT in ms, or NaN for a lost probe. */
  private readonly ring: Float64Array;
  private count = 0;
  private next = 0;

  constructor(
    private readonly settings: HealthSettings,
    /** False: the link has no probe, carrier alone decides. */
    private readonly probed = true,
  ) {
    this.ring = new Float64Array(Math.max(1, settings.window));
  }

  get up(): boolean {
    return this.carrierUp && this.probeUp;
  }

  /** Carrier changed (or was read). Returns true when `up` changed. */
  carrier(up: boolean): boolean {
    if (up === this.carrierUp) return false;
    const before = this.up;
    this.carrierUp = up;
    if (!up) {
      // The link proves itself again with `upAfter` answers once the carrier is back.
      if (this.probed) this.probeUp = false;
      this.answered = 0;
      this.reason = 'carrier lost';
    } else {
      this.reason = this.probed ? `carrier back; waiting for ${this.settings.upAfter} answered probes in a row` : 'carrier back';
    }
    return before !== this.up;
  }

  /** A probe was answered or lost. Returns true when `up` changed. */
  sample(s: ProbeSample): boolean {
    const before = this.up;
    this.push(s.lost ? Number.NaN : s.rttMs);
    if (s.lost) {
      if (s.seq < this.lastAnsweredSeq) return false; // the link answered a later probe
      this.answered = 0;
      this.misses++;
      this.missWeight += s.weight ?? 1;
      if (this.probeUp && this.missWeight + EPSILON >= this.settings.downAfter) {
        this.probeUp = false;
        this.reason = `${this.misses} probes lost in a row (${round(this.missWeight)} intervals without an answer)`;
      }
    } else {
      this.lastAnsweredSeq = Math.max(this.lastAnsweredSeq, s.seq);
      this.misses = 0;
      this.missWeight = 0;
      this.answered++;
      if (!this.probeUp && this.carrierUp && this.answered >= this.settings.upAfter) {
        this.probeUp = true;
        this.reason = `${this.answered} probes answered in a row`;
      }
    }
    return before !== this.up;
  }

  view(): HealthView {
    const v: HealthView = { up: this.up, carrier: this.carrierUp, reason: this.reason };
    if (this.count === 0) return v;
    let lost = 0;
    let sum = 0;
    let ok = 0;
    let jitterSum = 0;
    let pairs = 0;
    let prev = Number.NaN;
    const start = (this.next - this.count + this.ring.length) % this.ring.length;
    for (let i = 0; i < this.count; i++) {
      const rtt = this.ring[(start + i) % this.ring.length]!;
      if (Number.isNaN(rtt)) {
        lost++;
        continue;
      }
      sum += rtt;
      ok++;
      if (!Number.isNaN(prev)) {
        jitterSum += Math.abs(rtt - prev);
        pairs++;
      }
      prev = rtt;
    }
    v.lossPercent = round((lost / this.count) * 100);
    if (ok > 0) v.rttMs = round(sum / ok);
    if (pairs > 0) v.jitterMs = round(jitterSum / pairs);
    return v;
  }

  private push(rtt: number): void {
    this.ring[this.next] = rtt;
    this.next = (this.next + 1) % this.ring.length;
    if (this.count < this.ring.length) this.count++;
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
