// Proves the goodput gap the demo, the failover test and bench/failover.ts report, on made-up
// read logs whose answer is known: a steady connection never stalls, a stall that ends with the
// backlog is back at the backlog's read, one that resumes at its old pace a share of the window
// later, a wobble just before the stall does not hide it, one that never resumes is Infinity.
import { describe, expect, it } from 'vitest';
import { bytesAt, goodputGap, type GoodputSample } from '../../src/lab/goodput.js';

const MS = 1_000_000n;
const at = (ms: number) => BigInt(Math.round(ms * 1e6));

/** 1 KiB read every 5 ms from 0 to `toMs`, except in [stallFrom, stallTo); `backlog`: what was missed arrives at stallTo. */
function reads(toMs: number, stall?: { from: number; to: number; backlog: boolean }): GoodputSample[] {
  const out: GoodputSample[] = [];
  let bytes = 0;
  for (let t = 5; t <= toMs; t += 5) {
    if (stall && t >= stall.from && t < stall.to) continue;
    if (stall && t === stall.to && stall.backlog) bytes += 1024 * ((stall.to - stall.from) / 5);
    bytes += 1024;
    out.push({ at: at(t), bytes });
  }
  return out;
}

describe('goodputGap', () => {
  const fault = at(2000);

  it('a steady connection never stalls', () => {
    const g = goodputGap(reads(4000), fault);
    expect(g).toEqual({ rateBefore: expect.closeTo(204_800, -2), stalled: false, gapMs: 0 });
  });

  it('a stall that ends with its backlog is back at the read that brings the backlog', () => {
    const g = goodputGap(reads(4000, { from: 2000, to: 2300, backlog: true }), fault);
    expect(g.stalled).toBe(true);
    expect(g.gapMs).toBe(300);
  });

  it('a stall that resumes at the old pace is back once a window holds 80 % of it again', () => {
    // 50 ms window, 80 %: 8 of the 10 reads a window holds, the 8th read after the stall.
    const g = goodputGap(reads(4000, { from: 2000, to: 2300, backlog: false }), fault);
    expect(g.gapMs).toBe(335);
  });

  it('a wobble just before the stall does not hide the stall', () => {
    // Reads late at 1975-1995, caught up at 2005 (a first short dip), then the stall from 2010.
    const log: GoodputSample[] = [];
    let bytes = 0;
    for (let t = 5; t <= 4000; t += 5) {
      if ((t >= 1975 && t <= 1995) || (t >= 2010 && t < 2500)) continue;
      bytes += 1024 * (t === 2005 ? 6 : t === 2500 ? 99 : 1);
      log.push({ at: at(t), bytes });
    }
    const g = goodputGap(log, fault);
    expect(g.gapMs).toBe(500);
  });

  it('a connection not back by the end of the log is Infinity; a dip long after the fault is not its', () => {
    expect(goodputGap(reads(4000, { from: 2000, to: 9000, backlog: true }), fault, { end: at(4000) }).gapMs).toBe(Infinity);
    expect(goodputGap(reads(4000, { from: 2300, to: 2600, backlog: true }), fault).stalled).toBe(false);
    expect(goodputGap(reads(4000, { from: 2300, to: 2600, backlog: true }), fault, { startWithinMs: 400 }).gapMs).toBe(600);
  });

  it('needs reads from before the fault, with something in them', () => {
    expect(() => goodputGap(reads(4000).filter((r) => r.at > at(1500)), fault)).toThrow(/not reading 1000 ms before the fault/);
    expect(() => goodputGap([{ at: 0n, bytes: 0 }, { at: at(3000), bytes: 0 }], fault)).toThrow(/carried nothing/);
  });

  it('reads bytes as of the last read at or before an instant', () => {
    const log = reads(100);
    expect([bytesAt(log, 0n), bytesAt(log, at(5)), bytesAt(log, at(7)), bytesAt(log, 200n * MS)]).toEqual([0, 1024, 1024, 20 * 1024]);
  });
});
