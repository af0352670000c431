// Proves the engine drives the real kernel datapath: flows, policies, links and DSCP entries land
// in the BPF maps, failover rewrites the policy map, and a restart adopts the pinned maps with
// their flows. Both links are on lo (ifindex 1): no interfaces are needed and nothing is attached.
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Datapath } from '../../src/datapath/index.js';
import { Engine } from '../../src/steering/engine.js';
import { describePrivileged } from '../helpers/privilege.js';
import { BOSS, boss, makeConfig, MINION, minion, report, routes, tempStateDir, VOICE } from './fixtures.js';

describePrivileged('steering engine on the kernel datapath', () => {
  const pinDir = `/sys/fs/bpf/wst-${process.pid}-steering`;
  let dp: Datapath;
  let state: ReturnType<typeof tempStateDir>;
  const config = () =>
    makeConfig(state.dir, {
      links: [
        { name: 'fibre', interface: 'lo', nextHop4: '127.0.0.2' },
        { name: 'lte', interface: 'lo' },
      ],
    });
  const engineOn = (datapath: Datapath) => {
    const e = new Engine({ datapath, config: config(), attach: false });
    e.setRoutes(routes());
    e.setPolicies([BOSS, MINION, VOICE]);
    e.start();
    return e;
  };
  const key = (sport: number) => ({ protocol: 'tcp', src: '10.0.0.5', sport, dst: '198.51.100.9', dport: 443 });

  beforeAll(() => {
    state = tempStateDir();
    dp = Datapath.open({ pinDir, flowTableSize: 4096 });
  });
  afterAll(() => {
    dp?.destroy();
    rmSync(pinDir, { recursive: true, force: true });
    state?.remove();
  });

  it('writes flows, policies, links and DSCP entries into the BPF maps, and keeps them across a restart', () => {
    // Proves the whole path on real maps, including adoption by a second engine over the pins.
    const engine = engineOn(dp);
    const out = engine.reportSessions([boss(41000), minion(41001)], '10.0.0.5');
    expect(out.map((o) => o.status)).toEqual(['steered', 'steered']);
    expect(engine.reportSessions([report('[fd00::5]:41002', '[2001:db8::9]:443', { 'x-user': 'boss' })], 'fd00::5')[0]!.status).toBe('steered');
    const ids = engine.policyNames();
    const idOf = (name: string) => [...ids].find(([, n]) => n === name)![0];
    expect(dp.getFlow(key(41000))?.policyId).toBe(idOf('boss-to-fibre'));
    expect(dp.getFlow(key(41001))?.policyId).toBe(idOf('minion-to-lte'));
    expect(dp.getFlow({ protocol: 'tcp', src: 'fd00::5', sport: 41002, dst: '2001:db8::9', dport: 443 })?.policyId).toBe(idOf('boss-to-fibre'));
    expect([...dp.listLinks()]).toEqual([
      [0, { ifindex: 1, up: true, nextHop4: '127.0.0.2' }],
      [1, { ifindex: 1, up: true }],
    ]);
    expect(dp.getPolicy(idOf('boss-to-fibre'))).toEqual({ redirectLink: 0 });
    expect(dp.getPolicy(idOf('minion-to-lte'))).toEqual({ redirectLink: 1, dscp: 10 });
    expect(dp.listDscpPolicies()).toEqual(new Map([[46, idOf('voice-ef')]]));

    engine.setLinkHealth('fibre', { up: false });
    expect(dp.getLink(0)?.up).toBe(false);
    expect(dp.getPolicy(idOf('boss-to-fibre'))).toEqual({ redirectLink: 1 });
    expect(dp.countFlows()).toBe(3);
    engine.stop();

    const flows = dp.listFlows().map((f) => `${f.src}:${f.sport}=${f.policyId}`).sort();
    dp.close();
    dp = Datapath.open({ pinDir, flowTableSize: 4096 });
    expect(dp.adopted).toBe(true);
    const second = engineOn(dp);
    expect(second.policyNames()).toEqual(ids);
    expect(dp.listFlows().map((f) => `${f.src}:${f.sport}=${f.policyId}`).sort()).toEqual(flows);
    // The new engine starts with every link up (no health yet): boss is back on fibre, one write.
    expect(dp.getPolicy(idOf('boss-to-fibre'))).toEqual({ redirectLink: 0 });
    expect(second.flows({ policy: 'minion-to-lte' }).items.map((f) => f.sport)).toEqual([41001]);
  });
});
