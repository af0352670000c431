/**
 * The failover rig shared by the link tests and bench/failover.ts: the two-link lab, a TWAMP-light
 * reflector, a UDP sink and an HTTP service that samples goodput in the cloud, `wansteer agent` in
 * the edge probing both links (default settings, or a `probe.profile`), and policies that prefer
 * wan1 (the link the main table does not use).
 *
 * Faults: carrier loss (the far end of wan1 set down), loss on wan1's path (drop(): dropped where
 * the packets arrive, at the cloud's c1, so steered packets are lost too), and delay and jitter on
 * wan1's way back, the cloud's c1 (delay(): a delay line, no netem here). Two kinds of steered
 * flow: 1 kpps UDP streams, whose sink reports when their packets change ingress link
 * (CLOCK_MONOTONIC, shared by every namespace), so "fault -> first packet on the new link" is
 * measured on the wire, to the millisecond; and TCP uploads (upload()), whose receiver samples
 * the bytes each connection delivered every 5 ms, so "fault -> goodput back" is measured where
 * a user feels it (src/lab/goodput.ts).
 */
import type { ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { GoodputMeter, LabAgentClient, startUploads, type DelayLine, type LabAnswer, type LabLinkView, type LabRequest } from '../../src/lab/index.js';
import { CLOUD, EDGE, WanLab } from '../helpers/netns.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ARRIVALS = join(ROOT, 'test/links/udp-arrivals.py');
const MAIN = join(ROOT, 'src/cli/main.ts');
const AGENT = `http://${EDGE.wan0.v4}:9090`;
const HOST = 'cloud-service.cloud.svc.cluster.local';
export const SINK_PORT = 9000;
export const UPLOAD_PORT = 8080;

/** Policies by the end-user header that selects them; every one prefers wan1, then wan0. */
export const POLICIES: Record<string, { maxRttMs?: number; maxLossPercent?: number; maxJitterMs?: number } | null> = {
  plain: null,
  'loss-10': { maxLossPercent: 10 },
  'rtt-50': { maxRttMs: 50 },
  'jitter-10': { maxJitterMs: 10 },
  'loss-50': { maxLossPercent: 50 },
};

export interface Arrival {
  at: bigint;
  sport: number;
  dev: string;
  /** When the flow's packet before this one arrived (on the link it left): 0n for the first. */
  before: bigint;
}

export type LinkView = LabLinkView;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class FailoverLab {
  readonly arrivals: Arrival[] = [];
  log = '';
  private agent: ChildProcess | undefined;
  private wan1Back: DelayLine | undefined;
  private goodput: GoodputMeter | undefined;
  private readonly api: LabAgentClient;
  /** Per rig, so two rigs of one process (bench/failover.ts runs two at once) keep apart. */
  private readonly pinDir: string;

  private constructor(readonly lab: WanLab, private readonly dir: string, tag: string) {
    this.pinDir = `/sys/fs/bpf/wst-${process.pid}-${tag}`;
    this.api = new LabAgentClient(lab, lab.edge, AGENT, () => `the agent's log:\n${this.log.slice(-3000)}`);
  }

  /**
   * `probes: false`: the links have no probe (carrier only), to measure what probing costs;
   * `probes: 'fast'`: they probe with `profile: fast`.
   * `cli`: how to run `wansteer` (default: from source under tsx; the benchmarks pass a build).
   * `rules: 'cluster-cut-off'`: rules and policies from a cluster whose API server cannot be
   * reached, with the same VirtualService and policies in the node's cluster snapshot, as on a
   * node that rebooted while cut off from its control plane.
   */
  static async start(
    tag = 'links',
    { probes = true as boolean | 'fast', cli = [process.execPath, '--import', 'tsx', MAIN], rules = 'files' as 'files' | 'cluster-cut-off' } = {},
  ): Promise<FailoverLab> {
    const lab = WanLab.create(tag);
    const rig = new FailoverLab(lab, mkdtempSync(join(tmpdir(), 'wansteer-links-')), tag);
    try {
      await rig.setUp(probes, cli, rules);
    } catch (err) {
      await rig.stop();
      throw err;
    }
    return rig;
  }

  private async setUp(probes: boolean | 'fast', cli: string[], rules: 'files' | 'cluster-cut-off'): Promise<void> {
    const { lab, dir } = this;
    mkdirSync(join(dir, 'rules'));
    const probe = probes ? `, probe: { target: ${CLOUD.service.v4}${probes === 'fast' ? ', profile: fast' : ''} }` : '';
    writeFileSync(join(dir, 'rules/cloud.yaml'), virtualService());
    writeFileSync(join(dir, 'policies.yaml'), policyFile());
    let sources = [`rules: { source: directory, directory: ${join(dir, 'rules')} }`, `policies: { store: file, file: ${join(dir, 'policies.yaml')} }`];
    let agentCli = cli;
    if (rules === 'cluster-cut-off') {
      sources = ['rules: { source: cluster }', 'policies: { store: cluster, namespace: wansteer-system }'];
      // An API server at a TEST-NET address: nothing answers there.
      writeFileSync(
        join(dir, 'kubeconfig'),
        'apiVersion: v1\nkind: Config\nclusters: [{name: edge, cluster: {server: "https://192.0.2.10:6443", insecure-skip-tls-verify: true}}]\nusers: [{name: agent, user: {token: t}}]\ncontexts: [{name: edge, context: {cluster: edge, user: agent}}]\ncurrent-context: edge\n',
      );
      agentCli = ['env', '-u', 'KUBERNETES_SERVICE_HOST', `KUBECONFIG=${join(dir, 'kubeconfig')}`, ...cli];
      const policies = policyItems().map(({ name, version, spec }) => ({ name, version: String(version), spec }));
      mkdirSync(join(dir, 'state'));
      writeFileSync(join(dir, 'state/cluster-snapshot.json'), JSON.stringify({ version: 1, writtenAt: new Date().toISOString(), virtualServices: [parse(virtualService())], policies }));
    }
    writeFileSync(
      join(dir, 'config.yaml'),
      [
        'links:',
        `  - { name: wan0, interface: wan0, nextHop4: ${CLOUD.c0.v4}${probe} }`,
        `  - { name: wan1, interface: wan1, nextHop4: ${CLOUD.c1.v4}${probe} }`,
        'defaultLink: wan0',
        'listen: { http: "0.0.0.0:9090" }',
        ...sources,
        `stateDir: ${join(dir, 'state')}`,
        `datapath: { pinDir: ${this.pinDir}, flowTableSize: 65536 }`,
        'log: { level: info }',
      ].join('\n') + '\n',
    );

    const [wan1Back, , sink, goodput] = await Promise.all([
      lab.delayLine(lab.cloud, 'c1'),
      lab.spawnReady(lab.cloud, [...cli, 'reflector', '--listen', `${CLOUD.service.v4}:862`], 'reflector'),
      lab.spawnReady(lab.cloud, ['python3', ARRIVALS, 'sink', String(SINK_PORT)], 'sink'),
      GoodputMeter.start(lab, lab.cloud, UPLOAD_PORT),
    ]);
    this.wan1Back = wan1Back;
    this.goodput = goodput;
    createInterface({ input: sink.stdout! }).on('line', (line) => {
      const [at, sport, dev, before] = line.split(' ');
      this.arrivals.push({ at: BigInt(at!), sport: Number(sport), dev: dev!, before: BigInt(before ?? 0) });
    });
    this.agent = lab.spawn(lab.edge, [...agentCli, 'agent', '--config', join(dir, 'config.yaml')]);
    this.agent.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    this.agent.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    // Generous: an agent started from source under tsx on a loaded machine takes its time.
    await this.api.waitReady(this.agent, 60_000);
    await this.waitLinks((ls) => ls.every((l) => l.up && (!probes || l.rttMs !== undefined)), 30_000, probes ? 'both links up and measured' : 'both links up');
  }

  /** The agent's process id (nsenter execs it: the child is the agent itself). */
  get agentPid(): number {
    return this.agent!.pid!;
  }

  async stop(): Promise<void> {
    const a = this.agent;
    if (a && a.exitCode === null) {
      const exited = new Promise((r) => a.once('exit', r));
      a.kill('SIGTERM');
      await Promise.race([exited, sleep(3000)]);
    }
    this.lab.destroy();
    rmSync(this.pinDir, { recursive: true, force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }

  http(...reqs: LabRequest[]): LabAnswer[] {
    return this.api.http(...reqs);
  }

  links(): LinkView[] {
    return this.api.links();
  }

  /** wansteer_link_changes_total{policy,kind}, 0 when absent. */
  linkChanges(policy: string, kind: 'failover' | 'failback'): number {
    const text = this.http({ path: '/metrics' })[0]!.body as string;
    const m = new RegExp(`^wansteer_link_changes_total\\{policy="${policy}",kind="${kind}"\\} (\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  }

  waitLinks(ok: (links: LinkView[]) => boolean, timeoutMs: number, what: string): Promise<LinkView[]> {
    return this.api.waitLinks(ok, timeoutMs, what);
  }

  /** Report a session of user `user` from EDGE.wan0:sport to the sink and start its stream. */
  steer(sport: number, user: string, seconds: number): ChildProcess {
    const [answer] = this.http({
      method: 'POST',
      path: '/v1/sessions',
      body: {
        direction: 'outbound', protocol: 'udp',
        local: `${EDGE.wan0.v4}:${sport}`, remote: `${CLOUD.service.v4}:${SINK_PORT}`,
        request: { authority: HOST, path: '/', method: 'GET', headers: { 'end-user': user } },
      },
    });
    if (answer?.body?.status !== 'steered') throw new Error(`session not steered: ${JSON.stringify(answer)}`);
    return this.lab.spawn(this.lab.edge, ['python3', ARRIVALS, 'send', EDGE.wan0.v4, String(sport), CLOUD.service.v4, String(SINK_PORT), String(seconds)]);
  }

  /**
   * Report TCP sessions of user `user` from EDGE.wan0:sport (one per port) to the cloud's HTTP
   * service and start their uploads, paced at `kibPerSecond` each; `meter` samples what arrives.
   */
  upload(sports: readonly number[], user: string, seconds: number, kibPerSecond = 200): ChildProcess {
    const answers = this.http(
      ...sports.map((sport) => ({
        method: 'POST',
        path: '/v1/sessions',
        body: {
          direction: 'outbound', protocol: 'tcp',
          local: `${EDGE.wan0.v4}:${sport}`, remote: `${CLOUD.service.v4}:${UPLOAD_PORT}`,
          request: { authority: HOST, path: '/', method: 'POST', headers: { 'end-user': user } },
        },
      })),
    );
    for (const a of answers) if (a.body?.status !== 'steered') throw new Error(`session not steered: ${JSON.stringify(a)}`);
    return startUploads(this.lab, this.lab.edge, {
      src: EDGE.wan0.v4, sports, dst: CLOUD.service.v4, port: UPLOAD_PORT, host: HOST, user, durationMs: seconds * 1000, kibPerSecond,
    });
  }

  /**
   * The edge's TCP counters (nstat's names: TcpRetransSegs, TcpExtTCPSpuriousRtxHostQueues, …),
   * from /proc/net/snmp and /proc/net/netstat of its namespace.
   */
  tcpCounters(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const file of ['/proc/net/snmp', '/proc/net/netstat']) {
      const lines = this.lab.exec(this.lab.edge, ['cat', file]).trim().split('\n');
      for (let i = 0; i + 1 < lines.length; i += 2) {
        const names = lines[i]!.split(' ');
        const values = lines[i + 1]!.split(' ');
        const group = names[0]!.replace(/:$/, '');
        for (let k = 1; k < names.length; k++) out[`${group}${names[k]}`] = Number(values[k]);
      }
    }
    return out;
  }

  /** The goodput of the uploads, as the cloud's service received them. */
  get meter(): GoodputMeter {
    return this.goodput!;
  }

  /** The first time (CLOCK_MONOTONIC ns) after `after` that the flow's packets came in by `dev`. */
  async arrival(sport: number, dev: 'c0' | 'c1', after: bigint, timeoutMs: number): Promise<bigint> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // The sink prints changes only; a flow already on `dev` since before `after` counts from `after`.
      const mine = this.arrivals.filter((a) => a.sport === sport);
      const hit = mine.find((a) => a.at >= after && a.dev === dev);
      if (hit) return hit.at;
      const before = mine.filter((a) => a.at < after).at(-1);
      if (before?.dev === dev && !mine.some((a) => a.at >= after)) return after;
      if (Date.now() > deadline) throw new Error(`flow ${sport} never arrived by ${dev}: ${JSON.stringify(mine.map((a) => [String(a.at), a.dev]))}\n${this.log.slice(-3000)}`);
      await sleep(5);
    }
  }

  /**
   * When a fault that moved the flow to its link at `moved` (an arrival() answer) hit it on the
   * wire: its 1 kpps packets stopped arriving by the old link then, so half a millisecond after
   * the last one did. Independent of how long the command that made the fault took.
   */
  onset(sport: number, moved: bigint): bigint | undefined {
    const change = this.arrivals.find((a) => a.sport === sport && a.at === moved);
    return change && change.before > 0n ? change.before + 500_000n : undefined;
  }

  /** Ingress changes of a flow at or after `after`. */
  changes(sport: number, after: bigint): Arrival[] {
    return this.arrivals.filter((a) => a.sport === sport && a.at >= after);
  }

  // ---- faults ---------------------------------------------------------------------------

  /**
   * Carrier loss on the edge's wan1: its far end set down. Returns when it took effect, as well
   * as it can be told: the middle of the command that did it (its netlink call is in there
   * somewhere; starting and ending the process can take tens of ms on a loaded machine).
   */
  carrier(up: boolean): bigint {
    return during(() => this.lab.setCloudLink('c1', up));
  }

  /**
   * Lose all (a blackhole, carrier up) or a random share of the packets the edge sends over wan1,
   * on the path (dropped as they arrive at the cloud's c1: WanLab.drop); null: none. Returns when
   * it took effect, as carrier() does.
   */
  drop(percent: number | null): bigint {
    return during(() => this.lab.drop('wan1', percent));
  }

  /**
   * Added delay (and jitter: uniform 0..jitterMs, no reordering) on every frame the cloud sends
   * by c1, i.e. on wan1's way back; 0 removes the fault. Returns when it took effect.
   */
  async delay(ms: number, jitterMs = 0): Promise<bigint> {
    await this.wan1Back!.set(ms, jitterMs);
    return process.hrtime.bigint();
  }
}

export const ms = (ns: bigint) => Number(ns) / 1e6;

/** The middle of `act` on CLOCK_MONOTONIC. */
function during(act: () => unknown): bigint {
  const start = process.hrtime.bigint();
  act();
  return (start + process.hrtime.bigint()) / 2n;
}


function virtualService(): string {
  const routes = Object.keys(POLICIES).map(
    (user) => `  - name: ${user}\n    match:\n    - headers:\n        end-user:\n          exact: ${user}\n    route:\n    - destination:\n        host: ${HOST}\n`,
  );
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: cloud-service
  namespace: default
spec:
  hosts:
  - ${HOST}
  http:
${routes.join('')}`;
}

/** The policies: one per entry of POLICIES, each preferring wan1. */
function policyItems(): { name: string; version: number; spec: object }[] {
  return Object.entries(POLICIES).map(([user, sla], i) => {
    const action = { links: ['wan1', 'wan0'], mode: 'redirect', ...(sla ? { sla } : {}) };
    return { name: user, version: i + 1, spec: { match: { route: { virtualService: 'default/cloud-service', route: user } }, action } };
  });
}

function policyFile(): string {
  const items = policyItems().map(({ name, version, spec }) => `- name: ${name}\n  version: ${version}\n  spec: ${JSON.stringify(spec)}\n`);
  return `apiVersion: wansteer.io/v1alpha1\nkind: WanPolicyList\nrevision: ${items.length}\nitems:\n${items.join('')}`;
}
