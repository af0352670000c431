/**
 * Hands a RuleSet's compiled route table to its consumer (the steering engine) after changes,
 * coalesced: a burst of changes is one compile, not one per change.
 *
 *   const feed = new RouteTableFeed(ruleSet, (table) => engine.setRoutes(table));
 *   feed.start();    // the table now, then after every burst of changes
 *   feed.stop();
 *
 * Why: a source tells the RuleSet of each object on its own (an informer's first list is one
 * add per VirtualService), and compiling the table costs time in the number of objects. One
 * compile per change made an informer's first list of 1000 VirtualServices cost ~17 s of
 * blocked event loop (probes, intake and /healthz stalled with it) where one compile takes
 * ~40 ms (bench/classify.ts). So a change schedules one delivery on the next timer turn, which
 * every change of the same burst joins; and deliveries are spaced at least twice the last
 * compile's time apart (`minGapMs` at the least), so a long stream of watch events spends at
 * most about a third of the process compiling, however the events are chunked.
 */
import type { RuleSet } from './rule-set.js';
import type { RouteTable } from './route-table.js';

export interface RouteTableFeedOptions {
  /** Least time between two deliveries, in ms. Default 20. */
  readonly minGapMs?: number;
  readonly now?: () => number;
  readonly setTimer?: (fn: () => void, ms: number) => unknown;
  readonly clearTimer?: (timer: unknown) => void;
}

export class RouteTableFeed {
  private readonly minGapMs: number;
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (timer: unknown) => void;
  private unsubscribe: (() => void) | undefined;
  private timer: unknown;
  private lastAt = -Infinity;
  private lastCompileMs = 0;
  /** Deliveries so far (for tests and logs). */
  deliveries = 0;

  constructor(
    private readonly ruleSet: RuleSet,
    private readonly deliver: (table: RouteTable) => void,
    options: RouteTableFeedOptions = {},
  ) {
    this.minGapMs = options.minGapMs ?? 20;
    this.now = options.now ?? (() => performance.now());
    this.setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms).unref());
    this.clearTimer = options.clearTimer ?? ((t) => clearTimeout(t as NodeJS.Timeout));
  }

  /** Deliver the table as it is now, then after every burst of changes. */
  start(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.ruleSet.onChange(() => this.schedule());
    this.flush();
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.timer !== undefined) this.clearTimer(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.timer !== undefined) return; // this change rides on the delivery already due
    const gap = Math.max(this.minGapMs, 2 * this.lastCompileMs);
    const wait = Math.max(0, this.lastAt + gap - this.now());
    this.timer = this.setTimer(() => {
      this.timer = undefined;
      this.flush();
    }, wait);
  }

  private flush(): void {
    const t0 = this.now();
    const table = this.ruleSet.table();
    this.lastCompileMs = this.now() - t0;
    this.lastAt = this.now();
    this.deliveries++;
    this.deliver(table);
  }
}
