/**
 * What bench/envoy.ts and bench/envoy-istiod.ts share: how a window of load through an Envoy is
 * measured on a shared 2-core machine. wrk drives the proxy; /proc tells what the proxy's CPU did
 * per request and what everything else on the machine did meanwhile, so that a window in which a
 * neighbour took the proxy's core can be told apart (see bench/envoy.ts for the whole method).
 */
import { execFile, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { promisify } from 'node:util';
import { LabEnvoy, type Lab } from '../src/lab/index.js';
import { median, type Figure } from './lib.js';

export const CONNECTIONS = 16;
export const PINNED = cpus().length >= 2;
export const PROXY_CPU = 0;
export const LOAD_CPU = 1;
/**
 * Priority of the measured processes (proxies, upstream, wrk): on a shared machine they must get
 * their cores. The kernel groups processes by session (autogroup) and shares the CPU between
 * groups, so a plain `nice` only ranks a process within its own session: each measured process
 * starts in a session of its own (setsid) whose autogroup is set to this niceness.
 */
export const NICE = Number(process.env.WANSTEER_BENCH_NICE ?? -10);
/**
 * A round counts when, in each of its windows, everything but the measured proxy took at most
 * this % of the proxy's core: a round in which a neighbour took the core measures the neighbour.
 * Decided per round, so every configuration loses the same rounds; the figures say how many
 * counted, and all rounds stay in the JSON. With fewer than MIN_CLEAN clean rounds, all count.
 */
export const DISTURBED_PCT = 50;
const MIN_CLEAN = 3;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

export interface WrkResult {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

/** One measured window: wrk's result and what the CPUs did meanwhile. */
export interface Window extends WrkResult {
  /** The proxy's CPU time per request, µs. */
  proxyUsPerRequest: number;
  /** The proxy's CPU, % of its core. */
  proxyPct: number;
  /** Processes not of this benchmark, % of one core, summed over all cores. */
  othersPct: number;
  /** Everything but the measured proxy on the proxy's core (other processes, mostly), % of it. */
  othersOnProxyCorePct: number;
  /** Time the hypervisor gave the vCPUs to others, % of one core, summed over all cores. */
  stealPct: number;
}

// CPU accounting --------------------------------------------------------------------------------


interface CpuLine {
  busy: number;
  steal: number;
  total: number;
}

interface Snapshot {
  at: number;
  cpus: CpuLine[];
  /** Ticks of this benchmark: itself, its reaped children (wrk, ...) and its live descendants. */
  ours: number;
  proxy: number;
}

/** /proc/<pid>/stat's fields after the command, [0] being the state (field 3). */
function procFields(pid: number | 'self'): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** utime + stime (+ cutime + cstime: reaped children) of a process, in ticks. */
function ticks(fields: string[] | undefined, children: boolean): number {
  if (!fields) return 0;
  const [u, s, cu, cs] = [11, 12, 13, 14].map((i) => Number(fields[i]));
  return u! + s! + (children ? cu! + cs! : 0);
}

/** This process's live descendants. */
function descendants(root: number): number[] {
  const kids = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const ppid = Number(procFields(Number(name))?.[1]);
    if (!kids.has(ppid)) kids.set(ppid, []);
    kids.get(ppid)!.push(Number(name));
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const k of kids.get(pid) ?? []) {
      out.push(k);
      walk(k);
    }
  };
  walk(root);
  return out;
}

export function snapshot(proxyPid: number): Snapshot {
  const cpuLines: CpuLine[] = [];
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    // user nice system idle iowait irq softirq steal (guest and guest_nice are inside user).
    const [user, nice, system, idle, iowait, irq, softirq, steal] = m[2]!.split(/\s+/).map(Number) as number[];
    cpuLines[Number(m[1])] = { busy: user! + nice! + system!, steal: steal!, total: user! + nice! + system! + idle! + iowait! + irq! + softirq! + steal! };
  }
  // Ours: a descendant alive now and gone later is counted then in its parent's cutime.
  const ours = ticks(procFields('self'), true) + descendants(process.pid).reduce((n, pid) => n + ticks(procFields(pid), true), 0);
  return { at: Date.now(), cpus: cpuLines, ours, proxy: ticks(procFields(proxyPid), false) };
}

export function windowOf(before: Snapshot, after: Snapshot, wrk: WrkResult): Window {
  const seconds = (after.at - before.at) / 1000;
  const pct = (t: number) => (100 * t) / CLK_TCK / seconds;
  const sum = (f: (c: CpuLine) => number) => after.cpus.reduce((n, c, i) => n + f(c) - f(before.cpus[i]!), 0);
  const proxy = after.proxy - before.proxy;
  const core = (f: (c: CpuLine) => number) => f(after.cpus[PROXY_CPU]!) - f(before.cpus[PROXY_CPU]!);
  return {
    ...wrk,
    proxyUsPerRequest: ((proxy / CLK_TCK) * 1e6) / Math.max(1, wrk.requests),
    proxyPct: pct(proxy),
    // Clamped: /proc/stat's tick sampling and the processes' own times disagree a little.
    othersPct: Math.min(100 * after.cpus.length, Math.max(0, pct(sum((c) => c.busy) - (after.ours - before.ours)))),
    othersOnProxyCorePct: PINNED ? Math.max(0, (100 * (core((c) => c.busy) - proxy)) / Math.max(1, core((c) => c.total))) : NaN,
    stealPct: pct(sum((c) => c.steal)),
  };
}

/**
 * An Envoy that answers every request from memory ("ok"): the upstream, so that the application
 * costs nothing and what is measured is the proxy in front of it.
 */
export function upstreamBootstrap(address: string, port: number, adminPort: number): object {
  return {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } },
    static_resources: {
      listeners: [
        {
          name: 'upstream',
          address: { socket_address: { address, port_value: port } },
          filter_chains: [{ filters: [{
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: 'upstream',
              route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: 'ok\n' } } }] }] },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          }] }],
        },
      ],
    },
  };
}

/** The rendered Lua filter's source. */
export function luaSourceOf(docs: unknown[]): string {
  const m = /"default_source_code":\{"inline_string":("(?:[^"\\]|\\.)*")\}/.exec(JSON.stringify(docs));
  if (!m) throw new Error('no Lua filter in the render');
  return JSON.parse(m[1]!) as string;
}

/**
 * A copy of `tree` (plain JSON: objects, arrays, scalars) in which the value of every property
 * named `key` is `replace(value, copy)`, where `copy` copies a subtree the same way; and how many
 * it replaced. The bootstrap and render edits of the Envoy benchmarks are made with it.
 */
export function rewriteKey(tree: unknown, key: string, replace: (value: unknown, copy: (v: unknown) => unknown) => unknown): { out: unknown; replaced: number } {
  let replaced = 0;
  const copy = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(copy);
    if (v === null || typeof v !== 'object') return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === key) {
        out[k] = replace(x, copy);
        replaced++;
      } else out[k] = copy(x);
    }
    return out;
  };
  return { out: copy(tree), replaced };
}

/** The rendered objects with the Lua filter's source swapped for `source`. */
export function withLuaSource(docs: unknown[], source: string): unknown[] {
  const { out, replaced } = rewriteKey(docs, 'default_source_code', () => ({ inline_string: source }));
  if (replaced !== 1) throw new Error(`expected one Lua filter in the render, found ${replaced}`);
  return out as unknown[];
}

/** argv on `cpu` (when pinning), in a session of its own at the benchmark's niceness; the same pid. */
export function pinned(cpu: number, argv: string[]): string[] {
  const boost = NICE ? ['setsid', 'sh', '-c', 'echo "$0" > /proc/self/autogroup && exec nice -n "$0" "$@"', String(NICE)] : [];
  return [...boost, ...(PINNED ? ['taskset', '-c', String(cpu)] : []), ...argv];
}

export interface WrkRun {
  /** The network namespace wrk runs in. */
  netns: string;
  url: string;
  headers: readonly string[];
  seconds: number;
  /** A new connection per request (`connection: close`). */
  close?: boolean;
}

/**
 * wrk (1 thread, CONNECTIONS connections) on the load CPU, waited for without blocking the event
 * loop: a report tap's lines must keep being read, or its stdout pipe fills and it stops taking
 * reports.
 */
export async function wrk(run: WrkRun): Promise<WrkResult> {
  const args = ['wrk', '-t1', `-c${CONNECTIONS}`, `-d${run.seconds}s`, '--latency', ...run.headers.flatMap((h) => ['-H', h])];
  if (run.close) args.push('-H', 'connection: close');
  const { stdout: out } = await promisify(execFile)('nsenter', [`--net=/run/netns/${run.netns}`, '--', ...pinned(LOAD_CPU, [...args, run.url])]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const latency = (p: string) => {
    const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    if (!m) throw new Error(`wrk printed no ${p}th percentile:\n${out}`);
    return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
  };
  const errors = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0) + Number(/Socket errors:.*?timeout (\d+)/.exec(out)?.[1] ?? 0);
  if (!Number.isFinite(rps) || !Number.isFinite(requests)) throw new Error(`wrk printed no Requests/sec:\n${out}`);
  return { requests, rps, p50: latency('50'), p99: latency('99'), errors };
}

/** One window of wrk against the proxy whose pid is `proxyPid`, with the CPUs' accounts. */
export async function measure(proxyPid: number, run: WrkRun): Promise<Window> {
  const before = snapshot(proxyPid);
  const result = await wrk(run);
  return windowOf(before, snapshot(proxyPid), result);
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** A round of windows, one per configuration, as the JSON keeps it. */
export interface Round<C extends string> {
  round: number;
  order: C[];
  windows: Partial<Record<C, Record<string, number>>>;
  counted?: boolean;
}

function roundOf<C extends string>(round: number, order: C[], windows: Partial<Record<C, Window>>): Round<C> {
  const kept: Partial<Record<C, Record<string, number>>> = {};
  for (const c of order) kept[c] = Object.fromEntries(Object.entries(windows[c]!).map(([k, v]) => [k, round2(v as number)]));
  return { round, order, windows: kept };
}

/**
 * `count` rounds in alternating order (A B C, C B A, ...), one window per configuration each, so
 * that drift on the machine hits the configurations alike; each round is printed as it ends.
 */
export async function alternatingRounds<C extends string>(configs: readonly C[], count: number, measure: (c: C) => Promise<Window>): Promise<Round<C>[]> {
  const rounds: Round<C>[] = [];
  for (let round = 0; round < count; round++) {
    const order = round % 2 ? [...configs].reverse() : [...configs];
    const windows: Partial<Record<C, Window>> = {};
    for (const c of order) windows[c] = await measure(c);
    rounds.push(roundOf(round, order, windows));
    const line = order.map((c) => `${c} ${Math.round(windows[c]!.rps)}/s ${windows[c]!.proxyUsPerRequest.toFixed(1)}µs`).join(', ');
    console.log(`round ${round + 1}/${count}: ${line}; others ${Math.round(Math.max(...order.map((c) => windows[c]!.othersPct)))} % of a core at most`);
  }
  return rounds;
}

/**
 * A measured Envoy: one worker, pinned to `cpu` at the benchmark's priority (pinned()). Its pid
 * is checked to be Envoy's, not a wrapper's: the CPU accounting reads it.
 */
export async function startPinnedEnvoy(lab: Lab, ns: string, bootstrap: object, options: { adminPort: number; cpu: number; readyTimeoutMs?: number }): Promise<LabEnvoy> {
  const { adminPort, cpu, readyTimeoutMs } = options;
  const envoy = await LabEnvoy.start(lab, ns, bootstrap, { adminPort, concurrency: 1, prefix: pinned(cpu, []), ...(readyTimeoutMs ? { readyTimeoutMs } : {}) });
  const comm = readFileSync(`/proc/${envoy.pid}/comm`, 'utf8').trim();
  if (comm !== 'envoy') {
    envoy.stop();
    throw new Error(`pid ${envoy.pid} is ${comm}, not envoy`);
  }
  return envoy;
}

/**
 * The keep-alive figures of alternating rounds: per configuration its medians, and per
 * configuration the median of per-round ratios to `base` (or to its own in `baseOf`), with the
 * lowest and highest round; a configuration that is some other's base gets no ratio. Marks each round counted or not (DISTURBED_PCT).
 */
export function roundFigures<C extends string>(
  rounds: Round<C>[],
  configs: readonly C[],
  base: C,
  label: Record<C, string>,
  target: Partial<Record<C, string>>,
  prefix: string,
  /** Configurations compared with another than `base` (e.g. a patch with its unpatched twin). */
  baseOf: Partial<Record<C, C>> = {},
): Figure[] {
  const clean = rounds.map((r) => Object.values(r.windows).every((w) => !((w as Record<string, number>).othersOnProxyCorePct! > DISTURBED_PCT)));
  const counted = clean.filter(Boolean).length >= MIN_CLEAN ? clean : clean.map(() => true);
  for (const [i, r] of rounds.entries()) r.counted = counted[i];
  const kept = rounds.filter((r) => r.counted);
  const values = (c: C, k: string) => kept.map((r) => r.windows[c]![k]!);
  const perRound = (c: C, k: string) => kept.map((r) => (100 * r.windows[c]![k]!) / r.windows[baseOf[c] ?? base]![k]!);
  const figures: Figure[] = [
    { name: `${prefix}rounds counted (everything else on the proxy's core <= ${DISTURBED_PCT} % in each window), of ${rounds.length}`, value: kept.length, unit: 'rounds' },
  ];
  for (const c of configs) {
    figures.push({ name: `${prefix}${label[c]}: requests/s`, value: Math.round(median(values(c, 'rps'))), unit: 'req/s' });
    figures.push({ name: `${prefix}${label[c]}: p99 latency`, value: median(values(c, 'p99')), unit: 'ms' });
    figures.push({ name: `${prefix}${label[c]}: proxy CPU per request`, value: median(values(c, 'proxyUsPerRequest')), unit: 'µs' });
  }
  const compared = new Set<C>([base, ...(Object.values(baseOf) as C[])]);
  for (const c of configs.filter((c) => !compared.has(c) || baseOf[c])) {
    const ratios = perRound(c, 'rps');
    const of = label[baseOf[c] ?? base];
    figures.push({ name: `${prefix}${label[c]} requests/s, % of ${of} (median of per-round ratios)`, value: median(ratios), unit: '%', ...(target[c] ? { target: target[c] } : {}) });
    figures.push({ name: `${prefix}${label[c]} requests/s, % of ${of}: lowest round`, value: Math.min(...ratios), unit: '%' });
    figures.push({ name: `${prefix}${label[c]} requests/s, % of ${of}: highest round`, value: Math.max(...ratios), unit: '%' });
    figures.push({ name: `${prefix}${label[c]} p99 latency, % of ${of} (median of per-round ratios)`, value: median(perRound(c, 'p99')), unit: '%' });
    figures.push({ name: `${prefix}${label[c]} proxy CPU per request, % of ${of} (median of per-round ratios)`, value: median(perRound(c, 'proxyUsPerRequest')), unit: '%' });
  }
  const all = rounds.flatMap((r) => Object.values(r.windows) as Record<string, number>[]);
  figures.push({ name: `${prefix}the measured proxy's CPU, % of its core (median of all windows)`, value: median(all.map((w) => w.proxyPct!)), unit: '%' });
  figures.push({ name: `${prefix}other processes' CPU, % of one core, all cores (median of all windows)`, value: median(all.map((w) => w.othersPct!)), unit: '%' });
  figures.push({ name: `${prefix}other processes' CPU, % of one core, all cores (busiest window)`, value: Math.max(...all.map((w) => w.othersPct!)), unit: '%' });
  if (PINNED) {
    figures.push({ name: `${prefix}everything but the proxy on the proxy's core, % (median of all windows)`, value: median(all.map((w) => w.othersOnProxyCorePct!)), unit: '%' });
    figures.push({ name: `${prefix}everything but the proxy on the proxy's core, % (busiest window)`, value: Math.max(...all.map((w) => w.othersOnProxyCorePct!)), unit: '%' });
  }
  figures.push({ name: `${prefix}hypervisor steal, % of one core, all cores (median of all windows)`, value: median(all.map((w) => w.stealPct!)), unit: '%' });
  return figures;
}

/**
 * One Envoy holding every configuration's listener (and the union of their clusters): the
 * configurations then share one process, worker, allocator and cache, and differ only in their
 * listener's filter chain and upstream cluster. With a process each, two identical
 * configurations differed by up to 15 % in CPU per request within a run, which is more than the
 * differences measured here.
 */
export function mergedBootstraps(bootstraps: object[]): object {
  type Static = { admin: unknown; static_resources: { listeners: unknown[]; clusters: { name: string }[] } };
  const listeners: unknown[] = [];
  const clusters = new Map<string, { name: string }>();
  for (const b of bootstraps as Static[]) {
    listeners.push(...b.static_resources.listeners);
    for (const c of b.static_resources.clusters) {
      const prior = clusters.get(c.name);
      if (prior && JSON.stringify(prior) !== JSON.stringify(c)) throw new Error(`cluster ${c.name} differs between configurations`);
      clusters.set(c.name, c);
    }
  }
  return { admin: (bootstraps[0] as Static).admin, static_resources: { listeners, clusters: [...clusters.values()] } };
}
