/**
 * Flow ageing: every so often, remove the flows the datapath has not seen for
 * `datapath.flowIdleSeconds`. The datapath refreshes a flow's last-seen at most once a second,
 * so a flow idles out within one interval (plus ~1 s) of its last packet.
 *
 *   const ageing = new FlowAgeing({ datapath, idleSeconds: config.datapath.flowIdleSeconds, logger });
 *   ageing.start();  …  ageing.stop();
 *
 * Each run walks the whole flow table (a batched read), so the interval is a quarter of the
 * idle time, at least 1 s and at most 60 s. The timer is unref'd: it never keeps the process up.
 *
 * The walk also counts what the LRU evicted since the last one (src/datapath/flow-census.ts):
 * flows that were not idle, whose sessions silently lost their steering. Each run that finds
 * some says so in the log, with the table's fill, so an operator knows to resize.
 */
import type { DatapathPort } from '../datapath/index.js';

export interface AgeingTimers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export interface FlowAgeingOptions {
  datapath: Pick<DatapathPort, 'ageFlows'> & Partial<Pick<DatapathPort, 'flowTables'>>;
  idleSeconds: number;
  /** Default: idleSeconds / 4, clamped to 1..60 s. */
  intervalMs?: number;
  logger?: { warn(fields: object, message: string): void; debug(fields: object, message: string): void };
  timers?: AgeingTimers;
}

const realTimers: AgeingTimers = {
  setInterval: (fn, ms) => {
    const t = setInterval(fn, ms);
    t.unref();
    return t;
  },
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

export class FlowAgeing {
  readonly intervalMs: number;
  /** Flows removed since start, and failed runs: read by the metrics. */
  aged = 0;
  errors = 0;
  private readonly maxIdleNs: bigint;
  private readonly timers: AgeingTimers;
  private handle: unknown;
  /** Evictions already logged, per family. */
  private readonly reported = new Map<number, number>();

  constructor(private readonly opts: FlowAgeingOptions) {
    this.maxIdleNs = BigInt(opts.idleSeconds) * 1_000_000_000n;
    this.intervalMs = opts.intervalMs ?? Math.min(60_000, Math.max(1_000, (opts.idleSeconds * 1000) / 4));
    this.timers = opts.timers ?? realTimers;
  }

  start(): void {
    if (this.handle !== undefined) return;
    this.handle = this.timers.setInterval(() => this.runOnce(), this.intervalMs);
  }

  stop(): void {
    if (this.handle === undefined) return;
    this.timers.clearInterval(this.handle);
    this.handle = undefined;
  }

  /** One pass now; returns how many flows were removed. Never throws. */
  runOnce(now?: bigint): number {
    try {
      const n = this.opts.datapath.ageFlows(this.maxIdleNs, now);
      this.aged += n;
      if (n > 0) this.opts.logger?.debug({ removed: n }, 'aged out idle flows');
      this.reportEvictions();
      return n;
    } catch (err) {
      this.errors++;
      this.opts.logger?.warn({ err }, 'flow ageing failed');
      return 0;
    }
  }

  /** The census of the walk just done (no walk of its own): new evictions, one warning per table. */
  private reportEvictions(): void {
    for (const t of this.opts.datapath.flowTables?.(Infinity) ?? []) {
      const before = this.reported.get(t.family) ?? 0;
      if (t.evicted <= before) continue;
      this.reported.set(t.family, t.evicted);
      this.opts.logger?.warn(
        { family: `ipv${t.family}`, evicted: t.evicted - before, entries: t.entries, maxEntries: t.maxEntries },
        'the flow table is full: its LRU evicted flows that were not idle, and their sessions lost their steering; raise datapath.flowTableSize',
      );
    }
  }
}
