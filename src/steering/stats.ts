/**
 * The engine's own figures, kept as plain numbers on the hot path and read by the metrics
 * collectors at scrape time (src/metrics). Steering knows nothing of Prometheus.
 */
import { RejectReasons, UnmatchedReasons, type RejectReason, type UnmatchedReason } from './types.js';
import type { Table } from './reconcile.js';

/** Upper bounds (seconds) of the report-to-datapath latency buckets; the target is p99 < 2 ms. */
export const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1] as const;

/** A histogram that takes a count per observation: a batch written at once is one call. */
export class LatencyRecorder {
  readonly bounds: readonly number[];
  /** Non-cumulative: counts[i] for bounds[i]; the last slot is above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[] = LATENCY_BUCKETS) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  record(seconds: number, n = 1): void {
    if (n <= 0) return;
    let i = 0;
    while (i < this.bounds.length && seconds > this.bounds[i]!) i++;
    this.counts[i]! += n;
    this.sum += seconds * n;
    this.count += n;
  }
}

export class SessionCounts {
  steered = 0;
  readonly unmatched = new Float64Array(UnmatchedReasons.length);
  readonly rejected = new Float64Array(RejectReasons.length);

  countUnmatched(reason: UnmatchedReason, n = 1): void {
    this.unmatched[UnmatchedReasons.indexOf(reason)]! += n;
  }

  countRejected(reason: RejectReason, n = 1): void {
    this.rejected[RejectReasons.indexOf(reason)]! += n;
  }
}

/** Per policy, surviving policy edits (keyed by name). `hits`: sessions steered by it. */
export interface PolicyCounts {
  hits: number;
}

/** What src/metrics reads from the engine. */
export interface SteeringStats {
  readonly sessions: SessionCounts;
  readonly latency: LatencyRecorder;
  /** Failed datapath writes by table. */
  readonly writeErrors: Record<Table, number>;
  /** Policy name -> counts, for the policies that exist now. */
  policyCounts(): ReadonlyMap<string, PolicyCounts>;
  /** Datapath link id -> link name (config order). */
  linkNames(): ReadonlyMap<number, string>;
  /** Datapath policy id -> policy name. */
  policyNames(): ReadonlyMap<number, string>;
}
