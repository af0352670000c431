/**
 * Issue 14: does the native session reporter meet the budget (>= 95 % of no filter's requests/s)
 * that no Lua filter can? Requests/s and the proxy's CPU per request through one Envoy worker with:
 * no filter; an empty Lua filter (the floor of any Lua filter); the rendered session-mode Lua
 * filter; the wansteer dynamic module doing nothing (the floor of a module filter); and the
 * rendered native reporter (`--reporter native`: envoy-filters/native/, which reports to the
 * agent through the report tap, in batches from Envoy's main thread).
 *
 * The rig and the method are bench/envoy.ts's (a copy of its keep-alive part): one proxy Envoy
 * with a listener per configuration, pinned to CPU 0, wrk and the upstream on CPU 1, alternating
 * rounds, figures as medians of per-round ratios to no filter. The module is built first
 * (`make -C envoy-filters/native`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CLOUD_SERVICE, EnvoyRig } from '../test/envoy/envoy-lab.js';
import { EDGE, ENVOY_VERSION, meshBootstrap, type MeshSpec } from '../src/lab/index.js';
import { fromRoot } from '../src/config/paths.js';
import { alternatingRounds, mergedBootstraps as merged, rewriteKey, CONNECTIONS, LOAD_CPU, luaSourceOf, measure as measureWindow, NICE, PINNED, PROXY_CPU, roundFigures, startPinnedEnvoy, upstreamBootstrap, withLuaSource, wrk as wrkRun } from './envoy-measure.js';
import { report, requireRoot } from './lib.js';

const UPSTREAM_PORT = 19999;
const ROUNDS = Number(process.env.WANSTEER_BENCH_ROUNDS ?? 25);
const SECONDS = Number(process.env.WANSTEER_BENCH_SECONDS ?? 2);
const WARMUP_SECONDS = 3;
const MODULE_DIR = fromRoot('build/envoy-module');

/** none-twin: a second listener without a filter, an A/A check of how much two listeners differ. */
const CONFIGS = ['none', 'none-twin', 'lua-empty', 'session', 'native-empty', 'native'] as const;
type Config = (typeof CONFIGS)[number];
const LABEL: Record<Config, string> = {
  none: 'no filter',
  'none-twin': 'no filter, a twin listener',
  'lua-empty': 'empty Lua filter',
  session: 'session mode (Lua)',
  'native-empty': 'empty dynamic module filter',
  native: 'session mode (dynamic module)',
};
const TARGET: Partial<Record<Config, string>> = { session: '>= 95', native: '>= 95' };
const PORT: Record<Config, number> = { none: 16001, 'none-twin': 16009, 'lua-empty': 16004, session: 16002, 'native-empty': 16008, native: 16007 };

/** One proxy: a listener on the edge address, its one route to the upstream cluster. */
function proxySpec(port: number, adminPort: number, cluster: string): MeshSpec {
  return {
    role: 'sidecar',
    workloadLabels: { 'wansteer.io/steer': 'true' },
    adminPort,
    listeners: [{ name: `proxy-${port}`, context: 'SIDECAR_INBOUND', address: EDGE.wan0.v4, port, routes: [{ name: 'default', cluster }] }],
    clusters: [{ name: cluster, address: '127.0.0.1', port: UPSTREAM_PORT }],
  };
}

/** The dynamic module's HTTP filter: libwansteer.so's filter `name`, configured with `config`. */
function moduleFilter(name: string, config: string): object {
  return {
    name: 'wansteer-native',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter',
      dynamic_module_config: { name: 'wansteer' },
      filter_name: name,
      filter_config: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: config },
    },
  };
}

/** `bootstrap` with `filter` put before the router in each HTTP connection manager. */
function withFilterBeforeRouter(bootstrap: object, filter: object): object {
  const { out, replaced } = rewriteKey(bootstrap, 'http_filters', (filters, copy) => {
    if (!Array.isArray(filters)) throw new Error('http_filters is not a list');
    const at = filters.findIndex((f) => (f as { name?: string }).name === 'envoy.filters.http.router');
    if (at < 0) throw new Error('no router in an http_filters list');
    return [...filters.slice(0, at).map(copy), filter, ...filters.slice(at).map(copy)];
  });
  if (replaced !== 1) throw new Error(`expected one HTTP connection manager, found ${replaced}`);
  return out as object;
}

/** The rendered filter's allow-listed headers (`headers = { ... }` in its config literal, which follows `placement = `). */
function allowListOf(luaSource: string): string[] {
  const m = /\{ placement = "[^"]*",[^\n]*?\bheaders = \{([^}]*)\}/.exec(luaSource);
  if (!m) throw new Error('no headers list in the rendered filter config');
  return [...m[1]!.matchAll(/"([^"]*)"/g)].map((x) => x[1]!);
}


async function main(): Promise<void> {
  if (!requireRoot('envoy-native')) return;
  execFileSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' });
  // Built here (make rebuilds only what changed), so that `npm run bench` needs no extra step.
  execFileSync('make', ['-s', '-C', fromRoot('envoy-filters/native')], { stdio: 'inherit' });
  if (!existsSync(`${MODULE_DIR}/libwansteer.so`)) throw new Error(`no ${MODULE_DIR}/libwansteer.so after make -C envoy-filters/native`);
  // Envoy finds lib<name>.so here; the proxy inherits it through the lab's spawn.
  process.env.ENVOY_DYNAMIC_MODULES_SEARCH_PATH = MODULE_DIR;
  const rig = await EnvoyRig.create('bench');
  try {
    const start = (bootstrap: object, adminPort: number, cpu: number) => startPinnedEnvoy(rig.lab, rig.lab.edge, bootstrap, { adminPort, cpu });
    const upstream = await start(upstreamBootstrap('127.0.0.1', UPSTREAM_PORT, 15900), 15900, LOAD_CPU);
    const inbound = await rig.render('sidecar-inbound');
    const headers = allowListOf(luaSourceOf(inbound));
    const cluster = 'inbound|80||';
    const plain = (c: Config) => meshBootstrap([], proxySpec(PORT[c], 15901, cluster));
    const bootstraps: Record<Config, object> = {
      none: plain('none'),
      'none-twin': plain('none-twin'),
      'lua-empty': meshBootstrap(withLuaSource(inbound, 'function envoy_on_request(handle)\nend\n'), proxySpec(PORT['lua-empty'], 15901, cluster)),
      session: meshBootstrap(inbound, proxySpec(PORT.session, 15901, cluster)),
      'native-empty': withFilterBeforeRouter(plain('native-empty'), moduleFilter('empty', '')),
      native: meshBootstrap(await rig.render('sidecar-inbound', [], 'native'), proxySpec(PORT.native, 15901, cluster)),
    };
    const envoy = await start(merged(CONFIGS.map((c) => bootstraps[c])), 15901, PROXY_CPU);
    const dump = JSON.stringify(envoy.adminGet('/config_dump').body);
    if (!dump.includes('DynamicModuleFilter')) throw new Error('the proxy has no dynamic module filter');
    const abi = /Dynamic module ABI version (\S+) (matched|is deprecated)/.exec(envoy.log);
    const run = (c: Config, seconds: number) => ({
      netns: rig.lab.edge,
      url: `http://${EDGE.wan0.v4}:${PORT[c]}/`,
      headers: [`host: ${CLOUD_SERVICE}`, 'end-user: minion'],
      seconds,
    });
    for (const c of CONFIGS) await wrkRun(run(c, WARMUP_SECONDS));
    const rounds = await alternatingRounds(CONFIGS, ROUNDS, (c) => measureWindow(envoy.pid!, run(c, SECONDS)));
    const figures = roundFigures(rounds, CONFIGS, 'none', LABEL, TARGET, 'keep-alive, ');
    const errors = rounds.flatMap((r) => Object.values(r.windows) as Record<string, number>[]).reduce((n, r) => n + r.errors!, 0);
    figures.push({ name: 'failed requests (non-2xx, timeouts), all rounds', value: errors, unit: 'requests', target: '<= 0' });
    console.log(
      `Envoy ${ENVOY_VERSION}, --concurrency 1, nice ${NICE}${PINNED ? ` pinned to CPU ${PROXY_CPU}, wrk and the upstream to CPU ${LOAD_CPU}` : ' (one CPU: unpinned)'}; ` +
        `wrk -t1 -c${CONNECTIONS}; ${WARMUP_SECONDS} s warm-up each, ${ROUNDS} alternating rounds of ${SECONDS} s keep-alive; ` +
        `module ABI: ${abi ? `${abi[1]} ${abi[2]}` : 'no line in the log at warning level'}; allow-listed headers: ${headers.join(',')}`,
    );
    report('envoy-native', figures, {
      method: { envoy: ENVOY_VERSION, pinned: PINNED ? { proxy: PROXY_CPU, wrkAndUpstream: LOAD_CPU } : null, nice: NICE, wrk: { threads: 1, connections: CONNECTIONS }, warmupSeconds: WARMUP_SECONDS, rounds: ROUNDS, secondsPerWindow: SECONDS, moduleHeaders: headers },
      rounds,
    });
    // A profiling build of the module (make PROFILE=1) logs its own time per request.
    for (const line of envoy.log.split('\n').filter((l) => l.includes('wansteer module profile')).slice(-4)) console.log(line);
    upstream.stop();
    envoy.stop();
  } finally {
    await rig.destroy();
  }
}

await main();
