// Proves flow ageing: idle flows go after flowIdleSeconds, live ones stay, on the injected timer.
import { describe, expect, it } from 'vitest';
import { MemoryDatapath } from '../../src/datapath/index.js';
import { FlowAgeing, type AgeingTimers } from '../../src/steering/ageing.js';

const SEC = 1_000_000_000n;

function fakeTimers(): AgeingTimers & { tick(): void; intervals: number[] } {
  let fn: (() => void) | undefined;
  const intervals: number[] = [];
  return {
    intervals,
    setInterval: (f, ms) => {
      fn = f;
      intervals.push(ms);
      return 1;
    },
    clearInterval: () => {
      fn = undefined;
    },
    tick: () => fn?.(),
  };
}

describe('FlowAgeing', () => {
  it('removes flows idle longer than flowIdleSeconds and keeps the rest', () => {
    // Proves the ageing rule at the boundary.
    const dp = new MemoryDatapath(1024, {});
    const t0 = 1000n * SEC;
    dp.upsertFlow({ protocol: 'tcp', src: '10.0.0.1', sport: 1, dst: '10.0.0.2', dport: 2 }, 1, t0);
    dp.upsertFlow({ protocol: 'tcp', src: '10.0.0.1', sport: 3, dst: '10.0.0.2', dport: 2 }, 1, t0 + 200n * SEC);
    const ageing = new FlowAgeing({ datapath: dp, idleSeconds: 300 });
    expect(ageing.runOnce(t0 + 300n * SEC)).toBe(0);
    expect(ageing.runOnce(t0 + 301n * SEC)).toBe(1);
    expect(dp.listFlows().map((f) => f.sport)).toEqual([3]);
    expect(ageing.aged).toBe(1);
  });

  it('runs on its timer at a quarter of the idle time, clamped, until stopped', () => {
    // Proves the schedule and that errors are counted, never thrown.
    const timers = fakeTimers();
    let runs = 0;
    const ageing = new FlowAgeing({
      datapath: { ageFlows: () => { runs++; if (runs === 2) throw new Error('EPERM'); return 0; } },
      idleSeconds: 300,
      timers,
    });
    ageing.start();
    ageing.start();
    timers.tick();
    timers.tick();
    ageing.stop();
    timers.tick();
    expect(timers.intervals).toEqual([60_000]);
    expect(runs).toBe(2);
    expect(ageing.errors).toBe(1);
    expect(new FlowAgeing({ datapath: { ageFlows: () => 0 }, idleSeconds: 1 }).intervalMs).toBe(1000);
    expect(new FlowAgeing({ datapath: { ageFlows: () => 0 }, idleSeconds: 20 }).intervalMs).toBe(5000);
  });
});
