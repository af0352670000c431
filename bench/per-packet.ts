/**
 * Per-packet cost under BPF_PROG_TEST_RUN, measured so that it means the same on any CPU: every
 * program beside the no-op floor measured the same way, round by round in one run, and the
 * steering program's hits as a ratio to the reference (bpf/ref_lru.bpf.c: read the 5-tuple,
 * one LRU lookup, return), the cost any flow-table datapath pays.
 *
 * Two ways to run a program (a Mode):
 *   repeat  one call; the kernel reruns the program on the same skb `REPEAT` times and reports
 *           the mean: the steady-state cost, caches warm. A rewrite happens on the first run only.
 *   fresh   one run per call, each on a new skb: every run pays the rewrite, on colder caches.
 *           The kernel's timer brackets that single run, so its own overhead (two clock reads,
 *           softirq off and on) is in every figure; the no-op floor measured this way, not the
 *           repeat one, is what cancels it.
 * Rounds interleave the programs, so drift on a shared machine hits them alike; a figure is the
 * median over rounds of that round's difference or ratio.
 */
import * as native from '../native/libbpf.js';
import type { Figure } from './lib.js';
import { median } from './lib.js';

export type Mode = 'repeat' | 'fresh';

const REPEAT = 200_000;
/** Fresh runs of each program per round; the round's figure is their middle half's mean. */
const FRESH_CALLS = 4_000;

/** One program on one packet, and what a run must return: otherwise it measures something else. */
export interface Case {
  fd: number;
  packet: Buffer;
  verdict: number;
  /** A further check on the packet as the program left it. */
  check?: (out: Buffer) => boolean;
}

/** A case with its buffers allocated once, so the calls between runs allocate nothing. */
class Runner {
  private readonly out: Buffer;
  private readonly result: native.TestRunResult = { retval: 0, durationNs: 0, dataSizeOut: 0, ctxSizeOut: 0 };

  constructor(
    readonly name: string,
    private readonly c: Case,
  ) {
    this.out = Buffer.alloc(c.packet.length + 256);
  }

  /** Run `repeat` times; the kernel's mean ns per run. */
  run(repeat: number): number {
    const rc = native.progTestRun(this.c.fd, this.c.packet, this.out, repeat, this.result);
    if (rc < 0) throw new Error(`${this.name}: BPF_PROG_TEST_RUN failed (errno ${-rc})`);
    return this.result.durationNs;
  }

  /** One run on a fresh skb: does the program do what this case says it does? */
  verify(): void {
    this.run(1);
    const out = this.out.subarray(0, this.result.dataSizeOut);
    if (this.result.retval !== this.c.verdict || (this.c.check && !this.c.check(out))) {
      throw new Error(`${this.name}: verdict ${this.result.retval} (want ${this.c.verdict}) or output not as expected: not measuring`);
    }
  }

  sample(mode: Mode): number {
    if (mode === 'repeat') return this.run(REPEAT);
    const ns = new Float64Array(FRESH_CALLS);
    for (let i = 0; i < FRESH_CALLS; i++) ns[i] = this.run(1);
    return middleHalfMean(ns);
  }
}

/**
 * Mean of the values between the first and third quartile: robust to the interrupts and cache
 * storms of a shared machine like a median, but not stuck to whole nanoseconds as a median of
 * the kernel's integer timings would be.
 */
function middleHalfMean(xs: Float64Array): number {
  const s = Float64Array.from(xs).sort();
  const lo = Math.floor(s.length / 4);
  const hi = Math.ceil((3 * s.length) / 4);
  let sum = 0;
  for (let i = lo; i < hi; i++) sum += s[i]!;
  return sum / (hi - lo);
}

/** Every case's ns per packet, one sample per round, the cases interleaved within each round. */
export function measure(cases: Record<string, Case>, mode: Mode, rounds: number): Record<string, number[]> {
  const runners = Object.entries(cases).map(([name, c]) => new Runner(name, c));
  for (const r of runners) r.verify();
  const samples: Record<string, number[]> = {};
  for (const r of runners) samples[r.name] = [];
  for (let round = 0; round < rounds; round++) {
    for (const r of runners) samples[r.name]!.push(r.sample(mode));
  }
  return samples;
}

/** How the samples of one mode become figures: which case is the floor, which are compared. */
export interface Comparison {
  label: string;
  floor: string;
  /** Context figures: ns over the floor. */
  context: { name: string; case: string }[];
  /**
   * Ns over the floor, and that as a multiple of a reference's (`case`'s name for it:
   * "reference" unless given). Only ratios to the plain reference carry the target.
   */
  compared: { name: string; case: string; reference: string; referenceName?: string }[];
  /** The ratio a case may reach over the plain reference, e.g. 1.5. */
  maxRatio: number;
}

export function figures(samples: Record<string, number[]>, c: Comparison): Figure[] {
  const floor = samples[c.floor]!;
  const over = (name: string) => samples[name]!.map((ns, i) => ns - floor[i]!);
  const out: Figure[] = [{ name: `${c.label}: no-op floor`, value: median(floor), unit: 'ns/pkt' }];
  for (const f of c.context) {
    out.push({ name: `${c.label}: ${f.name}, over floor`, value: median(over(f.case)), unit: 'ns/pkt' });
  }
  const shown = new Set<string>();
  for (const f of c.compared) {
    const mine = over(f.case);
    const ref = over(f.reference);
    if (!shown.has(f.case)) out.push({ name: `${c.label}: ${f.name}, over floor`, value: median(mine), unit: 'ns/pkt' });
    shown.add(f.case);
    out.push({
      name: `${c.label}: ${f.name} / ${f.referenceName ?? 'reference'}`,
      value: median(mine.map((ns, i) => ns / ref[i]!)),
      unit: '×',
      ...(f.referenceName ? {} : { target: `<= ${c.maxRatio}` }),
    });
  }
  return out;
}
