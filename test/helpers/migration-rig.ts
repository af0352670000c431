/**
 * The overlay lab set up to watch steering across agent restarts (test/datapath/migration.test.ts,
 * bench/migration.ts): the facade in a driver process in the edge namespace plays the agent, and
 * live UDP streams keep flowing while it is restarted with other table sizes or objects.
 *
 *   service 10.20.0.1 / fd20::1   default route via wan0; its live flows are steered to wan1
 *   service 10.20.0.2 / fd20::2   routed via wan1;        its live flows are steered to wan0
 *
 * So a live flow's packet that arrives in the cloud by the other link was steered wrongly (or not
 * at all), in either direction. One unsteered control flow stays on wan0. Counted by nftables
 * in the cloud (IngressCounters), per flow and link.
 */
import { rmSync } from 'node:fs';
import type { FlowKey } from '../../src/datapath/index.js';
import { DatapathDriver } from './driver-client.js';
import { CLOUD, EDGE, IngressCounters, TRAFFIC_TOOL, WanLab } from './netns.js';

export const TO_WAN0 = 1;
export const TO_WAN1 = 2;
const UDP_PORT = 5002;
const SERVICE2 = { v4: '10.20.0.2', v6: 'fd20::2' };

export interface LiveFlow {
  name: string;
  key: FlowKey;
  /** null: the unsteered control flow. */
  policyId: number | null;
  /** The cloud device its packets must arrive by, and the one that means "steered wrongly". */
  right: 'c0' | 'c1';
  wrong: 'c0' | 'c1';
}

const udp = (src: string, sport: number, dst: string): FlowKey => ({ protocol: 'udp', src, sport, dst, dport: UDP_PORT });

export const LIVE_FLOWS: LiveFlow[] = [
  { name: 'v4-to-wan1', key: udp(EDGE.wan0.v4, 42001, CLOUD.service.v4), policyId: TO_WAN1, right: 'c1', wrong: 'c0' },
  { name: 'v6-to-wan1', key: udp(EDGE.wan0.v6, 42002, CLOUD.service.v6), policyId: TO_WAN1, right: 'c1', wrong: 'c0' },
  { name: 'v4-to-wan0', key: udp(EDGE.wan1.v4, 42003, SERVICE2.v4), policyId: TO_WAN0, right: 'c0', wrong: 'c1' },
  { name: 'v6-to-wan0', key: udp(EDGE.wan1.v6, 42004, SERVICE2.v6), policyId: TO_WAN0, right: 'c0', wrong: 'c1' },
  { name: 'unsteered', key: udp(EDGE.wan0.v4, 42005, CLOUD.service.v4), policyId: null, right: 'c0', wrong: 'c1' },
];

export type OpenResult = {
  adopted: boolean;
  /** How long Datapath.open took in the driver: load, and migration if any. */
  openMs: number;
  flowTableSize: number;
  layoutVersion: number;
  migration: null | { fromLayout: number | null; toLayout: number; maps: { name: string; reasons: string[]; entries: number; copied: number; dropped: number }[]; swapped: string[]; copyMs: number; swapMs: number; totalMs: number };
};

export class MigrationRig {
  dp!: DatapathDriver;
  private counters!: IngressCounters;

  private constructor(
    readonly lab: WanLab,
    readonly pinDir: string,
  ) {}

  /** Build the lab, start the agent (driver) with `open`, set links and policies, write the live flows. */
  static async start(tag: string, open: Record<string, unknown>): Promise<MigrationRig> {
    const rig = new MigrationRig(WanLab.create(tag), `/sys/fs/bpf/wst-${tag}-${process.pid}`);
    try {
      await rig.build(open);
    } catch (err) {
      await rig.destroy();
      throw err;
    }
    return rig;
  }

  private async build(open: Record<string, unknown>): Promise<void> {
    const { lab } = this;
    lab.exec(lab.cloud, ['ip', 'addr', 'add', `${SERVICE2.v4}/32`, 'dev', 'lo']);
    lab.exec(lab.cloud, ['ip', 'addr', 'add', `${SERVICE2.v6}/128`, 'dev', 'lo', 'nodad']);
    lab.exec(lab.edge, ['ip', 'route', 'add', `${SERVICE2.v4}/32`, 'via', CLOUD.c1.v4, 'dev', 'wan1']);
    lab.exec(lab.edge, ['ip', '-6', 'route', 'add', `${SERVICE2.v6}/128`, 'via', CLOUD.c1.v6, 'dev', 'wan1']);
    await lab.spawnReady(lab.cloud, ['python3', TRAFFIC_TOOL, 'udp-server', String(UDP_PORT)], 'udp-server');
    this.counters = IngressCounters.install(lab, LIVE_FLOWS.map((f) => ({ name: f.name, match: `udp sport ${f.key.sport}` })));

    await this.openAgent(open);
    await this.dp.call('attach', 'wan0');
    await this.dp.call('attach', 'wan1');
    const [wan0, wan1] = [await this.dp.call<number>('ifindex', 'wan0'), await this.dp.call<number>('ifindex', 'wan1')];
    await this.dp.call('setLink', 0, { ifindex: wan0, up: true, nextHop4: CLOUD.c0.v4, nextHop6: CLOUD.c0.v6 });
    await this.dp.call('setLink', 1, { ifindex: wan1, up: true, nextHop4: CLOUD.c1.v4, nextHop6: CLOUD.c1.v6 });
    await this.dp.call('setPolicy', TO_WAN0, { redirectLink: 0 });
    await this.dp.call('setPolicy', TO_WAN1, { redirectLink: 1 });
    await this.dp.call('upsertFlows', LIVE_FLOWS.filter((f) => f.policyId !== null).map((f) => ({ key: f.key, policyId: f.policyId })));
  }

  private async openAgent(open: Record<string, unknown>): Promise<OpenResult> {
    const d = DatapathDriver.start(this.lab, this.lab.edge);
    this.dp = d;
    return d.call<OpenResult>('open', { pinDir: this.pinDir, ...open });
  }

  /** Every live flow sends a UDP packet every ~2 ms until the lab is destroyed. */
  startStreams(): void {
    for (const f of LIVE_FLOWS) {
      this.lab.spawn(this.lab.edge, ['python3', TRAFFIC_TOOL, 'udp-client', f.key.src, String(f.key.sport), f.key.dst, String(UDP_PORT), '10000000']);
    }
  }

  /** Packets of each live flow so far, by the link it should arrive by and the other one. */
  counts(): Record<string, { right: number; wrong: number }> {
    const c = this.counters.read();
    return Object.fromEntries(LIVE_FLOWS.map((f) => [f.name, { right: c[`${f.name}|${f.right}`] ?? 0, wrong: c[`${f.name}|${f.wrong}`] ?? 0 }]));
  }

  /** Wait until every live flow has sent `n` more packets on its link than in `since`. */
  async flowing(since: Record<string, { right: number }>, n = 25, deadlineMs = 30_000): Promise<void> {
    const end = Date.now() + deadlineMs;
    for (;;) {
      const now = this.counts();
      const slow = LIVE_FLOWS.filter((f) => now[f.name]!.right < since[f.name]!.right + n);
      if (slow.length === 0) return;
      if (Date.now() > end) throw new Error(`not flowing on their links: ${slow.map((f) => f.name).join(', ')} (${JSON.stringify(now)})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** An agent restart: this one exits (pins and filters stay), a new one opens with `open`. */
  async restart(open: Record<string, unknown>): Promise<OpenResult> {
    await this.dp.exit();
    return this.openAgent(open);
  }

  /** Every flow entry as `key -> policy id`. */
  async flows(): Promise<Map<string, number>> {
    const list = await this.dp.call<{ protocol: number; src: string; sport: number; dst: string; dport: number; policyId: number }[]>('listFlows');
    return new Map(list.map((f) => [`${f.protocol} ${f.src}:${f.sport} ${f.dst}:${f.dport}`, f.policyId]));
  }

  async destroy(): Promise<void> {
    try {
      await this.dp?.call('destroy');
    } catch {
      /* the namespace goes anyway */
    }
    this.lab.destroy();
    rmSync(this.pinDir, { recursive: true, force: true });
  }
}

/** The key string MigrationRig.flows() uses, for a FlowKey. */
export function flowKeyString(k: FlowKey, protocolNumber = k.protocol === 'udp' ? 17 : 6): string {
  return `${protocolNumber} ${k.src}:${k.sport} ${k.dst}:${k.dport}`;
}
