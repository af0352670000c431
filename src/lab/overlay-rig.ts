/**
 * The overlay-profile lab with both real agents in it, for the tests and the benchmarks:
 * WanLab with a pod behind the edge's masquerade (overlay.ts), `wansteer agent` in the edge
 * steering wan0/wan1 (overlay links, probing a reflector in the cloud), and `wansteer agent` in
 * reply-by-arrival mode at the cloud end of the links (c0/c1). Session servers listen in the
 * cloud (one port per session, so each session's bytes can be told apart on the wire) and in
 * the pod (behind the NodePorts).
 *
 *   const rig = await OverlayRig.start({ tag: 'ovl' });
 *   rig.putPolicy('minion', { match: { route: { virtualService: 'default/cloud-service', route: 'minion' } }, action: { links: ['wan1', 'wan0'], mode: 'redirect' } });
 *   rig.report('pod', { direction: 'outbound', local: '10.244.0.10:40001', remote: '10.20.0.1:8001', request: { … } });
 *   rig.exchange('pod', { dst: CLOUD.service.v4, port: 8001, sport: 40001, up: 100_000, down: 2_000_000 });
 *   await rig.stop();
 */
import type { ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromRoot } from '../config/paths.js';
import { LabAgentClient, type LabAnswer } from './agent-client.js';
import { SESSIONS_TOOL, type ExchangeResult } from './edge-rig.js';
import { CLOUD, EDGE, EDGE_POD, POD_SERVICE_PORT, WanLab } from './overlay.js';

/** The cloud's session servers: one port per session a test tells apart. */
export const CLOUD_SESSION_PORTS = [8001, 8002, 8003, 8004, 8005, 8006, 8007];
const EDGE_AGENT_PORT = 9090;

export type OverlayPlace = 'pod' | 'edge' | 'cloud';

export interface OverlayRigOptions {
  tag?: string;
  /** How to run `wansteer` (default: from source under tsx). */
  cli?: string[];
  /** Probe the edge's links against the cloud's reflector (default true); false: carrier only. */
  probes?: boolean;
  /** Start the cloud end's agent (default true). */
  cloudAgent?: boolean;
  /** More top-level config lines for the edge agent. */
  edgeConfig?: string[];
}

export interface SessionLoop {
  /** Resolves with the tool's JSON events once its time is up. */
  done: Promise<Record<string, unknown>[]>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One agent process of the rig: its config, its log, its API. */
class RigAgent {
  log = '';
  process: ChildProcess | undefined;

  constructor(
    private readonly lab: WanLab,
    private readonly ns: string,
    private readonly cli: string[],
    readonly configFile: string,
    readonly pinDir: string,
    readonly api: LabAgentClient,
  ) {}

  async start(): Promise<void> {
    const p = (this.process = this.lab.spawn(this.ns, [...this.cli, 'agent', '--config', this.configFile]));
    p.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    await this.api.waitReady(p, 30_000);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.process;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await Promise.race([exited, sleep(5000)]);
  }
}

export class OverlayRig {
  readonly token = `rig-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  readonly edgeAgent: RigAgent;
  readonly cloudAgent: RigAgent;
  /** The edge agent's API from the pod, per family (a report must come from its session's address). */
  private readonly fromPod: { 4: LabAgentClient; 6: LabAgentClient };

  private constructor(
    readonly lab: WanLab,
    readonly dir: string,
    /** How the rig runs `wansteer`. */
    readonly cli: string[],
  ) {
    const pin = (who: string) => `/sys/fs/bpf/wst-ovl-${process.pid}-${lab.tag}-${who}`;
    const hint = (a: () => RigAgent) => () => `the agent's log:\n${a().log.slice(-4000)}`;
    this.edgeAgent = new RigAgent(lab, lab.edge, cli, join(dir, 'edge.yaml'), pin('edge'),
      new LabAgentClient(lab, lab.edge, `http://${EDGE_POD.gateway4}:${EDGE_AGENT_PORT}`, hint(() => this.edgeAgent)));
    this.cloudAgent = new RigAgent(lab, lab.cloud, cli, join(dir, 'cloud.yaml'), pin('cloud'),
      new LabAgentClient(lab, lab.cloud, `http://${CLOUD.service.v4}:${EDGE_AGENT_PORT}`, hint(() => this.cloudAgent)));
    this.fromPod = {
      4: new LabAgentClient(lab, lab.pod!, `http://${EDGE_POD.gateway4}:${EDGE_AGENT_PORT}`, hint(() => this.edgeAgent)),
      6: new LabAgentClient(lab, lab.pod!, `http://[${EDGE_POD.gateway6}]:${EDGE_AGENT_PORT}`, hint(() => this.edgeAgent)),
    };
  }

  static async start(opts: OverlayRigOptions = {}): Promise<OverlayRig> {
    const lab = WanLab.create(opts.tag, { pods: true });
    const cli = opts.cli ?? [process.execPath, '--import', 'tsx', fromRoot('src/cli/main.ts')];
    const rig = new OverlayRig(lab, mkdtempSync(join(tmpdir(), 'wansteer-ovl-')), cli);
    try {
      rig.writeConfigs(opts);
      const { v4, v6 } = CLOUD.service;
      await Promise.all([
        lab.spawnReady(lab.cloud, [...cli, 'reflector', '--listen', `${v4}:862`], 'reflector'),
        lab.spawnReady(lab.cloud, [...cli, 'reflector', '--listen', `[${v6}]:862`], 'reflector (IPv6)'),
        ...CLOUD_SESSION_PORTS.map((port) => lab.spawnReady(lab.cloud, ['python3', SESSIONS_TOOL, 'server', String(port)], `session server ${port}`)),
        lab.spawnReady(lab.pod!, ['python3', SESSIONS_TOOL, 'server', String(POD_SERVICE_PORT)], 'pod session server'),
      ]);
      await Promise.all([rig.edgeAgent.start(), ...(opts.cloudAgent ?? true ? [rig.cloudAgent.start()] : [])]);
      await rig.edgeAgent.api.waitLinks((ls) => ls.length === 2 && ls.every((l) => l.up), 15_000, 'both edge links up');
    } catch (err) {
      await rig.stop();
      throw err;
    }
    return rig;
  }

  private writeConfigs(opts: OverlayRigOptions): void {
    const edge = join(this.dir, 'edge');
    mkdirSync(join(edge, 'state'), { recursive: true });
    cpSync(fromRoot('examples/rules'), join(edge, 'rules'), { recursive: true });
    writeFileSync(join(edge, 'token'), this.token);
    const probe = (opts.probes ?? true) ? `, probe: { targets: [${CLOUD.service.v4}, "${CLOUD.service.v6}"] }` : '';
    writeFileSync(this.edgeAgent.configFile, [
      'links:',
      `  - { name: wan0, interface: wan0, nextHop4: ${CLOUD.c0.v4}, nextHop6: "${CLOUD.c0.v6}"${probe} }`,
      `  - { name: wan1, interface: wan1, nextHop4: ${CLOUD.c1.v4}, nextHop6: "${CLOUD.c1.v6}"${probe} }`,
      'defaultLink: wan0',
      `listen: { http: "[::]:${EDGE_AGENT_PORT}" }`,
      `auth: { tokenFile: ${join(edge, 'token')} }`,
      `rules: { source: directory, directory: ${join(edge, 'rules')} }`,
      `policies: { store: file, file: ${join(edge, 'policies.yaml')} }`,
      `stateDir: ${join(edge, 'state')}`,
      `datapath: { pinDir: ${this.edgeAgent.pinDir}, flowTableSize: 65536 }`,
      'log: { level: info }',
      ...(opts.edgeConfig ?? []),
    ].join('\n') + '\n');
    // The cloud end: each link's next hop is the edge's end of it.
    writeFileSync(this.cloudAgent.configFile, [
      'mode: reply-by-arrival',
      'links:',
      `  - { name: tun0, interface: c0, nextHop4: ${EDGE.wan0.v4}, nextHop6: "${EDGE.wan0.v6}" }`,
      `  - { name: tun1, interface: c1, nextHop4: ${EDGE.wan1.v4}, nextHop6: "${EDGE.wan1.v6}" }`,
      `listen: { http: "${CLOUD.service.v4}:${EDGE_AGENT_PORT}" }`,
      `datapath: { pinDir: ${this.cloudAgent.pinDir}, flowTableSize: 65536 }`,
      'log: { level: info }',
    ].join('\n') + '\n');
  }

  /** The edge agent's REST API with the rig's token (called from the edge). */
  call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): LabAnswer {
    return this.edgeAgent.api.http({ method, path, headers: { authorization: `Bearer ${this.token}`, ...headers }, ...(body !== undefined ? { body } : {}) })[0]!;
  }

  /** Create or replace a policy on the edge; returns the answer. */
  putPolicy(name: string, spec: unknown): LabAnswer {
    const current = this.call('GET', `/v1/policies/${name}`);
    const etag = current.status === 200 ? current.headers?.etag : undefined;
    return etag ? this.call('PUT', `/v1/policies/${name}`, { spec }, { 'if-match': etag }) : this.call('POST', '/v1/policies', { name, spec });
  }

  /**
   * Report a session to the edge agent as its proxy would: from the pod (a sidecar; over the
   * family of its local address, from that address) or from the edge (a host-network proxy).
   */
  report(from: 'pod' | 'edge', report: { local: string } & Record<string, unknown>): LabAnswer {
    const v6 = report.local.startsWith('[');
    // A host-network proxy calls the agent at its own address, so the call comes from it.
    const local = v6 ? report.local.slice(0, report.local.indexOf(']') + 1) : report.local.slice(0, report.local.lastIndexOf(':'));
    const client = from === 'edge' ? new LabAgentClient(this.lab, this.lab.edge, `http://${local}:${EDGE_AGENT_PORT}`) : this.fromPod[v6 ? 6 : 4];
    return client.http({ method: 'POST', path: '/v1/sessions', body: report })[0]!;
  }

  ns(place: OverlayPlace): string {
    return place === 'pod' ? this.lab.pod! : place === 'edge' ? this.lab.edge : this.lab.cloud;
  }

  /** One connection from `from`: upload, download, the address the far end saw. */
  exchange(from: OverlayPlace, o: { dst: string; port: number; up?: number; down?: number; src?: string; sport?: number }): ExchangeResult {
    const argv = ['python3', SESSIONS_TOOL, 'exchange', o.dst, String(o.port), String(o.up ?? 1000), String(o.down ?? 1000), '0', o.src ?? '', String(o.sport ?? '')];
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

  /** A long session from `from`: a request every 20 ms for `ms`, on one connection. */
  loop(from: OverlayPlace, o: { dst: string; port: number; ms: number; up: number; down: number; src?: string; sport?: number }): SessionLoop {
    const child = this.lab.spawn(this.ns(from), ['python3', SESSIONS_TOOL, 'loop', o.dst, String(o.port), String(o.ms), String(o.up), String(o.down), '0', o.src ?? '', '', String(o.sport ?? '')]);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const done = new Promise<Record<string, unknown>[]>((resolve) => {
      child.once('exit', () => resolve(out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)));
    });
    return { done };
  }

  async stop(): Promise<void> {
    await Promise.all([this.edgeAgent.stop('SIGTERM'), this.cloudAgent.stop('SIGTERM')]);
    this.lab.destroy();
    for (const a of [this.edgeAgent, this.cloudAgent]) rmSync(a.pinDir, { recursive: true, force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}
