/**
 * Failover as the wire and the users see it, and the cost of probing, in the namespace lab with
 * `wansteer agent` (the build that ships) at its default probe settings (100 ms interval, 300 ms
 * timeout, down after 3, up after 10), and a second agent with `probe.profile: fast`:
 *
 * - carrier loss (wan1's far end set down) and a blackhole (every packet over wan1 lost on its
 *   path, carrier up), RUNS runs each at a random phase against the probe clock; the fault's
 *   instant is taken on the wire: when the UDP flow's last packet came in by wan1 (the command
 *   that makes a fault can take tens of ms to start on a loaded machine). In each run:
 *   the time from the fault to the first packet of a steered 1 kpps UDP flow arriving by wan0
 *   (the datapath moved); and, for FLOWS steered TCP uploads, the time until each delivers again
 *   at >= 80 % of its rate before, as the cloud's service reads it (src/lab/goodput.ts: what a
 *   user feels). Then the fault is removed, and the failback is measured the same way: from the
 *   first UDP packet back on wan1, how long the uploads stayed below 80 % (0: not at all), and
 *   how many segments TCP retransmitted (a move back must not throw flows into loss recovery);
 * - the blackhole again with the fast profile;
 * - added delay beyond an RTT SLA (+80 ms on wan1's way back against a 50 ms SLA, the lab's delay
 *   line): the time until the SLA policy's flow arrives by wan0, and after the delay is removed
 *   until it is back on wan1 — both set by the 50-probe RTT window, not by detection;
 * - probe traffic per link (counted in the cloud), and what probing costs in CPU: three idle
 *   agents side by side in three labs — probing at the defaults, probing with the fast profile,
 *   and judging links by carrier alone — measured over the same 10 s rounds; the difference per
 *   link, and the wholes; the agent's `ip monitor` child; and the event loop's wake-ups per
 *   second (voluntary context switches), which most of that CPU follows on a VM and which,
 *   unlike CPU time, does not move with the load others put on the machine.
 *
 * Targets (issues 6 and 15): first packet after carrier loss <= 100 ms, after a blackhole <= 1 s;
 * goodput back after carrier loss <= 150 ms p95, after a blackhole <= 700 ms p95 (defaults) and
 * <= 300 ms p95 (fast profile); probing < 1 % of a core per link, either profile.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FailoverLab, ms } from '../test/links/failover-lab.js';
import { IngressCounters } from '../test/helpers/netns.js';
import { buildShippedAgent, type Figure, median, report, requireRoot } from './lib.js';

const RUNS = Number(process.env.FAILOVER_RUNS ?? 10);
const FLOWS = Number(process.env.FAILOVER_FLOWS ?? 4);
const SLA_TRIALS = Number(process.env.FAILOVER_SLA_TRIALS ?? 3);
const ROUNDS = Number(process.env.FAILOVER_CPU_ROUNDS ?? 6);
const ROUND_MS = 10_000;
/** How long after a fault the uploads are watched: past a 3 s neighbour stall, past TCP's third retransmission. */
const WATCH_MS = 3500;
/** Each upload's pace. */
const KIB_PER_S = 200;
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));
const NS_PER_MS = 1_000_000n;

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 10 ms
}

/** Voluntary context switches of the process's main thread (its event loop): how often it slept and woke. */
function wakeups(pid: number): number {
  return Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

/** The agent's children: the `ip monitor` of the carrier watch. */
function childrenCpu(pid: number): number {
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  return kids.reduce((sum, k) => sum + cpuSeconds(Number(k)), 0);
}

/** Nearest-rank percentile. */
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]!;
}

type FaultKind = 'carrier' | 'blackhole';

/** One fault kind's runs: per run the first packet, per flow the gaps; counters per run. */
interface Runs {
  firstPacket: number[];
  /** Fault -> goodput back, per flow (ms); flows not back within WATCH_MS count as WATCH_MS. */
  goodput: number[];
  notBack: number;
  /** Failback -> goodput back, per flow (0: never below 80 %). */
  failback: number[];
  failbackRetrans: number[];
  /** Of those, found spurious by a D-SACK (the original arrived too, late: reordering, not loss). */
  failbackSpurious: number[];
  /** Segments TCP would not resend because a copy was still queued in the host, per run. */
  hostQueued: number[];
  /** Runs started again because the flows left wan1 before the fault: the link was called down while fine. */
  spurious: number;
}

/** A lab with its agent, a UDP stream and FLOWS uploads on the `plain` policy (wan1 first). */
class Rig {
  private constructor(
    readonly lab: FailoverLab,
    readonly udp: number,
    readonly sports: number[],
  ) {}

  static async start(tag: string, cli: string[], probes: true | 'fast', base: number): Promise<Rig> {
    const lab = await FailoverLab.start(tag, { cli, probes });
    const sports = Array.from({ length: FLOWS }, (_, i) => base + 1 + i);
    lab.steer(base, 'plain', 3600);
    lab.upload(sports, 'plain', 3600, KIB_PER_S);
    return new Rig(lab, base, sports);
  }

  async run(kind: FaultKind, into: Runs): Promise<void> {
    const { lab, udp } = this;
    const inject = (on: boolean) => (kind === 'carrier' ? lab.carrier(!on) : lab.drop(on ? 100 : null));
    let c0: Record<string, number>;
    let fault: bigint;
    let moved: bigint;
    for (;;) {
      const settled = await lab.arrival(udp, 'c1', process.hrtime.bigint(), 20_000);
      await sleep(1500 + Math.random() * 100); // a steady second for the rate before; a random phase against the probe clock
      c0 = lab.tcpCounters();
      const started = process.hrtime.bigint();
      const issued = inject(true);
      moved = await lab.arrival(udp, 'c0', settled + 1n, 5000);
      if (moved >= started) {
        // The fault's instant on the wire: the stream's last packet by wan1 (1 ms resolution).
        fault = lab.onset(udp, moved) ?? issued;
        break;
      }
      into.spurious++; // moved before the fault, with none: not a run to measure
      inject(false);
    }
    await lab.meter.until(fault + BigInt(WATCH_MS) * NS_PER_MS);
    const c1 = lab.tcpCounters();
    const healed = inject(false);
    const back = await lab.arrival(udp, 'c1', healed, 10_000);
    await lab.meter.until(back + 1500n * NS_PER_MS);
    const c2 = lab.tcpCounters();
    into.firstPacket.push(ms(moved - fault));
    for (const sport of this.sports) {
      const gap = lab.meter.gap(sport, fault, { end: fault + BigInt(WATCH_MS) * NS_PER_MS }).gapMs;
      if (gap === Infinity) into.notBack++;
      into.goodput.push(Math.min(gap, WATCH_MS));
      // From just before the first packet back: the policy write precedes it by the sink's reaction.
      into.failback.push(Math.min(lab.meter.gap(sport, back - 20n * NS_PER_MS).gapMs, 1500));
    }
    into.hostQueued.push(c1.TcpExtTCPSpuriousRtxHostQueues! - c0.TcpExtTCPSpuriousRtxHostQueues!);
    into.failbackRetrans.push(c2.TcpRetransSegs! - c1.TcpRetransSegs!);
    into.failbackSpurious.push(c2.TcpExtTCPDSACKRecvSegs! - c1.TcpExtTCPDSACKRecvSegs!);
  }
}

async function runs(rig: Rig, kind: FaultKind): Promise<Runs> {
  const r: Runs = { firstPacket: [], goodput: [], notBack: 0, failback: [], failbackRetrans: [], failbackSpurious: [], hostQueued: [], spurious: 0 };
  for (let i = 0; i < RUNS; i++) await rig.run(kind, r);
  const f = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' ');
  console.log(`${rig.lab.lab.tag} ${kind}: first packet (ms) ${f(r.firstPacket)}`);
  console.log(`  goodput back (ms) ${f(r.goodput)}${r.notBack ? ` (${r.notBack} not back within ${WATCH_MS} ms)` : ''}`);
  console.log(`  failback dip (ms) ${f(r.failback)}; retransmitted segments per failback ${f(r.failbackRetrans)} (D-SACKed: ${f(r.failbackSpurious)}); host-queued per fault ${f(r.hostQueued)}; runs redone after a move with no fault: ${r.spurious}`);
  return r;
}

/** median, p95 and max of `xs` as figures named `what, …`; the target on p95 (and on max with `maxToo`). */
function spread(what: string, xs: number[], unit: string, target?: string, maxToo = false): Figure[] {
  const t = (on: boolean) => (target && on ? { target } : {});
  return [
    { name: `${what}, median`, value: median(xs), unit },
    { name: `${what}, p95`, value: percentile(xs, 95), unit, ...t(true) },
    { name: `${what}, max`, value: Math.max(...xs), unit, ...t(maxToo) },
  ];
}

/**
 * CPU of each process over the same ROUNDS windows of ROUND_MS with no user traffic, in cores
 * (a column per process, a row per round). Measuring side by side, not one after the other,
 * keeps whatever else the machine does out of the difference.
 */
async function idleCpu(pids: number[]): Promise<number[][]> {
  const rounds: number[][] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const before = pids.map(cpuSeconds);
    const t0 = performance.now();
    await sleep(ROUND_MS);
    const seconds = (performance.now() - t0) / 1000;
    rounds.push(pids.map((p, i) => (cpuSeconds(p) - before[i]!) / seconds));
  }
  return rounds;
}

/** +80 ms against a 50 ms RTT SLA: [fault -> moved, delay removed -> back], in ms. */
async function slaTrial(rig: FailoverLab, sport: number): Promise<[number, number]> {
  await rig.waitLinks((ls) => ls.every((l) => l.up && (l.rttMs ?? 100) < 5 && (l.lossPercent ?? 100) < 2), 20_000, 'a clean probe window');
  await rig.arrival(sport, 'c1', process.hrtime.bigint(), 10_000);
  const fault = await rig.delay(80);
  const moved = await rig.arrival(sport, 'c0', fault, 15_000);
  const clear = await rig.delay(0);
  const back = await rig.arrival(sport, 'c1', clear, 20_000);
  return [ms(moved - fault), ms(back - clear)];
}

async function main(): Promise<void> {
  if (!requireRoot('failover')) return;
  const dir = mkdtempSync(join(tmpdir(), 'wansteer-bench-failover-'));
  try {
    await run(buildShippedAgent(dir).cli);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface ProbeCost {
  /** Per round, in cores: probing at the defaults, with the fast profile, carrier only. */
  rounds: number[][];
  /** Event-loop wake-ups per second, same three agents: what CPU on a loaded VM mostly follows, without its noise. */
  wakeups: number[];
  children: number;
  pps: number;
  bytes: number;
  fastPps: number;
}

/** Three idle agents side by side; what probing costs is the difference, round by round. */
async function probeCost(cli: string[]): Promise<ProbeCost> {
  const labs = await Promise.all([FailoverLab.start('bench-idle', { cli }), FailoverLab.start('bench-idle-fast', { cli, probes: 'fast' }), FailoverLab.start('bench-noprobe', { cli, probes: false })]);
  try {
    await sleep(5000); // start-up work (JIT, first reconciles) done
    const counters = labs.slice(0, 2).map((l) => IngressCounters.install(l.lab, [{ name: 'probe', match: 'udp dport 862' }]));
    const before = counters.map((c) => c.readBoth());
    const t0 = performance.now();
    const kids0 = childrenCpu(labs[0]!.agentPid);
    const woke = labs.map((l) => wakeups(l.agentPid));
    const rounds = await idleCpu(labs.map((l) => l.agentPid));
    const secs = (performance.now() - t0) / 1000;
    const wakeupsPerSecond = labs.map((l, i) => (wakeups(l.agentPid) - woke[i]!) / secs);
    const after = counters.map((c) => c.readBoth());
    const rate = (i: number, what: 'packets' | 'bytes') => ((after[i]![what]['probe|c1'] ?? 0) - (before[i]![what]['probe|c1'] ?? 0)) / secs;
    return { rounds, wakeups: wakeupsPerSecond, children: (childrenCpu(labs[0]!.agentPid) - kids0) / secs, pps: rate(0, 'packets'), bytes: rate(0, 'bytes'), fastPps: rate(1, 'packets') };
  } finally {
    await Promise.all(labs.map((l) => l.stop()));
  }
}

async function run(cli: string[]): Promise<void> {
  const figures: Figure[] = [];
  const cost = await probeCost(cli);
  const pct = (xs: number[]) => xs.map((x) => (x * 100).toFixed(2)).join(' ');
  const column = (i: number) => cost.rounds.map((r) => r[i]!);
  console.log(`idle agent CPU per ${ROUND_MS / 1000} s round (% of a core): probing ${pct(column(0))}; fast profile ${pct(column(1))}; carrier only ${pct(column(2))}`);
  const perLink = cost.rounds.map((r) => (r[0]! - r[2]!) / 2);
  const fastPerLink = cost.rounds.map((r) => (r[1]! - r[2]!) / 2);

  const rig = await Rig.start('bench', cli, true, 46001);
  let carrier: Runs;
  let blackhole: Runs;
  const sla: [number, number][] = [];
  try {
    carrier = await runs(rig, 'carrier');
    blackhole = await runs(rig, 'blackhole');
    rig.lab.steer(46101, 'rtt-50', 3600);
    for (let i = 0; i < SLA_TRIALS; i++) sla.push(await slaTrial(rig.lab, 46101));
    console.log(`RTT SLA trials (moved, back; ms): ${sla.map(([a, b]) => `${a.toFixed(0)}/${b.toFixed(0)}`).join(' ')}`);
  } finally {
    await rig.lab.stop();
  }
  const fastRig = await Rig.start('bench-fast', cli, 'fast', 47001);
  let fast: Runs;
  try {
    fast = await runs(fastRig, 'blackhole');
  } finally {
    await fastRig.lab.stop();
  }

  const flows = RUNS * FLOWS;
  const goodput = (fault: string) => `${fault} -> goodput back (>= 80 % of the rate before), TCP uploads`;
  const failback = (fault: string) => `${fault} healed -> failback: uploads below 80 % of their rate`;
  figures.push(
    ...spread('carrier loss -> first packet on the other link', carrier.firstPacket, 'ms', '<= 100', true),
    ...spread(goodput('carrier loss'), carrier.goodput, 'ms', '<= 150'),
    { name: 'carrier loss: segments TCP held back (copy still queued in the host: TcpExtTCPSpuriousRtxHostQueues), per run, max', value: Math.max(...carrier.hostQueued), unit: 'segments' },
    ...spread('blackhole -> first packet on the other link', blackhole.firstPacket, 'ms', '<= 1000', true),
    ...spread(goodput('blackhole'), blackhole.goodput, 'ms', '<= 700'),
    ...spread(`blackhole, probe.profile fast -> first packet on the other link`, fast.firstPacket, 'ms'),
    ...spread(goodput('blackhole, probe.profile fast'), fast.goodput, 'ms', '<= 300'),
    ...spread(failback('carrier loss'), carrier.failback, 'ms'),
    ...spread(failback('blackhole'), blackhole.failback, 'ms'),
    { name: 'failback: segments TCP retransmitted from the repair to 1.5 s after the move back, all uploads, per run, max', value: Math.max(...carrier.failbackRetrans, ...blackhole.failbackRetrans, ...fast.failbackRetrans), unit: 'segments' },
    { name: 'failback: of those, D-SACKed (spurious: the original arrived too, reordered), all runs', value: [...carrier.failbackSpurious, ...blackhole.failbackSpurious, ...fast.failbackSpurious].reduce((a, b) => a + b, 0), unit: 'segments' },
    { name: 'failback: segments retransmitted, all runs', value: [...carrier.failbackRetrans, ...blackhole.failbackRetrans, ...fast.failbackRetrans].reduce((a, b) => a + b, 0), unit: 'segments' },
    { name: 'moves with no fault while waiting for a run (a link called down while fine), probe.profile fast', value: fast.spurious, unit: 'moves' },
    { name: 'moves with no fault while waiting for a run, default probes', value: carrier.spurious + blackhole.spurious, unit: 'moves' },
    { name: 'runs per fault kind (each at a random phase against the probe clock)', value: RUNS, unit: 'runs' },
    { name: `TCP uploads per fault kind (${FLOWS} a run, ${KIB_PER_S} KiB/s each)`, value: flows, unit: 'flows' },
    { name: `+80 ms beyond a 50 ms RTT SLA -> SLA policy's first packet on the other link, median of ${SLA_TRIALS}`, value: median(sla.map(([a]) => a)), unit: 'ms' },
    { name: `delay removed -> back on the preferred link (RTT under 45 ms: SLA margin), median of ${SLA_TRIALS}`, value: median(sla.map(([, b]) => b)), unit: 'ms' },
    { name: 'probe packets per link (one way, to the reflector)', value: cost.pps, unit: 'packets/s' },
    { name: 'probe traffic per link (one way, IP bytes)', value: cost.bytes, unit: 'bytes/s' },
    { name: `probing, per link: idle agent CPU with probes minus without, side by side, median of ${ROUNDS} rounds`, value: median(perLink) * 100, unit: '% of a core', target: '< 1' },
    { name: 'probing, per link: worst round', value: Math.max(...perLink) * 100, unit: '% of a core', target: '< 1' },
    { name: 'probe.profile fast: probe packets per link (one way)', value: cost.fastPps, unit: 'packets/s' },
    { name: `probe.profile fast, per link: idle agent CPU with fast probes minus without, median of ${ROUNDS} rounds`, value: median(fastPerLink) * 100, unit: '% of a core', target: '<= 1' },
    { name: 'probe.profile fast, per link: worst round', value: Math.max(...fastPerLink) * 100, unit: '% of a core', target: '<= 1' },
    { name: 'probing, per link: event-loop wake-ups per second added (voluntary context switches, with probes minus without)', value: (cost.wakeups[0]! - cost.wakeups[2]!) / 2, unit: 'wake-ups/s' },
    { name: 'probe.profile fast, per link: event-loop wake-ups per second added', value: (cost.wakeups[1]! - cost.wakeups[2]!) / 2, unit: 'wake-ups/s' },
    { name: 'idle agent without probes: event-loop wake-ups per second (the 20 ms tick, timers)', value: cost.wakeups[2]!, unit: 'wake-ups/s' },
    { name: 'idle agent probing two links, whole agent (upper bound of probing), median', value: median(column(0)) * 100, unit: '% of a core' },
    { name: 'idle agent probing two links with the fast profile, whole agent, median', value: median(column(1)) * 100, unit: '% of a core' },
    { name: 'idle agent without probes (carrier poll, timers), whole agent, median', value: median(column(2)) * 100, unit: '% of a core' },
    { name: "idle agent's ip monitor child (carrier events)", value: cost.children * 100, unit: '% of a core' },
  );
  report('failover', figures);
}

await main();
