// Proves the link health machine: down on carrier loss at once or after N misses in a row
// (counted in send order and in interval units), up after M answers, and the window figures.
import { describe, expect, it } from 'vitest';
import { LinkHealthMachine, type ProbeSample } from '../../src/links/health.js';

const settings = { downAfter: 3, upAfter: 4, window: 10 };
const ok = (seq: number, rttMs = 10): ProbeSample => ({ seq, rttMs });
const lost = (seq: number, weight?: number): ProbeSample => ({ seq, lost: true, ...(weight !== undefined ? { weight } : {}) });

/** Feed samples and return `up` after each. */
function run(events: (ProbeSample | { carrier: boolean })[], m = new LinkHealthMachine(settings)): boolean[] {
  return events.map((e) => {
    if ('carrier' in e) m.carrier(e.carrier);
    else m.sample(e);
    return m.up;
  });
}

describe('LinkHealthMachine: transitions', () => {
  const T = true;
  const F = false;
  const cases: { what: string; events: (ProbeSample | { carrier: boolean })[]; up: boolean[] }[] = [
    { what: 'down after downAfter misses in a row', events: [ok(0), lost(1), lost(2), lost(3)], up: [T, T, T, F] },
    { what: 'an answer in between resets the count', events: [lost(0), lost(1), ok(2), lost(3), lost(4)], up: [T, T, T, T, T] },
    { what: 'a miss older than an answered probe does not count', events: [lost(1), ok(3), lost(2), lost(4), lost(5)], up: [T, T, T, T, T] },
    { what: 'fast-mode misses weigh their share of an interval', events: [lost(0), ...[1, 2, 3, 4, 5, 6, 7, 8, 9].map((s) => lost(s, 0.2)), lost(10, 0.2)], up: [T, T, T, T, T, T, T, T, T, T, F] },
    { what: 'up again only after upAfter answers in a row', events: [lost(0), lost(1), lost(2), ok(3), ok(4), ok(5), lost(6), ok(7), ok(8), ok(9), ok(10)], up: [T, T, F, F, F, F, F, F, F, F, T] },
    { what: 'carrier loss is down at once', events: [ok(0), { carrier: false }], up: [T, F] },
    { what: 'carrier back still waits for upAfter answers', events: [{ carrier: false }, { carrier: true }, ok(1), ok(2), ok(3), ok(4)], up: [F, F, F, F, F, T] },
    { what: 'answers without carrier do not bring it up', events: [{ carrier: false }, ok(1), ok(2), ok(3), ok(4), ok(5)], up: [F, F, F, F, F, F] },
  ];
  for (const c of cases) it(c.what, () => expect(run(c.events)).toEqual(c.up));

  it('a link without a probe follows its carrier alone', () => {
    const m = new LinkHealthMachine(settings, false);
    expect(run([{ carrier: false }, { carrier: true }], m)).toEqual([false, true]);
  });

  it('names the reason', () => {
    const m = new LinkHealthMachine(settings);
    run([lost(0), lost(1), lost(2)], m);
    expect(m.view().reason).toBe('3 probes lost in a row (3 intervals without an answer)');
    m.carrier(false);
    expect(m.view().reason).toBe('carrier lost');
  });
});

describe('LinkHealthMachine: window figures', () => {
  it('RTT mean, loss share and jitter over the last `window` samples', () => {
    const m = new LinkHealthMachine(settings);
    run([ok(0, 10), ok(1, 14), lost(2), ok(3, 12), ok(4, 12)], m);
    // jitter over consecutive answered pairs: |14-10|, |12-14|, |12-12| -> 2
    expect(m.view()).toMatchObject({ rttMs: 12, lossPercent: 20, jitterMs: 2 });
    for (let s = 5; s < 15; s++) m.sample(ok(s, 20));
    expect(m.view()).toMatchObject({ rttMs: 20, lossPercent: 0, jitterMs: 0 });
  });

  it('a 20%-lossy link stays up over 100 000 probes (the suspect-mode weighting)', () => {
    // Proves the anti-flap claim: random 20% loss as the prober reports it (after a miss the
    // prober samples 5x faster, weight 0.2) never adds up to 3 intervals of misses.
    const m = new LinkHealthMachine({ downAfter: 3, upAfter: 10, window: 50 });
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    let fast = false;
    let downs = 0;
    for (let seq = 0; seq < 100_000; seq++) {
      const isLost = rand() < 0.2;
      m.sample(isLost ? lost(seq, fast ? 0.2 : 1) : ok(seq));
      if (!m.up) downs++;
      fast = isLost; // suspect mode after a miss, back to normal after an answer
    }
    expect(downs).toBe(0);
    expect(m.view().lossPercent).toBeLessThan(40);
  });
});
