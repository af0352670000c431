/**
 * Classification throughput and latency: 100 VirtualServices × 10 routes with mixed header exact,
 * prefix and regex matches (plus uri and method), against a mix of requests that match early,
 * late, or not at all. Then what loading rules costs: compiling the table for 1000 VirtualServices,
 * and an informer's first list of those 1000 (one add each) reaching the engine, through the
 * agent's RouteTableFeed (one compile for the burst) against one compile per add, as the agent
 * did before. Prints a table and writes bench/results/classify.json.
 *
 *   node --import tsx bench/classify.ts
 */
import { fileURLToPath } from 'node:url';
import { classifyRequest } from '../src/routes/classify.js';
import type { RouteRequest, VirtualService } from '../src/routes/model.js';
import { RouteTable } from '../src/routes/route-table.js';
import { RuleSet } from '../src/routes/rule-set.js';
import { RouteTableFeed } from '../src/routes/table-feed.js';
import { parseVirtualService } from '../src/routes/validate.js';
import { report, type Figure } from './lib.js';

const SERVICES = 100;
const ROUTES = 10;

function buildRules(services = SERVICES): VirtualService[] {
  const out: VirtualService[] = [];
  for (let s = 0; s < services; s++) {
    const http = [];
    for (let r = 0; r < ROUTES - 1; r++) {
      const kind = r % 3;
      const header = kind === 0 ? { exact: `user-${r}` } : kind === 1 ? { prefix: `team-${r}-` } : { regex: `v${r}\\.[0-9]+(-rc[0-9]+)?` };
      const name = kind === 0 ? 'end-user' : kind === 1 ? 'x-team' : 'x-build';
      http.push({
        name: `r${r}`,
        match: [
          { headers: { [name]: header }, uri: { prefix: `/api/${r}` } },
          { headers: { [name]: header }, method: { exact: 'POST' } },
        ],
        route: [{ destination: { host: `svc-${s}`, subset: `v${r}` } }],
      });
    }
    http.push({ name: 'default', route: [{ destination: { host: `svc-${s}` } }] });
    out.push(parseVirtualService(
      { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: `svc-${s}`, namespace: 'default' }, spec: { hosts: [`svc-${s}`], http } },
      { origin: 'bench', defaultNamespace: 'default' },
    ));
  }
  return out;
}

function buildRequests(count: number): RouteRequest[] {
  const requests: RouteRequest[] = [];
  for (let i = 0; i < count; i++) {
    const s = (i * 7919) % SERVICES;
    const r = i % ROUTES;
    const kind = r % 3;
    const headers: Record<string, string> =
      kind === 0 ? { 'end-user': `user-${r}` } : kind === 1 ? { 'x-team': `team-${r}-berlin` } : { 'x-build': `v${r}.${i % 50}-rc1` };
    headers['user-agent'] = 'bench';
    requests.push({
      host: i % 4 === 0 ? `svc-${s}` : `svc-${s}.default.svc.cluster.local:8080`,
      path: `/api/${r}/items/${i % 100}?page=${i % 3}`,
      method: i % 5 === 0 ? 'POST' : 'GET',
      scheme: 'http',
      headers,
      sourceNamespace: 'default',
    });
  }
  return requests;
}

export async function main(): Promise<Figure[]> {
  const table = new RouteTable(buildRules());
  const requests = buildRequests(4096);
  const mask = requests.length - 1;
  let sink = 0;

  // Warm up so V8 has optimised the hot path before anything is measured.
  for (let i = 0; i < 300_000; i++) sink += classifyRequest(table, requests[i & mask]!).matched ? 1 : 0;

  const iterations = 3_000_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) sink += classifyRequest(table, requests[i & mask]!).matched ? 1 : 0;
  const elapsedNs = Number(process.hrtime.bigint() - t0);
  const perSecond = Math.round(iterations / (elapsedNs / 1e9));

  // Per-call latency; includes the ~30-50 ns cost of reading the clock, so it errs high.
  const samples = new Float64Array(500_000);
  for (let i = 0; i < samples.length; i++) {
    const req = requests[i & mask]!;
    const a = process.hrtime.bigint();
    sink += classifyRequest(table, req).matched ? 1 : 0;
    samples[i] = Number(process.hrtime.bigint() - a);
  }
  samples.sort();
  const pct = (p: number) => samples[Math.min(samples.length - 1, Math.floor(samples.length * p))]! / 1000;
  if (sink === -1) console.log(sink);

  const figures: Figure[] = [
    { name: 'classifications per second (one core)', value: perSecond, unit: 'ops/s', target: '>= 1000000' },
    { name: 'p50 latency', value: round(pct(0.5)), unit: 'µs' },
    { name: 'p99 latency', value: round(pct(0.99)), unit: 'µs', target: '<= 5' },
    { name: 'p99.9 latency', value: round(pct(0.999)), unit: 'µs' },
  ];
  figures.push(...(await loading(LOAD_SERVICES)));
  console.log(`classify: ${SERVICES} VirtualServices × ${ROUTES} routes (header exact/prefix/regex, uri prefix, method), ${requests.length} distinct requests`);
  report('classify', figures);
  return figures;
}

const LOAD_SERVICES = 1000;

/** Rule loading: one compile, and a first list of `services` VirtualServices reaching the engine both ways. */
async function loading(services: number): Promise<Figure[]> {
  const rules = buildRules(services);
  new RouteTable(rules); // warm-up
  let t = performance.now();
  new RouteTable(rules);
  const compileMs = performance.now() - t;

  // The first list through the feed: every add, then the one delivery the burst is due.
  const viaFeed = new RuleSet();
  let delivered!: () => void;
  const got = new Promise<void>((r) => (delivered = r));
  const feed = new RouteTableFeed(viaFeed, (table) => classifyRequest(table, { host: `svc-${services - 1}` }).matched && delivered(), {
    setTimer: (fn, ms) => setTimeout(fn, ms), // ref'd: the process waits for it
  });
  feed.start();
  t = performance.now();
  for (const vs of rules) viaFeed.upsert('cluster', vs);
  await got;
  const feedMs = performance.now() - t;
  feed.stop();

  // One compile per add: what the agent did before the feed.
  const eager = new RuleSet();
  eager.onChange(() => eager.table());
  t = performance.now();
  for (const vs of rules) eager.upsert('cluster', vs);
  const eagerMs = performance.now() - t;

  return [
    { name: `compile the route table, ${services} VirtualServices × ${ROUTES} routes`, value: compileMs, unit: 'ms' },
    { name: `first list of ${services} VirtualServices -> table in the engine (coalesced)`, value: feedMs, unit: 'ms' },
    { name: `the same with one compile per add (before)`, value: eagerMs, unit: 'ms' },
  ];
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
