/**
 * Proves a link with several probe targets on the wire: a LinkMonitor in the edge of the two-link
 * lab probes wan1 against two reflectors in the cloud, one IPv4 and one IPv6, each from its own
 * socket with its own rule. One reflector's outage leaves wan1 up (the other still answers over
 * it); a blackhole of the whole link takes it down, naming both targets; the link comes back when
 * the blackhole goes; stop leaves no rule in either family.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LinkConfig } from '../../src/config/schema.js';
import { PROBE_TABLE_BASE } from '../../src/links/probe-route.js';
import { CLOUD, WanLab } from '../helpers/netns.js';
import { describePrivileged } from '../helpers/privilege.js';
import { MonitorDriver, spawnReflector } from './monitor-driver.js';

const timing = { port: 862, intervalMs: 100, timeoutMs: 300, downAfter: 3, upAfter: 10, window: 50 };
const LINKS: LinkConfig[] = [
  { name: 'wan0', interface: 'wan0', nextHop4: CLOUD.c0.v4, probe: { target: CLOUD.service.v4, ...timing } },
  { name: 'wan1', interface: 'wan1', nextHop4: CLOUD.c1.v4, nextHop6: CLOUD.c1.v6, probe: { targets: [CLOUD.service.v4, CLOUD.service.v6], ...timing } },
];
const WAN1_PREF = String(PROBE_TABLE_BASE + 1);

describePrivileged('a link probed against two reflectors', () => {
  let lab: WanLab;
  let monitor: MonitorDriver | undefined;
  let v6Reflector: ChildProcess;
  const wan1Rules = (family: '-4' | '-6') => lab.exec(lab.edge, ['ip', family, 'rule', 'show', 'pref', WAN1_PREF]).trim().split('\n').filter(Boolean);

  beforeAll(async () => {
    lab = WanLab.create('targets');
    [, v6Reflector] = await Promise.all([
      spawnReflector(lab, lab.cloud, `${CLOUD.service.v4}:862`),
      spawnReflector(lab, lab.cloud, `[${CLOUD.service.v6}]:862`),
    ]);
    monitor = await MonitorDriver.start(lab, lab.edge, LINKS);
  }, 30_000);

  afterAll(async () => {
    await monitor?.stop().catch(() => {});
    lab?.destroy();
  });

  it('probes each target from its own socket, with a rule each, and both links come up measured', async () => {
    await monitor!.waitFor((h) => ['wan0', 'wan1'].every((l) => h[l]?.up && h[l]?.rttMs !== undefined), 15_000, 'both links up with an RTT');
    // One target answering is enough for the link to be up: the other may start probing later
    // (a loaded machine), so wait for both to say so, then count.
    const probing = () => monitor!.log.match(/"message":"probing"[^\n]*"link":"wan1"/g)?.length ?? 0;
    await expect.poll(probing, { timeout: 15_000 }).toBeGreaterThanOrEqual(2);
    expect(probing()).toBe(2);
    expect(wan1Rules('-4')).toHaveLength(1);
    expect(wan1Rules('-6')).toHaveLength(1);
  });

  it("one reflector's outage leaves the link up; a blackhole of the link takes it down, naming both targets", async () => {
    v6Reflector.kill('SIGKILL');
    await expect.poll(() => monitor!.log, { timeout: 15_000 }).toMatch(new RegExp(`"message":"probe target health changed","link":"wan1","target":"${CLOUD.service.v6}","up":false`));
    expect(monitor!.latest().wan1?.up).toBe(true);
    expect(monitor!.reports.filter((r) => r.link === 'wan1').every((r) => r.health.up)).toBe(true);

    const t0 = Date.now();
    lab.drop('wan1', 100);
    const down = await monitor!.waitFor((h) => h.wan1?.up === false, 15_000, 'wan1 down');
    console.log(`wan1 blackholed with two targets: down after ${Date.now() - t0} ms (${down.wan1!.reason})`);
    expect(down.wan1!.reason).toContain(`${CLOUD.service.v4}: `);
    expect(down.wan1!.reason).toContain(`${CLOUD.service.v6}: `);
    expect(monitor!.latest().wan0?.up).toBe(true);

    lab.drop('wan1', null);
    const back = await monitor!.waitFor((h) => h.wan1?.up === true, 15_000, 'wan1 back up');
    expect(back.wan1!.reason).toMatch(new RegExp(`^${CLOUD.service.v4.replace(/\./g, '\\.')}: \\d+ probes answered in a row`));
  }, 60_000);

  it('stop removes every probe rule of the link, in both families', async () => {
    await monitor!.stop();
    expect(wan1Rules('-4')).toEqual([]);
    expect(wan1Rules('-6')).toEqual([]);
  });
});
