/**
 * Internet links (issue 12) on the lab built like a real edge (src/lab/internet.ts), with the
 * agent as it ships:
 *
 * Throughput of a pod's TCP connection through the node's NAT to the cloud (iperf3, 4 s), in one
 * run, rounds alternating three ways so drift on the machine hits them alike (medians):
 *   plain       no wansteer at all (agent stopped, `wansteer cleanup`): the default route, wan0,
 *               and the CNI's masquerade — what the node does without us
 *   steered     the agent running, the connection's class (DSCP 10) bound to wan1: nftables marks
 *               it, `ip rule` picks wan1's table, the agent's masquerade gives it wan1's address,
 *               connmark brings the download back; the tc program counts it on wan1
 *   unsteered   the agent running, a connection of no class (it passes the agent's rules)
 *   Target: steered >= 95 % of plain.
 *
 * Failover as a client that reconnects on error feels it: time from the fault (made in the ISP)
 * to the first answer over the other link, for carrier loss and a blackhole, TRIALS each.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { EdgeRig, INTERNET_CLOUD, ISPS, SESSION_PORT, SESSIONS_TOOL } from '../src/lab/index.js';
import { buildShippedAgent, type Figure, median, report, requireRoot } from './lib.js';

const SECONDS = 4;
const ROUNDS = 5;
const TRIALS = 10;
const IPERF_PORT = 5201;
const CLASS_10 = 10 << 2;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

async function throughput(rig: EdgeRig, cli: string[]): Promise<Figure[]> {
  const server = rig.lab.spawn(rig.lab.cloud, ['iperf3', '-s', '-p', String(IPERF_PORT)]);
  server.stdout!.resume();
  await sleep(300);
  const iperf = (tos: number): number => {
    const out = rig.lab.exec(rig.lab.pods.pod0, ['iperf3', '-c', INTERNET_CLOUD.v4, '-p', String(IPERF_PORT), '-t', String(SECONDS), '-S', String(tos), '-J']);
    const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e9;
  };
  const gbps = { plain: [] as number[], steered: [] as number[], unsteered: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    await rig.stopAgent('SIGTERM');
    rig.lab.exec(rig.lab.edge, [...cli, 'cleanup', '--config', rig.configFile]);
    gbps.plain.push(iperf(CLASS_10));
    await rig.startAgent();
    await sleep(3000); // the agent's start-up work is over before its rounds are measured
    // Alternate which of the two goes first, so neither always follows the agent's start.
    const pair: ['steered' | 'unsteered', number][] = [['steered', CLASS_10], ['unsteered', 0]];
    for (const [mode, tos] of round % 2 ? pair.reverse() : pair) gbps[mode].push(iperf(tos));
  }
  const [plain, steered, unsteered] = [median(gbps.plain), median(gbps.steered), median(gbps.unsteered)];
  return [
    { name: 'TCP pod -> cloud, no wansteer (wan0, CNI masquerade)', value: plain, unit: 'Gbit/s' },
    { name: 'TCP pod -> cloud, class bound to wan1 (mark, rule, masquerade)', value: steered, unit: 'Gbit/s' },
    { name: 'TCP pod -> cloud, no class, agent running', value: unsteered, unit: 'Gbit/s' },
    { name: 'steered vs no wansteer', value: (100 * steered) / plain, unit: '%', target: '>= 95' },
    { name: 'unsteered vs no wansteer', value: (100 * unsteered) / plain, unit: '%' },
  ];
}

/** Fault -> first answer over wan0 of a client on wan1 that reconnects on error, per trial (ms). */
async function failover(rig: EdgeRig, kind: 'carrier' | 'blackhole'): Promise<number[]> {
  const gaps: number[] = [];
  for (let trial = 0; trial < TRIALS; trial++) {
    const child = rig.lab.spawn(rig.lab.pods.pod0, ['python3', SESSIONS_TOOL, 'loop', INTERNET_CLOUD.v4, String(SESSION_PORT), '8000', '0', '4096', String(CLASS_10)]);
    const events: { event: string; t?: number; seen?: string }[] = [];
    createInterface({ input: child.stdout! }).on('line', (l) => events.push(JSON.parse(l) as (typeof events)[number]));
    const until = async (ok: () => boolean, what: string) => {
      const deadline = Date.now() + 5000;
      while (!ok()) {
        if (Date.now() > deadline) throw new Error(`${kind} trial ${trial}: no ${what}; agent log:\n${rig.log.slice(-2000)}`);
        await sleep(5);
      }
    };
    await until(() => events.some((e) => e.event === 'first-byte' && e.seen === ISPS.isp1.edge4), 'answer over wan1');
    await sleep(300);
    const fault = process.hrtime.bigint();
    if (kind === 'carrier') rig.lab.setCarrier('wan1', false);
    else rig.lab.blackhole('wan1', true);
    const back = () => events.find((e) => e.event === 'first-byte' && e.seen === ISPS.isp0.edge4 && BigInt(e.t!) > fault);
    await until(() => back() !== undefined, 'answer over wan0');
    gaps.push(Number(BigInt(back()!.t!) - fault) / 1e6);
    child.kill('SIGKILL');
    rig.lab.setCarrier('wan1', true);
    rig.lab.blackhole('wan1', false);
    await rig.api.waitLinks((ls) => ls.every((l) => l.up), 20_000, 'both links up');
  }
  return gaps;
}

async function main(): Promise<void> {
  if (!requireRoot('internet')) return;
  const dir = mkdtempSync(join(tmpdir(), 'wansteer-bench-internet-'));
  let rig: EdgeRig | undefined;
  try {
    const { cli } = buildShippedAgent(dir);
    rig = await EdgeRig.start({ tag: 'bench', cli });
    const put = rig.putPolicy('video', { match: { dscp: 10 }, action: { links: ['wan1', 'wan0'], mode: 'redirect' } });
    if (put.status !== 201) throw new Error(`policy: ${put.status} ${JSON.stringify(put.body)}`);
    const figures = await throughput(rig, cli);
    for (const kind of ['carrier', 'blackhole'] as const) {
      const gaps = await failover(rig, kind);
      const what = kind === 'carrier' ? 'carrier loss' : 'blackhole in the ISP';
      figures.push(
        { name: `${what}: fault -> reconnected client's first answer over wan0, median`, value: median(gaps), unit: 'ms' },
        { name: `${what}: same, p95 (${TRIALS} trials)`, value: percentile(gaps, 95), unit: 'ms', target: kind === 'carrier' ? '<= 150' : '<= 700' },
        { name: `${what}: same, max`, value: Math.max(...gaps), unit: 'ms' },
      );
    }
    report('internet', figures);
  } finally {
    await rig?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
