/**
 * Proves IPv6 probe targets on the wire: a LinkMonitor in the edge of the two-link lab probes
 * `wansteer reflector` on [fd20::1] (a non-default port) over both links, while the edge's main
 * table sends all IPv6 by wan0. wan1's probes leave by wan1 (counted arriving on the cloud's c1,
 * none on c0), both links come up with an RTT, losing wan1's IPv6 on its path takes wan1 down and
 * leaves wan0 up, and stop leaves no `ip -6 rule` or probe table behind.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LinkConfig } from '../../src/config/schema.js';
import { PROBE_TABLE_BASE } from '../../src/links/probe-route.js';
import { CLOUD, EDGE, IngressCounters, WanLab } from '../helpers/netns.js';
import { describePrivileged } from '../helpers/privilege.js';
import { MonitorDriver, spawnReflector } from './monitor-driver.js';

/** Not TWAMP's 862: the probes must go to the port the config names. */
const PORT = 8620;
const probe = { target: CLOUD.service.v6, port: PORT, intervalMs: 100, timeoutMs: 300, downAfter: 3, upAfter: 10, window: 50 };
const LINKS: LinkConfig[] = [
  { name: 'wan0', interface: 'wan0', nextHop6: CLOUD.c0.v6, probe },
  { name: 'wan1', interface: 'wan1', nextHop6: CLOUD.c1.v6, probe },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describePrivileged('IPv6 probe targets in network namespaces', () => {
  let lab: WanLab;
  let monitor: MonitorDriver | undefined;
  let counters: IngressCounters;
  let rulesBefore: { v4: string; v6: string };
  const rules = () => ({ v4: lab.exec(lab.edge, ['ip', '-4', 'rule', 'show']), v6: lab.exec(lab.edge, ['ip', '-6', 'rule', 'show']) });
  /** Every IPv6 packet wan1 carries to the cloud lost on the way (neighbour discovery excepted), or none. */
  const dropWan1v6 = (on: boolean) => lab.drop('wan1', on ? 100 : null, 'ip6');

  beforeAll(async () => {
    lab = WanLab.create('v6probe');
    await spawnReflector(lab, lab.cloud, `[${CLOUD.service.v6}]:${PORT}`);
    // Every probe packet by the link it came in on, told apart by its source address.
    counters = IngressCounters.install(lab, [
      { name: 'wan0', match: `ip6 saddr ${EDGE.wan0.v6} udp dport ${PORT}` },
      { name: 'wan1', match: `ip6 saddr ${EDGE.wan1.v6} udp dport ${PORT}` },
    ]);
    rulesBefore = rules();
    monitor = await MonitorDriver.start(lab, lab.edge, LINKS);
  }, 30_000);

  afterAll(async () => {
    await monitor?.stop().catch(() => {});
    lab?.destroy();
  });

  it('the main table sends IPv6 from wan1\'s address by wan0; only the probe rule sends it by wan1', () => {
    // Without the rule wan1's probes would leave by wan0: that is what makes the counts below mean something.
    expect(lab.exec(lab.edge, ['ip', '-6', 'route', 'get', CLOUD.service.v6, 'from', EDGE.wan1.v6])).toMatch(/ dev wan0 /);
    const table = PROBE_TABLE_BASE + 1;
    expect(lab.exec(lab.edge, ['ip', '-6', 'rule', 'show', 'pref', String(table)])).toMatch(new RegExp(`from ${EDGE.wan1.v6} ipproto udp sport \\d+ lookup ${table}`));
    expect(lab.exec(lab.edge, ['ip', '-6', 'route', 'show', 'table', String(table)])).toMatch(new RegExp(`default via ${CLOUD.c1.v6} dev wan1`));
  });

  it('both links come up with an RTT, and wan1\'s probes arrive by c1, wan0\'s by c0', async () => {
    const health = await monitor!.waitFor((h) => ['wan0', 'wan1'].every((l) => h[l]?.up && h[l]?.rttMs !== undefined), 15_000, 'both links up with an RTT');
    // Measured, not fast: how fast is the benchmarks' business (a loaded machine takes longer).
    for (const l of ['wan0', 'wan1']) expect(health[l]!.rttMs).toBeGreaterThan(0);
    // Ten probes of each link have arrived (a second's worth, waited for however long it takes), all by their own link.
    await expect.poll(() => Math.min(counters.read()['wan1|c1'] ?? 0, counters.read()['wan0|c0'] ?? 0), { timeout: 15_000 }).toBeGreaterThanOrEqual(10);
    const n = counters.read();
    console.log(`IPv6 probe packets by ingress link: ${JSON.stringify(n)}`);
    expect(n['wan1|c0'] ?? 0).toBe(0);
    expect(n['wan0|c1'] ?? 0).toBe(0);
  });

  it('losing wan1\'s IPv6 on its path takes wan1 down while wan0 stays up, and wan1 comes back after the loss', async () => {
    const from = monitor!.reports.length;
    const t0 = Date.now();
    dropWan1v6(true);
    const down = await monitor!.waitFor((h) => h.wan1?.up === false, 15_000, 'wan1 down');
    console.log(`wan1's IPv6 lost on its path: down after ${Date.now() - t0} ms (${down.wan1!.reason})`);
    expect(down.wan1!.reason).toMatch(/probes lost in a row/);
    // Nothing of wan1's reaches the cloud now.
    const during = counters.read()['wan1|c1'];
    await sleep(500);
    expect(counters.read()['wan1|c1']).toBe(during);

    dropWan1v6(false);
    await monitor!.waitFor((h) => h.wan1?.up === true, 15_000, 'wan1 back up');
    const wan0 = monitor!.reports.slice(from).filter((r) => r.link === 'wan0');
    expect(wan0.length).toBeGreaterThan(0);
    expect(wan0.every((r) => r.health.up)).toBe(true);
  }, 60_000);

  it('stop removes the probe rules and tables: no ip -6 rule left behind', async () => {
    await monitor!.stop();
    expect(rules()).toEqual(rulesBefore);
    expect(rules().v6).not.toMatch(/lookup 570\d/);
    for (const id of [0, 1]) expect(lab.exec(lab.edge, ['ip', '-6', 'route', 'show', 'table', String(PROBE_TABLE_BASE + id)])).toBe('');
  });

  it('a link whose IPv6 address is still in duplicate address detection at start is probed once DAD is done', async () => {
    // wan1's address again, this time with DAD held for ~8 s (one probe, 8 s to wait for an
    // answer): a socket cannot bind it yet. The monitor must see it tentative when it starts; on
    // a machine so slow that DAD ended first, the set-up is made again (it said nothing yet).
    const tentative = () => /tentative/.test(lab.exec(lab.edge, ['ip', '-6', 'addr', 'show', 'dev', 'wan1', 'scope', 'global']));
    lab.exec(lab.edge, ['sysctl', '-qw', 'net.ipv6.conf.wan1.dad_transmits=1', 'net.ipv6.neigh.wan1.retrans_time_ms=8000']);
    const before = counters.read()['wan1|c1'] ?? 0;
    for (let attempt = 1; ; attempt++) {
      lab.exec(lab.edge, ['ip', '-6', 'addr', 'del', `${EDGE.wan1.v6}/64`, 'dev', 'wan1']);
      lab.exec(lab.edge, ['ip', '-6', 'addr', 'add', `${EDGE.wan1.v6}/64`, 'dev', 'wan1']);
      expect(tentative()).toBe(true);
      monitor = await MonitorDriver.start(lab, lab.edge, LINKS, { retryMs: 200 });
      // DAD only ends: tentative now means tentative when the monitor looked at start.
      if (tentative()) break;
      await monitor.stop();
      if (attempt === 3) throw new Error('DAD was over before the monitor started, three times: the set-up could not hold it');
    }
    lab.exec(lab.edge, ['sysctl', '-qw', 'net.ipv6.neigh.wan1.retrans_time_ms=1000']);
    await expect.poll(() => monitor!.log, { timeout: 10_000 }).toMatch(/no usable IPv6 address .*still in duplicate address detection/);
    await monitor.waitFor((h) => h.wan1?.up === true && h.wan1.rttMs !== undefined, 30_000, 'wan1 probed after DAD');
    expect(counters.read()['wan1|c1']).toBeGreaterThan(before);
    expect(counters.read()['wan1|c0'] ?? 0).toBe(0);
    await monitor.stop();
    expect(rules()).toEqual(rulesBefore);
  }, 90_000);
});
