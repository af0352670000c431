/**
 * Internet links on an edge built like a real one (src/lab/internet.ts): two ISPs, each with its
 * own subnet and source filtering, pods behind the node's masquerade, the real agent. Proves
 * that a mark-mode class leaves by its policy's link with that link's address, and that its
 * download comes back the same way, counted at the ISPs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeRig, INTERNET_CLOUD, ISPS, IspCounters, SESSION_PORT } from '../../src/lab/index.js';
import { describePrivileged } from '../helpers/privilege.js';

const TOS_CLASS_10 = 10 << 2;

describePrivileged('internet links: steering through the node\'s NAT', () => {
  let rig: EdgeRig;
  beforeAll(async () => {
    rig = await EdgeRig.start({ tag: 'steer' });
  }, 60_000);
  afterAll(async () => {
    await rig?.stop();
  });

  it('a pod\'s class-10 connection leaves by wan1 with wan1\'s address, and its download comes back by wan1', () => {
    const put = rig.putPolicy('video', { match: { dscp: 10 }, action: { links: ['wan1', 'wan0'], mode: 'redirect' } });
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    const counters = IspCounters.install(rig.lab, [{ name: 's', up: `tcp dport ${SESSION_PORT}`, down: `tcp sport ${SESSION_PORT}` }]);
    const r = rig.exchange('pod0', { up: 200_000, down: 2_000_000, tos: TOS_CLASS_10 });
    expect(r.error, rig.log.slice(-3000)).toBeUndefined();
    expect(r.seen).toBe(ISPS.isp1.edge4);
    expect(r.down).toBe(2_000_000);
    const c = counters.read();
    expect(c['s|isp1|down']!.bytes).toBeGreaterThan(2_000_000);
    expect(c['s|isp1|up']!.bytes).toBeGreaterThan(200_000);
    expect(c['s|isp0|down']!.bytes).toBe(0);
    expect(c['s|isp0|up']!.bytes).toBe(0);
  });

  it('the same over IPv6', () => {
    const r = rig.exchange('pod1', { dst: INTERNET_CLOUD.v6, up: 1000, down: 500_000, tos: TOS_CLASS_10 });
    expect(r.error, rig.log.slice(-3000)).toBeUndefined();
    expect(r.seen).toBe(ISPS.isp1.edge6);
  });

  it('unclassified traffic keeps the default route: wan0 with wan0\'s address', () => {
    const r = rig.exchange('pod0', { up: 1000, down: 1000 });
    expect(r.seen).toBe(ISPS.isp0.edge4);
  });
});
