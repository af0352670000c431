/**
 * Internet links per placement (docs/links.md): a pod's own connections (the class set by the
 * application or its sidecar), a host-network proxy's, and connections that arrive through the
 * node's NodePort DNAT — each leaves by the right link with that link's address, and its replies
 * and downloads come back the same way, counted at the ISPs. A policy change moves new
 * connections only; a policy the links cannot carry is refused with a stable code.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EdgeRig, INTERNET_CLOUD, ISPS, IspCounters, NODE_PORT, POD_PORT, SESSION_PORT, SESSIONS_TOOL } from '../../src/lab/index.js';
import { describePrivileged } from '../helpers/privilege.js';

const CLASS_10 = 10 << 2;
const HOST_PORT = 30081;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describePrivileged('internet links: each placement leaves and comes back by its link', () => {
  let rig: EdgeRig;
  beforeAll(async () => {
    rig = await EdgeRig.start({ tag: 'place' });
    await Promise.all([
      rig.lab.spawnReady(rig.lab.pods.pod0, ['python3', SESSIONS_TOOL, 'server', String(POD_PORT)], 'pod server'),
      rig.lab.spawnReady(rig.lab.edge, ['python3', SESSIONS_TOOL, 'server', String(HOST_PORT)], 'host-network server'),
    ]);
    expect(rig.putPolicy('video', { match: { dscp: 10 }, action: { links: ['wan1', 'wan0'], mode: 'redirect' } }).status).toBe(201);
  }, 60_000);
  afterAll(async () => {
    await rig?.stop();
  });

  for (const family of [4, 6] as const) {
    const cloud = family === 4 ? INTERNET_CLOUD.v4 : INTERNET_CLOUD.v6;
    const edgeAddr = (isp: 'isp0' | 'isp1') => (family === 4 ? ISPS[isp].edge4 : ISPS[isp].edge6);

    it(`IPv${family}: a host-network proxy's class-10 connection leaves by wan1 with wan1's address`, () => {
      const r = rig.exchange('edge', { dst: cloud, up: 10_000, down: 300_000, tos: CLASS_10 });
      expect(r.error, rig.log.slice(-2000)).toBeUndefined();
      expect(r.seen).toBe(edgeAddr('isp1'));
      expect(r.down).toBe(300_000);
    });

    for (const isp of ['isp0', 'isp1'] as const) {
      it(`IPv${family}: a cloud client through NodePort DNAT on ${ISPS[isp].wan} reaches pod0, and the reply leaves by ${ISPS[isp].wan}`, () => {
        const counters = IspCounters.install(rig.lab, [{ name: 'in', up: `tcp sport ${NODE_PORT}`, down: `tcp dport ${NODE_PORT}` }]);
        const spoofed = rig.lab.spoofDrops('isp0') + rig.lab.spoofDrops('isp1');
        const r = rig.exchange('cloud', { dst: edgeAddr(isp), port: NODE_PORT, up: 100_000, down: 1_000_000, src: cloud });
        expect(r.error, rig.log.slice(-2000)).toBeUndefined();
        expect(r.seen).toBe(cloud); // the pod sees the client (no SNAT on the way in)
        expect(r.down).toBe(1_000_000);
        const c = counters.read();
        const other = isp === 'isp0' ? 'isp1' : 'isp0';
        expect(c[`in|${isp}|up`]!.bytes).toBeGreaterThan(1_000_000);
        expect(c[`in|${isp}|down`]!.bytes).toBeGreaterThan(100_000);
        expect(c[`in|${other}|up`]!.bytes).toBe(0);
        expect(rig.lab.spoofDrops('isp0') + rig.lab.spoofDrops('isp1')).toBe(spoofed);
      });

      it(`IPv${family}: a cloud client of a host-network service on ${ISPS[isp].wan} gets its replies by ${ISPS[isp].wan}`, () => {
        const r = rig.exchange('cloud', { dst: edgeAddr(isp), port: HOST_PORT, up: 1000, down: 200_000, src: cloud });
        expect(r.error, rig.log.slice(-2000)).toBeUndefined();
        expect(r.down).toBe(200_000);
      });
    }
  }

  it('a policy change moves new connections, and a connection already open stays on its link', async () => {
    const counters = IspCounters.install(rig.lab, [{ name: 's', up: `tcp dport ${SESSION_PORT}`, down: `tcp sport ${SESSION_PORT}` }]);
    const loop: ChildProcess = rig.lab.spawn(rig.lab.pods.pod1, ['python3', SESSIONS_TOOL, 'loop', INTERNET_CLOUD.v4, String(SESSION_PORT), '3000', '0', '4096', String(CLASS_10)]);
    const events: { event: string; seen?: string; requests?: number }[] = [];
    createInterface({ input: loop.stdout! }).on('line', (l) => events.push(JSON.parse(l) as (typeof events)[number]));
    const deadline = Date.now() + 5000;
    while (!events.some((e) => e.event === 'first-byte') && Date.now() < deadline) await sleep(20);
    expect(events[0]?.seen).toBe(ISPS.isp1.edge4);

    const put = rig.putPolicy('video', { match: { dscp: 10 }, action: { links: ['wan0', 'wan1'], mode: 'redirect' } });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(rig.exchange('pod0', { tos: CLASS_10 }).seen).toBe(ISPS.isp0.edge4);

    await new Promise((r) => loop.once('exit', r));
    // The open connection went on over wan1 after the change: one connection, no error, bytes on isp1.
    expect(events.filter((e) => e.event === 'error')).toEqual([]);
    expect(events.filter((e) => e.event === 'first-byte')).toHaveLength(1);
    expect(events.at(-1)!.requests).toBeGreaterThan(50);
    expect(counters.read()['s|isp1|down']!.bytes).toBeGreaterThan(50 * 4096);
    rig.putPolicy('video', { match: { dscp: 10 }, action: { links: ['wan1', 'wan0'], mode: 'redirect' } });
  }, 20_000);

  it('a session-mode policy onto an internet link is refused with WS_POLICY_LINK_KIND, saying why', () => {
    const r = rig.call('POST', '/v1/policies', { name: 'by-route', spec: { match: { route: { virtualService: 'default/cloud' } }, action: { links: ['wan1'], mode: 'redirect' } } });
    expect(r.status).toBe(422);
    expect(r.body.code).toBe('WS_POLICY_LINK_KIND');
    expect(r.body.message).toMatch(/bound to its link's address/);
    expect(r.body.message).toMatch(/match by DSCP/);
    expect(rig.call('GET', '/v1/policies/by-route').status).toBe(404);
  });
});
