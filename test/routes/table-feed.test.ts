// Proves the route table reaches the engine once per burst of changes, not once per change: an
// informer's first list of many VirtualServices is one compile, later bursts are spaced by the
// compile's own cost, and nothing is lost or delivered after stop.
import { describe, expect, it, vi } from 'vitest';
import { classifyRequest } from '../../src/routes/classify.js';
import type { RouteTable } from '../../src/routes/route-table.js';
import { RuleSet } from '../../src/routes/rule-set.js';
import { RouteTableFeed } from '../../src/routes/table-feed.js';
import { parseVirtualService } from '../../src/routes/validate.js';

const vs = (i: number) =>
  parseVirtualService(
    {
      apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: `svc-${i}`, namespace: 'default' },
      spec: { hosts: [`svc-${i}`], http: [{ name: 'all', route: [{ destination: { host: `svc-${i}` } }] }] },
    },
    { origin: 't', defaultNamespace: 'default' },
  );

/** A clock and timer queue the test moves by hand. */
class ManualTime {
  t = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private next = 0;
  readonly now = () => this.t;
  readonly setTimer = (fn: () => void, ms: number) => {
    const id = this.next++;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  };
  readonly clearTimer = (id: unknown) => {
    this.timers = this.timers.filter((x) => x.id !== id);
  };
  get pending(): number[] {
    return this.timers.map((x) => x.at - this.t);
  }
  advance(ms: number): void {
    this.t += ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= this.t).sort((a, b) => a.at - b.at)[0];
      if (!due) return;
      this.clearTimer(due.id);
      due.fn();
    }
  }
}

describe('RouteTableFeed', () => {
  it('delivers the table at start, then one compile for a burst of 1000 adds, with every one in it', () => {
    const time = new ManualTime();
    const rules = new RuleSet();
    const got: RouteTable[] = [];
    const feed = new RouteTableFeed(rules, (t) => got.push(t), time);
    feed.start();
    expect(got).toHaveLength(1);
    time.advance(100);
    for (let i = 0; i < 1000; i++) rules.upsert('cluster', vs(i));
    expect(got).toHaveLength(1); // nothing compiled inside the burst
    expect(time.pending).toEqual([0]); // one delivery due, on the next timer turn
    time.advance(0);
    expect(got).toHaveLength(2);
    expect(classifyRequest(got[1]!, { host: 'svc-0' }).matched).toBe(true);
    expect(classifyRequest(got[1]!, { host: 'svc-999' }).matched).toBe(true);
  });

  it('spaces deliveries at least minGapMs apart, and twice the last compile when that is longer', () => {
    const time = new ManualTime();
    const rules = new RuleSet();
    // Every compile "takes" 30 ms of the manual clock.
    const realTable = rules.table.bind(rules);
    rules.table = () => {
      time.t += 30;
      return realTable();
    };
    let delivered = 0;
    const feed = new RouteTableFeed(rules, () => delivered++, { ...time, minGapMs: 20 });
    feed.start(); // compile at 0..30
    expect(delivered).toBe(1);
    rules.upsert('cluster', vs(1));
    expect(time.pending).toEqual([60]); // 30 ms compile -> 60 ms gap after it ended
    time.advance(59);
    expect(delivered).toBe(1);
    rules.upsert('cluster', vs(2)); // joins the delivery already due
    expect(time.pending).toHaveLength(1);
    time.advance(1);
    expect(delivered).toBe(2);
  });

  it('delivers a lone change on the next timer turn when the last delivery is long past', () => {
    const time = new ManualTime();
    const rules = new RuleSet();
    const feed = new RouteTableFeed(rules, () => undefined, time);
    feed.start();
    time.advance(1000);
    rules.upsert('cluster', vs(1));
    expect(time.pending).toEqual([0]);
  });

  it('delivers nothing after stop, and stop cancels a delivery that was due', () => {
    const time = new ManualTime();
    const rules = new RuleSet();
    let delivered = 0;
    const feed = new RouteTableFeed(rules, () => delivered++, time);
    feed.start();
    rules.upsert('cluster', vs(1));
    feed.stop();
    expect(time.pending).toEqual([]);
    rules.upsert('cluster', vs(2));
    time.advance(1000);
    expect(delivered).toBe(1);
  });

  it('on the real clock: 300 adds one at a time reach the consumer in at most two compiles', async () => {
    const rules = new RuleSet();
    const got: RouteTable[] = [];
    const feed = new RouteTableFeed(rules, (t) => got.push(t));
    feed.start();
    for (let i = 0; i < 300; i++) rules.upsert('cluster', vs(i));
    // Waited for: the second compile comes a gap after the first (longer when compiles are slow).
    await vi.waitFor(() => expect(got.length > 0 && classifyRequest(got.at(-1)!, { host: 'svc-299' }).matched).toBe(true), { timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 50));
    feed.stop();
    expect(got.length).toBeLessThanOrEqual(2);
  });
});
