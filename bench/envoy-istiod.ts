/**
 * What the session reporter costs a sidecar that a real istiod configures (issue 14, item 6, on
 * the setup users run): bench/envoy.ts measures the filter in front of a minimal listener built by
 * our Istio stand-in; here the listener is istiod's own inbound listener for a Pod's port, with
 * everything istiod puts in it (original_dst, the inspectors, its HTTP filters, its route and
 * cluster), and the reporter is the EnvoyFilter `wansteer render envoyfilter` writes, applied by
 * istiod. What differs from a cluster is what the stock Envoy cannot load (test/helpers/istiod.ts):
 * no mTLS, no metadata exchange, no Istio stats filter — each would make the baseline heavier and
 * the reporter's share smaller, so the figure here is, if anything, pessimistic.
 *
 * Rig: kube-apiserver and etcd (test/helpers/kube-control-plane.ts) holding Istio's CRDs, a Pod
 * `bench-app` labelled wansteer.io/steer=true with its Service and EndpointSlice, and the agent
 * cluster's EnvoyFilter; istiod (pilot-discovery) feeding one sidecar Envoy (--concurrency 1) over
 * ADS in the lab's edge namespace; the Pod's port redirected to Envoy's 15006 by nftables as
 * Istio's iptables do; the app an Envoy answering from memory on the Pod's address; the real agent
 * behind the report tap (test/envoy/envoy-lab.ts); wrk in the cloud namespace, so requests cross
 * the lab's WAN link as they would reach an edge pod.
 *
 * Configurations, one Envoy process for all (two Envoys doing the same work differ by up to 15 %
 * in CPU per request, see bench/envoy.ts): the reporter's EnvoyFilter is applied, swapped or
 * deleted through the kube-apiserver and istiod pushes the listener; each window starts after the
 * config dump shows the wanted chain, and after a warm-up on fresh connections.
 *  - none: no reporter EnvoyFilter (the Pod's sidecar as istiod configures it without wansteer);
 *  - lua-empty: the reporter's EnvoyFilter with `envoy_on_request` doing nothing (the floor of any
 *    Lua filter);
 *  - session: the rendered reporter (the Lua filter);
 *  - native: the rendered native reporter (`--reporter native`, the Envoy dynamic module; the
 *    lab's Envoys find it through ENVOY_DYNAMIC_MODULES_SEARCH_PATH).
 * Method as bench/envoy.ts (bench/envoy-measure.ts): pinned, boosted, alternating rounds, the
 * median of per-round ratios, rounds disturbed by other work not counted.
 *
 * `node --import tsx bench/envoy-istiod.ts` (root; needs scripts/setup.sh's Envoy, kube-apiserver,
 * etcd and istiod); about 8 minutes.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import { CLOUD_SERVICE, EnvoyRig } from '../test/envoy/envoy-lab.js';
import { ISTIO_LINE, Istiod, sidecarBootstrap, type SidecarIdentity } from '../test/helpers/istiod.js';
import { captureInbound, clusterBasics, configDump, httpChains, LUA, markRunning, until, workload } from '../test/helpers/istio-workloads.js';
import { KubeControlPlane, KUBE_APISERVER, PILOT_DISCOVERY, type ApiObject } from '../test/helpers/kube-control-plane.js';
import { EDGE, ENVOY_VERSION, LabEnvoy, envoyBinary } from '../src/lab/index.js';
import { alternatingRounds, CONNECTIONS, LOAD_CPU, measure as measureWindow, NICE, PINNED, PROXY_CPU, roundFigures, startPinnedEnvoy, upstreamBootstrap, withLuaSource, wrk } from './envoy-measure.js';
import { report, requireRoot } from './lib.js';
import { fromRoot } from '../src/config/paths.js';

const ROUNDS = Number(process.env.WANSTEER_BENCH_ROUNDS ?? 10);
const SECONDS = Number(process.env.WANSTEER_BENCH_SECONDS ?? 5);
const WARMUP_SECONDS = 3;
/** The Pod's port: the app (an Envoy answering from memory) listens on it, Istio captures it. */
const POD_PORT = 8090;
const ADMIN_PORT = 15000;
const APP_ADMIN_PORT = 15900;
const SHOP = 'shop';
const APP: SidecarIdentity = { pod: 'bench-app', namespace: SHOP, ip: EDGE.wan0.v4, labels: { app: 'bench-app', 'wansteer.io/steer': 'true' } };
const REPORTER = 'wansteer-session-report-sidecar-inbound';
const EMPTY_LUA = 'function envoy_on_request(handle)\nend\n';

const CONFIGS = ['none', 'lua-empty', 'session', 'native'] as const;
type Config = (typeof CONFIGS)[number];
const LABEL: Record<Config, string> = { none: 'no filter', 'lua-empty': 'empty Lua filter', session: 'session mode (Lua filter)', native: 'session mode (native reporter)' };
const TARGET: Partial<Record<Config, string>> = { session: '>= 95', native: '>= 95' };

/** The HTTP chains of istiod's inbound listener that serve the Pod's port. */
function podChains(sidecar: LabEnvoy) {
  return httpChains(configDump(sidecar)).filter((c) => c.listener === 'virtualInbound' && c.chain.endsWith(`_${POD_PORT}`));
}

async function main(): Promise<void> {
  if (!requireRoot('envoy-istiod')) return;
  // The native reporter's module (the lab's Envoys find it through ENVOY_DYNAMIC_MODULES_SEARCH_PATH).
  execFileSync('make', ['-s', '-C', fromRoot('envoy-filters/native')], { stdio: 'inherit' });
  for (const [what, path] of [['Envoy', envoyBinary()], ['kube-apiserver', KUBE_APISERVER], ['istiod', PILOT_DISCOVERY]] as const) {
    if (!existsSync(path)) throw new Error(`bench envoy-istiod needs ${what} at ${path}: run scripts/setup.sh`);
  }
  execFileSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' });
  const rig = await EnvoyRig.create('bench-istiod');
  let cp: KubeControlPlane | undefined;
  let istiod: Istiod | undefined;
  const envoys: LabEnvoy[] = [];
  try {
    cp = await KubeControlPlane.start();
    await cp.installCrds({ allIstio: true });
    await cp.apply([...clusterBasics(SHOP), ...workload(APP, POD_PORT)]);
    await markRunning(cp, APP);
    const rendered = (await rig.render('sidecar-inbound')) as ApiObject[];
    const named = (name: string) => {
      const found = rendered.find((o) => o.metadata?.name === name);
      if (!found) throw new Error(`the render has no ${name}`);
      return found;
    };
    const reporter = named(REPORTER);
    const native = ((await rig.render('sidecar-inbound', [], 'native')) as ApiObject[]).find((o) => o.metadata?.name === REPORTER)!;
    const variants: Record<Config, ApiObject | undefined> = {
      none: undefined,
      'lua-empty': withLuaSource([reporter], EMPTY_LUA)[0] as ApiObject,
      session: reporter,
      native,
    };
    // What the reporter's HTTP filter must be in the config dump for each configuration (the Lua
    // and the native one share the filter name; their typed configs tell them apart).
    const httpFilterOf = (o: ApiObject | undefined) => (o as any)?.spec.configPatches.find((p: any) => p.applyTo === 'HTTP_FILTER').patch.value.typed_config; // eslint-disable-line @typescript-eslint/no-explicit-any
    const wanted = Object.fromEntries(CONFIGS.map((c) => [c, httpFilterOf(variants[c])])) as Record<Config, unknown>;
    await cp.apply([named('wansteer-agent-cluster')]);

    istiod = await Istiod.start(cp);
    const socket = join(istiod.dir, 'xds.sock');
    await istiod.unixBridge(socket);
    captureInbound(rig.lab, rig.lab.edge, APP.ip, POD_PORT);

    const start = async (bootstrap: object, adminPort: number, cpu: number) => {
      const envoy = await startPinnedEnvoy(rig.lab, rig.lab.edge, bootstrap, { adminPort, cpu, readyTimeoutMs: 120_000 });
      envoys.push(envoy);
      return envoy;
    };
    await start(upstreamBootstrap(APP.ip, POD_PORT, APP_ADMIN_PORT), APP_ADMIN_PORT, LOAD_CPU);
    const sidecar = await start(sidecarBootstrap(APP, { adminPort: ADMIN_PORT, xdsSocket: socket }), ADMIN_PORT, PROXY_CPU);
    await until('istiod\'s inbound chain for the Pod\'s port', () => podChains(sidecar).length > 0, 120_000);

    // Switches the sidecar to `c` through the API server and istiod; resolves when Envoy has it.
    const path = (await cp.pathOf(reporter, REPORTER))!;
    let current: Config | 'unknown' = 'unknown';
    const switchTo = async (c: Config) => {
      if (c === current) return;
      await cp!.request('DELETE', path);
      if (variants[c]) await cp!.create(variants[c]!);
      const want = wanted[c];
      await until(`the sidecar with ${LABEL[c]}`, () => {
        const chains = podChains(sidecar);
        return chains.length > 0 && chains.every((ch) => (want === undefined ? !ch.filters.includes(LUA) : isDeepStrictEqual(ch.lua, want)));
      }, 60_000);
      current = c;
    };

    const run = (seconds: number) => ({
      netns: rig.lab.cloud,
      url: `http://${APP.ip}:${POD_PORT}/`,
      headers: [`host: ${CLOUD_SERVICE}`, 'end-user: minion'],
      seconds,
    });
    // Each window on fresh connections (the last window's wrk has closed its own), after a
    // warm-up: a new filter config is a new Lua state whose first requests compile.
    const measure = async (c: Config) => {
      await switchTo(c);
      await wrk(run(WARMUP_SECONDS));
      return measureWindow(sidecar.pid!, run(SECONDS));
    };

    const chainOf = (c: Config) => podChains(sidecar)[0]?.filters ?? [];
    await switchTo('session');
    const sessionChain = chainOf('session');
    const reportsBefore = rig.reportsSince(0).length;
    const rounds = await alternatingRounds(CONFIGS, ROUNDS, measure);
    await new Promise((r) => setTimeout(r, 500)); // the tap's last lines
    const reports = rig.reportsSince(0).length - reportsBefore;

    const figures = roundFigures(rounds, CONFIGS, 'none', LABEL, TARGET, 'istiod sidecar, keep-alive, ');
    // Each session window and its warm-up open CONNECTIONS new connections: one report each.
    figures.push({ name: `reports the tap received (${ROUNDS} windows of each reporter, Lua and native, and their warm-ups x ${CONNECTIONS} new connections)`, value: reports, unit: 'reports' });
    const errors = rounds.flatMap((r) => Object.values(r.windows) as Record<string, number>[]).reduce((n, w) => n + w.errors!, 0);
    figures.push({ name: 'failed requests (non-2xx, timeouts), all windows', value: errors, unit: 'requests', target: '<= 0' });
    console.log(
      `Envoy ${ENVOY_VERSION} configured by istiod ${ISTIO_LINE} (pilot-discovery), --concurrency 1, nice ${NICE}` +
        `${PINNED ? `, pinned to CPU ${PROXY_CPU}, wrk and the app to CPU ${LOAD_CPU}` : ''}; wrk -t1 -c${CONNECTIONS} from the cloud namespace; ` +
        `${WARMUP_SECONDS} s warm-up per window, ${ROUNDS} alternating rounds of ${SECONDS} s; inbound HTTP chain with the reporter: ${sessionChain.join(' > ')}`,
    );
    report('envoy-istiod', figures, {
      method: {
        envoy: ENVOY_VERSION,
        istiod: ISTIO_LINE,
        inboundHttpFilters: sessionChain,
        pinned: PINNED ? { proxy: PROXY_CPU, wrkAndApp: LOAD_CPU } : null,
        nice: NICE,
        wrk: { threads: 1, connections: CONNECTIONS, from: 'cloud namespace, across the lab WAN link' },
        warmupSeconds: WARMUP_SECONDS,
        rounds: ROUNDS,
        secondsPerWindow: SECONDS,
      },
      rounds,
    });
  } finally {
    for (const e of envoys) e.stop();
    await istiod?.stop();
    await cp?.stop();
    await rig.destroy();
  }
}

await main();
