/**
 * A two-site WAN lab in network namespaces, for the demo, the tests and the benchmarks:
 *
 *   edge ns                                   cloud ns
 *   wan0 10.10.1.1/24 fd10:1::1/64  ──veth──  c0 10.10.1.2  fd10:1::2
 *   wan1 10.10.2.1/24 fd10:2::1/64  ──veth──  c1 10.10.2.2  fd10:2::2
 *   default route via wan0                    service 10.20.0.1, fd20::1 (on lo)
 *
 * The cloud answers on whichever link a packet came in by (replies go back by the edge's
 * connected subnets), and has reverse-path filtering off so steered packets are accepted.
 * Everything is named with a per-process prefix and removed by destroy(); stale labs of dead
 * test processes are removed on creation, so a crashed run never leaves namespaces behind.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fromRoot } from '../config/paths.js';

/** The traffic tool (python3: it can set IP_TOS, which Node cannot). */
export const TRAFFIC_TOOL = fromRoot('scripts/traffic.py');
/** HTTP (and gRPC) from inside a namespace: scripts/ns-http.mjs under nsenter. */
const NS_HTTP = fromRoot('scripts/ns-http.mjs');
/** The delay line (scripts/delay-line.py) and the tc program it turns frames around with. */
const DELAY_TOOL = fromRoot('scripts/delay-line.py');
const DELAY_PROGRAM = fromRoot('build/bpf/lab_delay.bpf.o');

export const EDGE = {
  wan0: { v4: '10.10.1.1', v6: 'fd10:1::1' },
  wan1: { v4: '10.10.2.1', v6: 'fd10:2::1' },
};
export const CLOUD = {
  c0: { v4: '10.10.1.2', v6: 'fd10:1::2' },
  c1: { v4: '10.10.2.2', v6: 'fd10:2::2' },
  service: { v4: '10.20.0.1', v6: 'fd20::1' },
};

const PREFIX = 'wst';

export function sh(cmd: string, args: string[], opts: { input?: string } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input: opts.input });
}

function namespaces(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Remove labs and bpffs pin directories left by test, bench or demo processes that no longer
 * exist (a crash, a kill -9): namespaces `wst<pid>-…`, pins `/sys/fs/bpf/wst-…<pid>…`.
 */
export function reapStaleLabs(): void {
  for (const ns of namespaces()) {
    const m = /^wst(\d+)-/.exec(ns);
    if (m && !alive(Number(m[1]))) sh('ip', ['netns', 'del', ns]);
  }
  let pins: string[] = [];
  try {
    pins = readdirSync('/sys/fs/bpf');
  } catch {
    return;
  }
  for (const dir of pins) {
    const m = /^(?:wst|wansteer-demo)-(?:[a-z]+-)*(\d+)(?:-|$)/.exec(dir);
    if (m && !alive(Number(m[1]))) rmSync(join('/sys/fs/bpf', dir), { recursive: true, force: true });
  }
}

let counter = 0;

export class WanLab {
  readonly edge: string;
  readonly cloud: string;
  private readonly children = new Set<ChildProcess>();

  private constructor(edge: string, cloud: string) {
    this.edge = edge;
    this.cloud = cloud;
  }

  /** Build a lab; names carry this process's pid, so a lab of a dead process is reaped. */
  static create(tag = String(counter++)): WanLab {
    reapStaleLabs();
    const lab = new WanLab(`${PREFIX}${process.pid}-${tag}-e`, `${PREFIX}${process.pid}-${tag}-c`);
    try {
      lab.build();
    } catch (err) {
      lab.destroy();
      throw err;
    }
    return lab;
  }

  /** A handle on a lab another process built, to run commands in it (its builder destroys it). */
  static existing(edge: string, cloud: string): WanLab {
    return new WanLab(edge, cloud);
  }

  private build(): void {
    const { edge: e, cloud: c } = this;
    sh('ip', ['netns', 'add', e]);
    sh('ip', ['netns', 'add', c]);
    const batch = (ns: string, lines: string[]) => sh('ip', ['-n', ns, '-batch', '-'], { input: lines.join('\n') + '\n' });
    // Create the veths in the edge ns and move the far ends to the cloud.
    batch(e, [
      `link add wan0 type veth peer name c0 netns ${c}`,
      `link add wan1 type veth peer name c1 netns ${c}`,
      'link set lo up',
      `addr add ${EDGE.wan0.v4}/24 dev wan0`,
      `addr add ${EDGE.wan1.v4}/24 dev wan1`,
      `addr add ${EDGE.wan0.v6}/64 dev wan0 nodad`,
      `addr add ${EDGE.wan1.v6}/64 dev wan1 nodad`,
      'link set wan0 up',
      'link set wan1 up',
      `route add default via ${CLOUD.c0.v4} dev wan0`,
      `route add default via ${CLOUD.c0.v6} dev wan0`,
    ]);
    batch(c, [
      'link set lo up',
      `addr add ${CLOUD.c0.v4}/24 dev c0`,
      `addr add ${CLOUD.c1.v4}/24 dev c1`,
      `addr add ${CLOUD.c0.v6}/64 dev c0 nodad`,
      `addr add ${CLOUD.c1.v6}/64 dev c1 nodad`,
      `addr add ${CLOUD.service.v4}/32 dev lo`,
      `addr add ${CLOUD.service.v6}/128 dev lo nodad`,
      'link set c0 up',
      'link set c1 up',
    ]);
    for (const key of ['all', 'default', 'c0', 'c1']) {
      this.exec(c, ['sysctl', '-qw', `net.ipv4.conf.${key}.rp_filter=0`]);
    }
  }

  /** Run a command in one of the lab's namespaces (network namespace only: bpffs stays visible). */
  exec(ns: string, argv: string[], input?: string): string {
    return sh('nsenter', [`--net=/run/netns/${ns}`, '--', ...argv], { input });
  }

  /** Start a long-running process in a namespace; killed by destroy(). */
  spawn(ns: string, argv: string[]): ChildProcess {
    const child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /**
   * Start a server in a namespace and resolve once it has printed its first output (its
   * "ready"); fails with its stderr if it exits first. Killed by destroy().
   */
  async spawnReady(ns: string, argv: string[], what: string): Promise<ChildProcess> {
    const child = this.spawn(ns, argv);
    await new Promise<void>((resolve, reject) => {
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`${what} exited (${code}): ${err.trim()}`)));
    });
    return child;
  }

  /**
   * A delay line on the frames a device sends (this kernel has no sch_netem): see
   * scripts/delay-line.py. Resolves once it is ready; killed with the lab.
   */
  async delayLine(ns: string, dev: string): Promise<DelayLine> {
    const child = this.spawn(ns, ['python3', DELAY_TOOL, dev, DELAY_PROGRAM]);
    const line = new DelayLine(child);
    await line.ready;
    return line;
  }

  /**
   * Drop packets leaving the edge by `link`: all of them (a blackhole without carrier loss) or a
   * random share; null removes the fault. This kernel has no sch_netem, so the drop is an
   * nftables rule on the link's netdev egress hook, which steered packets (bpf_redirect_neigh)
   * pass through too, as they would a netem qdisc. Returns when the fault took effect.
   */
  drop(link: 'wan0' | 'wan1', percent: number | null): bigint {
    const table = `wsfault_${link}`;
    const verdict = percent === null ? [] : percent >= 100 ? [`add rule netdev ${table} e drop`] : [`add rule netdev ${table} e numgen random mod 100 < ${percent} drop`];
    const script = [
      `add table netdev ${table}`,
      `delete table netdev ${table}`,
      ...(percent === null ? [] : [`add table netdev ${table}`, `add chain netdev ${table} e { type filter hook egress device ${link} priority 0; policy accept; }`, ...verdict]),
    ];
    this.exec(this.edge, ['nft', '-f', '-'], script.join('\n') + '\n');
    return process.hrtime.bigint();
  }

  /** Set a link down or up from the cloud side (carrier loss on the edge's wanN). */
  setCloudLink(dev: 'c0' | 'c1', up: boolean): void {
    sh('ip', ['-n', this.cloud, 'link', 'set', dev, up ? 'up' : 'down']);
  }

  destroy(): void {
    for (const child of this.children) child.kill('SIGKILL');
    this.children.clear();
    for (const ns of [this.edge, this.cloud]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        /* never created, or already gone */
      }
    }
  }
}

/**
 * Packet counters in the cloud namespace, by incoming link and by DSCP, kept by nftables in a
 * table of our own. Each watched flow is named; `read()` returns its counts per link.
 */
export interface FlowMatch {
  name: string;
  /** nft expression that selects the flow's packets, e.g. `tcp sport 40001`. */
  match: string;
}

export class IngressCounters {
  private constructor(
    private readonly lab: WanLab,
    private readonly flows: FlowMatch[],
    private readonly dscps: number[],
  ) {}

  static install(lab: WanLab, flows: FlowMatch[], dscps: number[] = []): IngressCounters {
    const rules: string[] = [];
    for (const f of flows) {
      for (const dev of ['c0', 'c1']) {
        rules.push(`add rule inet wstest count iifname "${dev}" ${f.match} counter comment "${f.name}|${dev}"`);
        for (const d of dscps) {
          rules.push(
            `add rule inet wstest count iifname "${dev}" ${f.match} ip dscp ${d} counter comment "${f.name}|${dev}|dscp${d}"`,
            `add rule inet wstest count iifname "${dev}" ${f.match} ip6 dscp ${d} counter comment "${f.name}|${dev}|dscp${d}"`,
          );
        }
      }
    }
    const script = [
      'add table inet wstest',
      'add chain inet wstest count { type filter hook prerouting priority -300; policy accept; }',
      ...rules,
    ].join('\n');
    lab.exec(lab.cloud, ['nft', '-f', '-'], script + '\n');
    return new IngressCounters(lab, flows, dscps);
  }

  /** Packets per `name|dev` and `name|dev|dscpN`. */
  read(): Record<string, number> {
    return this.readBoth().packets;
  }

  /** Packets and bytes per `name|dev` and `name|dev|dscpN`. */
  readBoth(): { packets: Record<string, number>; bytes: Record<string, number> } {
    const packets: Record<string, number> = {};
    const bytes: Record<string, number> = {};
    const json = JSON.parse(this.lab.exec(this.lab.cloud, ['nft', '-j', 'list', 'table', 'inet', 'wstest'])) as {
      nftables: { rule?: { comment?: string; expr: { counter?: { packets: number; bytes: number } }[] } }[];
    };
    for (const item of json.nftables) {
      const r = item.rule;
      if (!r?.comment) continue;
      const c = r.expr.find((e) => e.counter)?.counter;
      packets[r.comment] = (packets[r.comment] ?? 0) + (c?.packets ?? 0);
      bytes[r.comment] = (bytes[r.comment] ?? 0) + (c?.bytes ?? 0);
    }
    return { packets, bytes };
  }
}

/**
 * Added delay and jitter on one device's outgoing frames, set while the lab runs:
 *
 *   const wan1Back = await lab.delayLine(lab.cloud, 'c1');   // the cloud -> edge half of wan1
 *   await wan1Back.set(80);        // +80 ms
 *   await wan1Back.set(0, 40);     // + uniform(0, 40) ms, in order
 *   await wan1Back.set(0);         // no fault (frames held already still wait their time)
 */
export class DelayLine {
  readonly ready: Promise<void>;
  private readonly acks: (() => void)[] = [];
  private err = '';

  constructor(private readonly child: ChildProcess) {
    child.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    this.ready = new Promise((resolve, reject) => {
      child.once('exit', (code) => {
        const why = new Error(`delay line exited ${code}: ${this.err}`);
        reject(why);
        for (const ack of this.acks.splice(0)) ack();
      });
      let first = true;
      createInterface({ input: child.stdout! }).on('line', () => {
        if (first) {
          first = false;
          resolve();
        } else {
          this.acks.shift()?.();
        }
      });
    });
  }

  /** Set the delay; resolves when the delay line has (de)attached its program. */
  async set(delayMs: number, jitterMs = 0): Promise<void> {
    await this.ready;
    if (this.child.exitCode !== null) throw new Error(`delay line exited ${this.child.exitCode}: ${this.err}`);
    const acked = new Promise<void>((resolve) => this.acks.push(resolve));
    this.child.stdin!.write(`${delayMs} ${jitterMs}\n`);
    await acked;
  }
}

export interface LabRequest {
  method?: string;
  /** Path on the agent, e.g. `/v1/links`. */
  path: string;
  headers?: Record<string, string>;
  /** Sent as JSON. */
  body?: unknown;
}

export interface LabAnswer {
  /** 0 when the request failed (then `error` says why). */
  status: number;
  headers?: Record<string, string>;
  body?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  error?: string;
}

/** One entry of the agent's GET /v1/links. */
export interface LabLinkView {
  name: string;
  up: boolean;
  rttMs?: number;
  lossPercent?: number;
  jitterMs?: number;
  reason?: string;
  activeFor: string[];
}

/**
 * The agent's REST API as seen from inside a lab namespace (the source address is that
 * namespace's), for the demo, the tests and the benchmarks:
 *
 *   const api = new LabAgentClient(lab, lab.edge, 'http://10.10.1.1:9090', () => 'see agent.log');
 *   await api.waitReady(agentProcess, 30_000);
 *   const [answer] = api.http({ method: 'POST', path: '/v1/sessions', body: session });
 *   await api.waitLinks((ls) => ls.every((l) => l.up), 10_000, 'both links up');
 */
export class LabAgentClient {
  constructor(
    private readonly lab: WanLab,
    private readonly ns: string,
    readonly base: string,
    /** Added to timeout errors: where the agent's log is, or its tail. */
    private readonly logHint: () => string = () => '',
  ) {}

  /** Requests in one client process, in order. */
  http(...reqs: LabRequest[]): LabAnswer[] {
    const job = {
      http: reqs.map((r) => ({
        method: r.method ?? 'GET',
        url: this.base + r.path,
        headers: { ...(r.body !== undefined ? { 'content-type': 'application/json' } : {}), ...r.headers },
        body: r.body === undefined ? undefined : JSON.stringify(r.body),
      })),
    };
    return JSON.parse(this.lab.exec(this.ns, [process.execPath, NS_HTTP, 'call'], JSON.stringify(job))) as LabAnswer[];
  }

  links(): LabLinkView[] {
    return (this.http({ path: '/v1/links' })[0]?.body?.items ?? []) as LabLinkView[];
  }

  /** Until /readyz answers 200; fails at once if the agent exits. */
  async waitReady(agent: ChildProcess, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (agent.exitCode !== null) throw new Error(`the agent exited (${agent.exitCode})${this.hint()}`);
      if (this.http({ path: '/readyz' })[0]?.status === 200) return;
      await sleep(200);
    }
    throw new Error(`the agent was not ready in ${timeoutMs / 1000} s${this.hint()}`);
  }

  /** Until GET /v1/links satisfies `ok`; returns what it saw last. */
  async waitLinks(ok: (links: LabLinkView[]) => boolean, timeoutMs: number, what: string): Promise<LabLinkView[]> {
    const deadline = Date.now() + timeoutMs;
    let last: LabLinkView[] = [];
    while (Date.now() < deadline) {
      last = this.links();
      if (ok(last)) return last;
      await sleep(100);
    }
    throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)}${this.hint()}`);
  }

  private hint(): string {
    const h = this.logHint();
    return h ? `; ${h}` : '';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
