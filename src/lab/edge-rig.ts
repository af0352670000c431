/**
 * The internet-profile lab with the real agent in it, for the tests, the benchmarks and the demo:
 * EdgeLab (internet.ts), `wansteer agent` in the edge with wan0 and wan1 as internet links probing
 * a reflector in the cloud, and a session server (scripts/sessions.py) in the cloud.
 *
 *   const rig = await EdgeRig.start({ tag: 'inet' });
 *   rig.putPolicy('video', { match: { dscp: 10 }, action: { links: ['wan1', 'wan0'], mode: 'redirect' } });
 *   rig.exchange('pod0', { up: 10_000, down: 2_000_000, tos: 40 })   // { seen: '198.51.100.2', … }
 *   await rig.stop();
 *
 * The agent's API listens on the edge's pod gateway address; the rig calls it from the edge.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromRoot } from '../config/paths.js';
import { LabAgentClient, type LabAnswer } from './agent-client.js';
import { EdgeLab, INTERNET_CLOUD, ISPS, PODS } from './internet.js';

/** The session tool (scripts/sessions.py). */
export const SESSIONS_TOOL = fromRoot('scripts/sessions.py');
/** The cloud's session server port. */
export const SESSION_PORT = 8000;
const AGENT = `http://${PODS.gateway4}:9090`;

export type Place = 'pod0' | 'pod1' | 'edge' | 'cloud';

export interface ExchangeResult {
  seen?: string;
  up?: number;
  down?: number;
  error?: string;
}

export interface EdgeRigOptions {
  tag?: string;
  /** How to run `wansteer` (default: from source under tsx). */
  cli?: string[];
  /** Probe the links (default true); false: carrier only. */
  probes?: boolean;
  /** More top-level config lines (e.g. `internet: { rulePriority: 9100 }`). */
  config?: string[];
  /** Options of both links' probe, as YAML flow fields (e.g. `intervalMs: 50`). */
  probe?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class EdgeRig {
  log = '';
  readonly api: LabAgentClient;
  readonly token = `rig-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  readonly pinDir: string;
  readonly configFile: string;
  private agent: ChildProcess | undefined;

  private constructor(
    readonly lab: EdgeLab,
    readonly dir: string,
    private readonly cli: string[],
  ) {
    this.pinDir = `/sys/fs/bpf/wst-inet-${process.pid}-${lab.tag}`;
    this.configFile = join(dir, 'config.yaml');
    this.api = new LabAgentClient(lab, lab.edge, AGENT, () => `the agent's log:\n${this.log.slice(-4000)}`);
  }

  static async start(opts: EdgeRigOptions = {}): Promise<EdgeRig> {
    const lab = EdgeLab.create(opts.tag);
    const cli = opts.cli ?? [process.execPath, '--import', 'tsx', fromRoot('src/cli/main.ts')];
    const rig = new EdgeRig(lab, mkdtempSync(join(tmpdir(), `wansteer-inet-${process.pid}-`)), cli);
    try {
      rig.writeConfig(opts);
      await Promise.all([
        lab.spawnReady(lab.cloud, [...cli, 'reflector', '--listen', `${INTERNET_CLOUD.v4}:862`], 'reflector'),
        lab.spawnReady(lab.cloud, [...cli, 'reflector', '--listen', `[${INTERNET_CLOUD.v6}]:862`], 'reflector (IPv6)'),
        lab.spawnReady(lab.cloud, ['python3', SESSIONS_TOOL, 'server', String(SESSION_PORT)], 'session server'),
      ]);
      await rig.startAgent();
      await rig.api.waitLinks((ls) => ls.length === 2 && ls.every((l) => l.up), 15_000, 'both links up');
    } catch (err) {
      await rig.stop();
      throw err;
    }
    return rig;
  }

  private writeConfig(opts: EdgeRigOptions): void {
    mkdirSync(join(this.dir, 'rules'));
    mkdirSync(join(this.dir, 'state'));
    writeFileSync(join(this.dir, 'token'), this.token);
    const probe = (opts.probes ?? true) ? `, probe: { targets: [${INTERNET_CLOUD.v4}, ${INTERNET_CLOUD.v6}]${opts.probe ? `, ${opts.probe}` : ''} }` : '';
    writeFileSync(
      this.configFile,
      [
        'links:',
        `  - { name: wan0, interface: wan0, addressing: internet, nextHop4: ${ISPS.isp0.gateway4}, nextHop6: "${ISPS.isp0.gateway6}"${probe} }`,
        `  - { name: wan1, interface: wan1, addressing: internet, nextHop4: ${ISPS.isp1.gateway4}, nextHop6: "${ISPS.isp1.gateway6}"${probe} }`,
        'defaultLink: wan0',
        `listen: { http: "${PODS.gateway4}:9090" }`,
        `auth: { tokenFile: ${join(this.dir, 'token')} }`,
        `rules: { source: directory, directory: ${join(this.dir, 'rules')} }`,
        `policies: { store: file, file: ${join(this.dir, 'policies.yaml')} }`,
        `stateDir: ${join(this.dir, 'state')}`,
        `datapath: { pinDir: ${this.pinDir}, flowTableSize: 65536 }`,
        'log: { level: info }',
        ...(opts.config ?? []),
      ].join('\n') + '\n',
    );
  }

  /** Start the agent (again); resolves when it is ready. */
  async startAgent(): Promise<void> {
    const agent = (this.agent = this.lab.spawn(this.lab.edge, [...this.cli, 'agent', '--config', this.configFile]));
    agent.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    agent.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    await this.api.waitReady(agent, 30_000);
  }

  /** Stop the agent with a signal (SIGTERM: as a restart does; SIGKILL: a crash). */
  async stopAgent(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const a = this.agent;
    if (!a || a.exitCode !== null || a.signalCode !== null) return;
    const exited = new Promise((r) => a.once('exit', r));
    a.kill(signal);
    await Promise.race([exited, sleep(5000)]);
  }

  /** The agent's REST API with the rig's token. */
  call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): LabAnswer {
    return this.api.http({ method, path, headers: { authorization: `Bearer ${this.token}`, ...headers }, ...(body !== undefined ? { body } : {}) })[0]!;
  }

  /** Create or replace a policy; returns the answer. */
  putPolicy(name: string, spec: unknown): LabAnswer {
    const current = this.call('GET', `/v1/policies/${name}`);
    const etag = current.status === 200 ? current.headers?.etag : undefined;
    return etag ? this.call('PUT', `/v1/policies/${name}`, { spec }, { 'if-match': etag }) : this.call('POST', '/v1/policies', { name, spec });
  }

  /** The namespace of a place. */
  ns(place: Place): string {
    return place === 'edge' ? this.lab.edge : place === 'cloud' ? this.lab.cloud : this.lab.pods[place];
  }

  /** One connection from `from` to `dst` (default the cloud's IPv4 service): upload, download, the address the far end saw. */
  exchange(from: Place, o: { dst?: string; port?: number; up?: number; down?: number; tos?: number; src?: string } = {}): ExchangeResult {
    const argv = ['python3', SESSIONS_TOOL, 'exchange', o.dst ?? INTERNET_CLOUD.v4, String(o.port ?? SESSION_PORT), String(o.up ?? 1000), String(o.down ?? 1000), String(o.tos ?? 0), o.src ?? ''];
    try {
      return JSON.parse(this.lab.exec(this.ns(from), argv)) as ExchangeResult;
    } catch (err) {
      const out = (err as { stdout?: string }).stdout ?? '';
      try {
        return JSON.parse(out) as ExchangeResult;
      } catch {
        return { error: (err as Error).message };
      }
    }
  }

  async stop(): Promise<void> {
    await this.stopAgent('SIGTERM');
    this.lab.destroy();
    rmSync(this.pinDir, { recursive: true, force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}
