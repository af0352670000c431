/**
 * Overlay links (issue 13): what matching through NAT and reply-by-arrival cost, in one run.
 *
 * 1. Per packet (bench/overlay-datapath.ts, run inside the lab's edge namespace): the steering
 *    program as shipped and as built without its conntrack read, the reply-by-arrival programs,
 *    and bpf_skb_ct_lookup (the alternative), under BPF_PROG_TEST_RUN against the no-op; then the
 *    steering program in real traffic on a pod's NATed flow and on the
 *    edge's own flow. Target: <= 30 ns over today's hit.
 * 2. Downloads (TCP, iperf3 -R) over the overlay lab: the edge's upload leaves by wan1 (a route),
 *    and the cloud sends the data back by c0 as routed (none), or by c1, where the flow arrived,
 *    with the reply-by-arrival agent running at the cloud end (started for its round, left to idle
 *    3 s, stopped and cleaned up after it). Rounds alternate; the figure is the median (and the
 *    median of each round's pair, steadier under drift). Target: >= 95 % of none.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromRoot } from '../src/config/paths.js';
import { CLOUD, EDGE, EDGE_POD, LabAgentClient, WanLab } from '../src/lab/index.js';
import { buildBpf } from './bpf-build.js';
import { type Figure, median, report, requireRoot } from './lib.js';

const SINK_PORT = 5353;
const IPERF_PORT = 5201;
const SECONDS = 3;
const ROUNDS = 7;
const SETTLE_MS = 3000;
const CLI = [process.execPath, '--import', 'tsx', fromRoot('src/cli/main.ts')];

function perPacket(lab: WanLab, dir: string): Figure[] {
  const args = {
    dir,
    podNs: lab.pod!,
    sink: { v4: CLOUD.service.v4, port: SINK_PORT },
    pod: EDGE_POD.v4,
    wan0: EDGE.wan0.v4,
    pinBase: `/sys/fs/bpf/wst-bench-ovl-${process.pid}`,
  };
  const out = lab.exec(lab.edge, [process.execPath, '--import', 'tsx', fromRoot('bench/overlay-datapath.ts'), JSON.stringify(args)]);
  return (JSON.parse(out.trim().split('\n').at(-1)!) as { figures: Figure[] }).figures;
}

/** Bytes each of the edge's links received. */
function rxBytes(lab: WanLab): { wan0: number; wan1: number } {
  const links = JSON.parse(lab.exec(lab.edge, ['ip', '-s', '-j', 'link', 'show'])) as { ifname: string; stats64: { rx: { bytes: number } } }[];
  const rx = (n: string) => links.find((l) => l.ifname === n)!.stats64.rx.bytes;
  return { wan0: rx('wan0'), wan1: rx('wan1') };
}

async function downloads(lab: WanLab, dir: string): Promise<Figure[]> {
  const pinDir = `/sys/fs/bpf/wst-bench-ovl-${process.pid}-cloud`;
  const config = join(dir, 'cloud.yaml');
  writeFileSync(config, [
    'mode: reply-by-arrival',
    'links:',
    `  - { name: tun0, interface: c0, nextHop4: ${EDGE.wan0.v4} }`,
    `  - { name: tun1, interface: c1, nextHop4: ${EDGE.wan1.v4} }`,
    `listen: { http: "${CLOUD.service.v4}:9090" }`,
    `datapath: { pinDir: ${pinDir} }`,
    'log: { level: warn }',
  ].join('\n') + '\n');
  const api = new LabAgentClient(lab, lab.cloud, `http://${CLOUD.service.v4}:9090`);
  // The upload leaves by wan1 (with wan0's address, valid on both links): it arrives on c1.
  lab.exec(lab.edge, ['ip', 'route', 'add', `${CLOUD.service.v4}/32`, 'via', CLOUD.c1.v4, 'dev', 'wan1']);
  lab.spawn(lab.cloud, ['iperf3', '-s', '-p', String(IPERF_PORT)]).stdout!.resume();
  await new Promise((r) => setTimeout(r, 300));
  const iperf = (cport: number) => {
    const out = lab.exec(lab.edge, ['iperf3', '-c', CLOUD.service.v4, '-B', EDGE.wan0.v4, '--cport', String(cport), '-p', String(IPERF_PORT), '-t', String(SECONDS), '-R', '-J']);
    return (JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
  };
  const gbps = { none: [] as number[], reply: [] as number[] };
  const onWan1 = { none: [] as number[], reply: [] as number[] };
  let cport = 46000;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of ['none', 'reply'] as const) {
        let agent;
        if (mode === 'reply') {
          agent = lab.spawn(lab.cloud, [...CLI, 'agent', '--config', config]);
          await api.waitReady(agent, 30_000);
          await new Promise((r) => setTimeout(r, SETTLE_MS)); // a freshly started agent still compiles and collects: let it idle
        }
        try {
          const before = rxBytes(lab);
          gbps[mode].push(iperf(++cport));
          const after = rxBytes(lab);
          const got = { wan0: after.wan0 - before.wan0, wan1: after.wan1 - before.wan1 };
          onWan1[mode].push((100 * got.wan1) / (got.wan0 + got.wan1));
        } finally {
          if (agent) {
            const exited = new Promise((r) => agent.once('exit', r));
            agent.kill('SIGTERM');
            await exited;
            // an agent leaves its programs in force on purpose: take them off for the next "none"
            lab.exec(lab.cloud, [...CLI, 'cleanup', '--config', config]);
          }
        }
      }
    }
  } finally {
    rmSync(pinDir, { recursive: true, force: true });
  }
  const none = median(gbps.none);
  const reply = median(gbps.reply);
  console.log(`download Gbit/s per round: none ${gbps.none.map((g) => g.toFixed(2)).join(' ')}; reply-by-arrival ${gbps.reply.map((g) => g.toFixed(2)).join(' ')}`);
  return [
    { name: 'download (TCP), none: replies routed by c0', value: none, unit: 'Gbit/s' },
    { name: 'download (TCP), reply-by-arrival: replies sent back by c1', value: reply, unit: 'Gbit/s' },
    { name: 'reply-by-arrival vs none (medians)', value: (100 * reply) / none, unit: '%', target: '>= 95' },
    { name: 'reply-by-arrival vs none (median of each round\'s pair)', value: median(gbps.reply.map((g, i) => (100 * g) / gbps.none[i]!)), unit: '%' },
    { name: 'download bytes that came back by wan1, none', value: median(onWan1.none), unit: '%' },
    { name: 'download bytes that came back by wan1, reply-by-arrival', value: median(onWan1.reply), unit: '%' },
  ];
}

async function main(): Promise<void> {
  if (!requireRoot('overlay')) return;
  const dir = mkdtempSync(join(tmpdir(), 'wansteer-bench-ovl-'));
  const lab = WanLab.create('ovlbench', { pods: true });
  try {
    buildBpf('bpf/steer.bpf.c', dir, { defines: ['WS_NO_NAT_ORIGIN'], name: 'steer-before.bpf.o' });
    buildBpf('bench/bpf/timed_steer.bpf.c', dir, { name: 'timed-now.bpf.o' });
    buildBpf('bench/bpf/timed_steer.bpf.c', dir, { defines: ['WS_NO_NAT_ORIGIN'], name: 'timed-before.bpf.o' });
    buildBpf('bench/bpf/ct_lookup.bpf.c', dir);
    lab.spawn(lab.cloud, ['python3', fromRoot('scripts/traffic.py'), 'udp-server', String(SINK_PORT)]).stdout!.resume();
    const figures = [...perPacket(lab, dir), ...(await downloads(lab, dir))];
    report('overlay', figures);
  } finally {
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
