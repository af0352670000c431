/**
 * One read of the datapath per scrape: several collectors need the BPF counters (links,
 * policies, pass reasons) and the flow count; each walks a map, so a scrape reads them once and
 * the collectors share the result. Reads younger than `ttlMs` (default 1 s) are reused.
 */
import type { Counters, DatapathPort } from '../datapath/index.js';

export class ScrapeCache {
  private countersAt = -Infinity;
  private countersValue: Counters | undefined;
  private flowsAt = -Infinity;
  private flowsValue = 0;

  constructor(
    private readonly datapath: Pick<DatapathPort, 'counters' | 'countFlows'>,
    private readonly now: () => number = Date.now,
    private readonly ttlMs = 1000,
  ) {}

  counters(): Counters {
    const t = this.now();
    if (!this.countersValue || t - this.countersAt >= this.ttlMs) {
      this.countersValue = this.datapath.counters();
      this.countersAt = t;
    }
    return this.countersValue;
  }

  /** Entries in the flow tables (a walk of both tables, batched). */
  flowCount(): number {
    const t = this.now();
    if (t - this.flowsAt >= this.ttlMs) {
      this.flowsValue = this.datapath.countFlows();
      this.flowsAt = t;
    }
    return this.flowsValue;
  }
}
