/**
 * TCP throughput over the lab's veth WAN links (issue 2), in one run, three ways:
 *   none      no program; the flow leaves by the default route (wan0)
 *   wansteer  the steering program on both links' egress, the flow steered to wan1
 *   nftables  the classic alternative: nft marks the flow, `ip rule fwmark` sends it to a
 *             table whose default route is wan1
 * Rounds alternate the three so drift on the machine hits them alike; the figure is the
 * median. Targets: wansteer within 5% of none, and not slower than nftables.
 */
import { rmSync } from 'node:fs';
import { DatapathDriver } from '../test/helpers/driver-client.js';
import { CLOUD, EDGE, WanLab } from '../test/helpers/netns.js';
import { type Figure, median, report, requireRoot } from './lib.js';

const SECONDS = 4;
const ROUNDS = 5;
const PORT = 5201;
const CPORT = 45000;

async function main(): Promise<void> {
  if (!requireRoot('throughput')) return;
  const lab = WanLab.create('tput');
  const pinDir = `/sys/fs/bpf/wst-bench-tput-${process.pid}`;
  let dp: DatapathDriver | null = null;
  try {
    const server = lab.spawn(lab.cloud, ['iperf3', '-s', '-p', String(PORT)]);
    server.stdout!.resume();
    await new Promise((r) => setTimeout(r, 300));

    const iperf = (cport: number): number => {
      const out = lab.exec(lab.edge, ['iperf3', '-c', CLOUD.service.v4, '-B', EDGE.wan0.v4, '--cport', String(cport), '-p', String(PORT), '-t', String(SECONDS), '-J']);
      const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
      return j.end.sum_received.bits_per_second / 1e9;
    };

    const modes = {
      none: { setup: async (_cport: number) => {}, teardown: async () => {} },
      wansteer: {
        setup: async (cport: number) => {
          dp = DatapathDriver.start(lab, lab.edge);
          await dp.call('open', { pinDir, flowTableSize: 65536 });
          await dp.call('attach', 'wan0');
          await dp.call('attach', 'wan1');
          const wan1 = await dp.call<number>('ifindex', 'wan1');
          await dp.call('setLink', 1, { ifindex: wan1, up: true, nextHop4: CLOUD.c1.v4 });
          await dp.call('setPolicy', 1, { redirectLink: 1 });
          await dp.call('upsertFlow', { protocol: 'tcp', src: EDGE.wan0.v4, sport: cport, dst: CLOUD.service.v4, dport: PORT }, 1);
        },
        teardown: async () => {
          await dp?.call('destroy');
          await dp?.exit();
          dp = null;
        },
      },
      nftables: {
        setup: async (cport: number) => {
          lab.exec(lab.edge, ['nft', '-f', '-'], [
            'add table ip wstmark',
            'add chain ip wstmark out { type route hook output priority mangle; }',
            `add rule ip wstmark out tcp sport ${cport} meta mark set 0x57`,
          ].join('\n') + '\n');
          lab.exec(lab.edge, ['ip', 'route', 'add', 'default', 'via', CLOUD.c1.v4, 'dev', 'wan1', 'table', '87']);
          lab.exec(lab.edge, ['ip', 'rule', 'add', 'fwmark', '0x57', 'lookup', '87']);
        },
        teardown: async () => {
          lab.exec(lab.edge, ['ip', 'rule', 'del', 'fwmark', '0x57', 'lookup', '87']);
          lab.exec(lab.edge, ['ip', 'route', 'flush', 'table', '87']);
          lab.exec(lab.edge, ['nft', 'delete', 'table', 'ip', 'wstmark']);
        },
      },
    };

    const gbps: Record<keyof typeof modes, number[]> = { none: [], wansteer: [], nftables: [] };
    // A new client port each run: the last run's connection may still be in TIME_WAIT.
    let cport = CPORT;
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of Object.keys(modes) as (keyof typeof modes)[]) {
        cport++;
        await modes[name].setup(cport);
        try {
          gbps[name].push(iperf(cport));
        } finally {
          await modes[name].teardown();
        }
      }
    }
    const none = median(gbps.none);
    const steer = median(gbps.wansteer);
    const nft = median(gbps.nftables);
    const figures: Figure[] = [
      { name: 'TCP, no program (wan0)', value: none, unit: 'Gbit/s' },
      { name: 'TCP, wansteer steering to wan1', value: steer, unit: 'Gbit/s' },
      { name: 'TCP, nftables mark + ip rule to wan1', value: nft, unit: 'Gbit/s' },
      { name: 'wansteer vs no program', value: (100 * steer) / none, unit: '%', target: '>= 95' },
      { name: 'wansteer vs nftables', value: (100 * steer) / nft, unit: '%', target: '>= 100' },
    ];
    report('throughput', figures);
  } finally {
    try {
      await (dp as DatapathDriver | null)?.call('destroy');
    } catch {
      /* lab teardown removes the interfaces anyway */
    }
    lab.destroy();
    rmSync(pinDir, { recursive: true, force: true });
  }
}

await main();
