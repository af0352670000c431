/**
 * How many flows the LRU evicted from one flow table: steering lost without anyone asking.
 *
 * Nothing in the kernel counts LRU evictions, and the program cannot tell an evicted flow's
 * packets from an unsteered flow's (both miss). But the table has three writers only: this
 * process writes and deletes entries (and knows how many), the program refreshes last-seen in
 * place, and the LRU evicts. So between two full walks of the table,
 *
 *   evicted = entries then + new entries written − deleted − entries now
 *
 * at the cost of two counters: the walks happen anyway (flow ageing, metrics scrapes, listings),
 * and a walk is synchronous, so no write of ours lands in the middle of one.
 *
 * What it cannot know is how many written entries were new: a batched update cannot say
 * (the kernel refuses BPF_NOEXIST in batches), and asking first would cost a lookup per report.
 * So a rewrite of a flow already there (a duplicate report) looks like a new entry. The LRU's
 * own behaviour keeps that honest: it evicts only when it has run out of free nodes, that is
 * with the table full but for the nodes it keeps free per CPU (`earlyEviction`), and only our
 * deletes take entries away after that. So unless the table could have filled since the last
 * walk (entries then + written) and was full at some point (entries now + deleted), nothing is
 * counted; past both the figure is an upper bound, exact when no duplicate was written meanwhile.
 *
 * Ageing removes flows idle for `datapath.flowIdleSeconds`, so whatever the LRU evicts was not
 * idle that long: still active by the agent's own measure, and its session lost its steering.
 * One agent per node is assumed: another writer's inserts could hide evictions, its deletes
 * would look like some.
 */
export class FlowCensus {
  /** Entries at the last walk; -1 before the first (the baseline). */
  private counted = -1;
  private writes = 0;
  private deleted = 0;
  /** Evictions found since the process started (an upper bound, see above). */
  evicted = 0;
  /** When the last walk ran (Date.now()), 0 never. */
  countedAt = 0;

  constructor(
    readonly maxEntries: number,
    /** How many entries short of max_entries the LRU may evict (0: not an LRU). */
    readonly earlyEviction = 0,
  ) {}

  /** Entries at the last walk (0 before the first). */
  get entries(): number {
    return Math.max(0, this.counted);
  }

  written(n: number): void {
    this.writes += n;
  }

  deletes(n: number): void {
    this.deleted += n;
  }

  /** A full walk saw `present` entries. Returns the evictions it uncovered. */
  recount(present: number, now = Date.now()): number {
    let lost = 0;
    const full = this.maxEntries - this.earlyEviction;
    if (this.counted >= 0 && this.counted + this.writes > full && present + this.deleted >= full) {
      lost = Math.max(0, this.counted + this.writes - this.deleted - present);
    }
    this.evicted += lost;
    this.counted = present;
    this.writes = 0;
    this.deleted = 0;
    this.countedAt = now;
    return lost;
  }
}
