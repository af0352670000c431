/**
 * Bursts of WanPolicies on a real control plane: does a burst cost what it changes? kube-apiserver
 * and etcd (test/helpers/kube-control-plane.ts, built by scripts/setup-k8s.sh), the deploy/ RBAC,
 * and the agent as it ships (compiled, started by its bin/wansteer.js, dry-run datapath) running
 * as its ServiceAccount in cluster mode. An admin then writes, 16 at a time, as fast as the API
 * server takes them:
 *
 *   create  2000 WanPolicies (each on its own VirtualService), then one marker object;
 *   delete  1000 of them, then another marker.
 *
 * Watch events come in resourceVersion order, so when the agent's REST API shows the marker, every
 * write before it has been taken in. Figures per phase: from the answer to the marker's write to
 * the agent showing it (target ≤ 1 s), the longest event-loop delay in the agent during the
 * phase (bench/event-loop-probe.mjs, loaded into the agent, asked over IPC at the phase's start
 * and end; ≤ 100 ms), and the agent's RSS after it (VmRSS, ≤ 150 MB). Also: the engine really
 * installed them (/v1/status), the peak RSS (VmHWM), the heap, and how long one /metrics scrape
 * holds the agent's loop with 2000 policies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { DEPLOY_DIR, kustomizeBuild } from '../test/deploy/helpers/manifests.js';
import { KUBE_APISERVER, KubeControlPlane } from '../test/helpers/kube-control-plane.js';
import { buildShippedAgent, report, type Figure } from './lib.js';

const NS = 'wansteer-system';
const WP = `/apis/wansteer.io/v1alpha1/namespaces/${NS}/wanpolicies`;
const CREATE = Number(process.env.WST_BENCH_POLICIES ?? 2000);
const DELETE = CREATE / 2;
const CONCURRENCY = 16;

const policy = (name: string, i: number) => ({
  apiVersion: 'wansteer.io/v1alpha1',
  kind: 'WanPolicy',
  metadata: { name, namespace: NS },
  spec: { match: { route: { virtualService: `shop/svc-${i}` } }, action: { links: [i % 2 ? 'wan1' : 'wan0'], mode: 'redirect' } },
});

function rss(pid: number): { now: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { now: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Runs `jobs` with at most CONCURRENCY in flight. */
async function inParallel(jobs: (() => Promise<void>)[]): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < jobs.length) await jobs[next++]!();
  }));
}

async function main(): Promise<void> {
  try {
    readFileSync(KUBE_APISERVER);
  } catch {
    console.log('cluster: skipped — no kube-apiserver in the cache: run scripts/setup-k8s.sh');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'wansteer-bench-cluster-'));
  let cp: KubeControlPlane | undefined;
  let agent: ChildProcess | undefined;
  try {
    const shipped = buildShippedAgent(dir);
    cp = await KubeControlPlane.start();
    await cp.installCrds();
    await cp.apply(kustomizeBuild(join(DEPLOY_DIR, 'overlays/edge')));
    const kubeconfig = cp.writeKubeconfig(await cp.serviceAccountConfig(NS, 'wansteer-agent'), join(dir, 'kubeconfig'));
    const port = await freePort();
    const config = join(dir, 'config.yaml');
    writeFileSync(config, stringify({
      links: [{ name: 'wan0', interface: 'wan0' }, { name: 'wan1', interface: 'wan1' }],
      defaultLink: 'wan0',
      rules: { source: 'cluster' },
      policies: { store: 'cluster', namespace: NS },
      listen: { http: `127.0.0.1:${port}` },
      stateDir: join(dir, 'state'),
      log: { level: 'warn' },
    }));
    const probe = fileURLToPath(new URL('./event-loop-probe.mjs', import.meta.url));
    // WST_BENCH_NICE=-10: the agent ahead of other work on a shared machine (an event-loop delay is
    // wall time: a process waiting for a core shows the wait as delay).
    const nice = process.env.WST_BENCH_NICE ? ['nice', '-n', process.env.WST_BENCH_NICE] : [];
    // WST_BENCH_PROFILE=DIR: a CPU profile of the agent into DIR (where its time goes in a burst).
    const profile = process.env.WST_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.WST_BENCH_PROFILE}`] : [];
    const argv = [...nice, shipped.cli[0]!, ...profile, '--import', probe, ...shipped.cli.slice(1), 'agent', '--config', config, '--dry-run'];
    agent = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, KUBECONFIG: kubeconfig },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const child = agent;
    const ask = (): Promise<{ loopMaxMs: number; rssMB: number; heapMB: number }> =>
      new Promise((resolve) => {
        child.once('message', (m) => resolve(m as { loopMaxMs: number; rssMB: number; heapMB: number }));
        child.send('probe');
      });
    const base = `http://127.0.0.1:${port}`;
    await until('the agent ready', async () => (await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200, 60_000);

    const loopMaxMs = async (): Promise<number> => (await ask()).loopMaxMs;
    /** Writes a marker after the phase's last write; ms from its answer until the agent shows it. */
    let markers = 0;
    const markerLag = async (name: string): Promise<number> => {
      const res = await cp!.request('POST', WP, policy(name, 100_000 + markers++));
      if (res.status !== 201) throw new Error(`marker: ${res.status}`);
      const written = performance.now();
      await until(`the agent shows ${name}`, async () => (await fetch(`${base}/v1/policies/${name}`)).status === 200, 120_000, 5);
      return performance.now() - written;
    };
    const installed = async (): Promise<number> => {
      const res = await fetch(`${base}/v1/status`);
      const status = (await res.json()) as { policies?: { installed: boolean }[] };
      if (!status.policies) throw new Error(`/v1/status answered ${res.status}: ${JSON.stringify(status).slice(0, 300)}`);
      return status.policies.filter((p) => p.installed).length;
    };
    const figures: Figure[] = [];

    // ---- create ------------------------------------------------------------------------
    await new Promise((r) => setTimeout(r, 1000));
    await loopMaxMs(); // start of the window
    const t0 = performance.now();
    await inParallel(Array.from({ length: CREATE }, (_, i) => async () => {
      const res = await cp!.request('POST', WP, policy(`p${i}`, i));
      if (res.status !== 201) throw new Error(`create p${i}: ${res.status} ${JSON.stringify(res.body)}`);
    }));
    const writeSeconds = (performance.now() - t0) / 1000;
    const createLag = await markerLag('marker-created');
    const createLoop = await loopMaxMs();
    const afterCreate = rss(agent.pid!);
    const heapAfterCreate = (await ask()).heapMB;
    const createInstalled = await installed();
    figures.push(
      { name: `create ${CREATE}: API writes per second (16 in flight)`, value: CREATE / writeSeconds, unit: '/s' },
      { name: `create ${CREATE}: last write -> agent shows it`, value: createLag, unit: 'ms', target: '<= 1000' },
      { name: `create ${CREATE}: longest event-loop delay in the agent`, value: createLoop, unit: 'ms', target: '<= 100' },
      { name: `create ${CREATE}: agent RSS after`, value: afterCreate.now, unit: 'MB', target: '<= 150' },
      { name: `create ${CREATE}: agent JS heap used after`, value: heapAfterCreate, unit: 'MB' },
      { name: `create ${CREATE}: policies the engine installed`, value: createInstalled, unit: 'policies', target: `>= ${CREATE + 1}` },
    );

    // A scrape holds the loop too (per-policy series: ~10k with 2000 policies).
    await new Promise((r) => setTimeout(r, 500));
    await loopMaxMs();
    const scrapeBytes = (await (await fetch(`${base}/metrics`)).text()).length;
    await new Promise((r) => setTimeout(r, 100));
    figures.push({ name: `one /metrics scrape with ${CREATE} policies (${Math.round(scrapeBytes / 1024)} KiB): longest event-loop delay`, value: await loopMaxMs(), unit: 'ms' });

    // ---- delete ------------------------------------------------------------------------
    await new Promise((r) => setTimeout(r, 1000));
    await loopMaxMs();
    await inParallel(Array.from({ length: DELETE }, (_, i) => async () => {
      const res = await cp!.request('DELETE', `${WP}/p${i}`);
      if (res.status !== 200) throw new Error(`delete p${i}: ${res.status}`);
    }));
    const deleteLag = await markerLag('marker-deleted');
    const deleteLoop = await loopMaxMs();
    const afterDelete = rss(agent.pid!);
    figures.push(
      { name: `delete ${DELETE}: last write -> agent shows it`, value: deleteLag, unit: 'ms', target: '<= 1000' },
      { name: `delete ${DELETE}: longest event-loop delay in the agent`, value: deleteLoop, unit: 'ms', target: '<= 100' },
      { name: `delete ${DELETE}: agent RSS after`, value: afterDelete.now, unit: 'MB', target: '<= 150' },
      { name: `delete ${DELETE}: policies the engine installed`, value: await installed(), unit: 'policies', target: `<= ${CREATE - DELETE + 2}` },
      { name: 'agent peak RSS (VmHWM) over both phases', value: afterDelete.peak, unit: 'MB' },
    );
    figures.push(
      { name: 'machine load average (1 min) at the end, 2 cores', value: loadavg()[0]!, unit: '' },
      { name: 'agent niceness (WST_BENCH_NICE)', value: Number(process.env.WST_BENCH_NICE ?? 0), unit: '' },
    );
    report('cluster', figures);
  } finally {
    if (agent && agent.exitCode === null) {
      const exited = new Promise((r) => agent!.once('exit', r));
      agent.kill('SIGTERM');
      const timer = setTimeout(() => agent!.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
