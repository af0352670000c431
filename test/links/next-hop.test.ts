/**
 * Proves the failback side of the parked-packet trap for links judged by carrier alone: when
 * wan1's carrier returns but its next hops (10.10.2.2, fd10:2::2) do not answer ARP and neighbour
 * discovery, the LinkMonitor keeps wan1 down, saying why, instead of calling it up and letting
 * traffic move onto unresolved entries; once they answer, wan1 is up. A link's first carrier
 * report (the start) is not held. Run in the two-link lab with the monitor in the edge.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LinkConfig } from '../../src/config/schema.js';
import { CLOUD, WanLab } from '../helpers/netns.js';
import { describePrivileged } from '../helpers/privilege.js';
import { MonitorDriver } from './monitor-driver.js';

const LINKS: LinkConfig[] = [
  { name: 'wan0', interface: 'wan0', nextHop4: CLOUD.c0.v4 },
  { name: 'wan1', interface: 'wan1', nextHop4: CLOUD.c1.v4, nextHop6: CLOUD.c1.v6 },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describePrivileged('a link judged by carrier alone comes back only when its next hops answer', () => {
  let lab: WanLab;
  let monitor: MonitorDriver | undefined;
  /** c1 deaf to ARP and neighbour solicitations (its own table in the cloud), or not. */
  const deaf = (on: boolean) =>
    lab.exec(lab.cloud, ['nft', '-f', '-'], [
      'add table netdev wsdeaf',
      'delete table netdev wsdeaf',
      ...(on
        ? [
            'add table netdev wsdeaf',
            'add chain netdev wsdeaf i { type filter hook ingress device c1 priority 0; policy accept; }',
            'add rule netdev wsdeaf i ether type arp drop',
            'add rule netdev wsdeaf i icmpv6 type nd-neighbor-solicit drop',
          ]
        : []),
    ].join('\n') + '\n');

  beforeAll(async () => {
    lab = WanLab.create('nexthop');
    monitor = await MonitorDriver.start(lab, lab.edge, LINKS);
  }, 30_000);

  afterAll(async () => {
    await monitor?.stop().catch(() => {});
    lab?.destroy();
  });

  it('is up from the start, without waiting for its next hops', async () => {
    await monitor!.waitFor((h) => h.wan0?.up === true && h.wan1?.up === true, 5000, 'both links up');
  });

  it('stays down while its carrier is back and its next hops are silent, and comes up once they answer', async () => {
    lab.setCloudLink('c1', false);
    await monitor!.waitFor((h) => h.wan1?.up === false && h.wan1.reason === 'no carrier', 3000, 'wan1 down: no carrier');
    deaf(true);
    const from = monitor!.reports.length;
    lab.setCloudLink('c1', true);
    const held = await monitor!.waitFor((h) => h.wan1?.carrier === true, 3000, 'wan1 carrier back');
    expect(held.wan1).toMatchObject({ up: false, reason: expect.stringMatching(/^carrier back; next hop (10\.10\.2\.2|fd10:2::2) does not answer yet$/) });
    await sleep(2500); // ARP and ND retry every second meanwhile: nobody answers
    const wan1 = monitor!.reports.slice(from).filter((r) => r.link === 'wan1');
    expect(wan1.every((r) => !r.health.up)).toBe(true);
    expect(monitor!.latest().wan0?.up).toBe(true);

    deaf(false);
    const t0 = Date.now();
    await monitor!.waitFor((h) => h.wan1?.up === true, 8000, 'wan1 up once its next hops answer');
    console.log(`next hops answering again -> wan1 up after ${Date.now() - t0} ms`);
    const neigh = lab.exec(lab.edge, ['ip', 'neigh', 'show', 'dev', 'wan1']);
    expect(neigh).toMatch(new RegExp(`${CLOUD.c1.v4.replace(/\./g, '\\.')} lladdr \\S+ (REACHABLE|STALE|DELAY|PROBE)`));
    expect(neigh).toMatch(new RegExp(`${CLOUD.c1.v6} lladdr \\S+ (REACHABLE|STALE|DELAY|PROBE)`));
    expect(monitor!.log).toMatch(/"message":"carrier back and the next hop answers: link up","link":"wan1"/);
  }, 30_000);
});
