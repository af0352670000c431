// Proves the steering engine against the in-memory datapath: sessions become flows of the right
// policy, what is not steered says why, failover rewrites policies and never flows, and a restart
// keeps ids and flows it can trust.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryDatapath, MemoryInternetRouting } from '../../src/datapath/index.js';
import { Engine } from '../../src/steering/engine.js';
import { POLICY_IDS_FILE } from '../../src/steering/policy-ids.js';
import { FlowCursorError, UnmatchedReasons, type SessionOutcome } from '../../src/steering/types.js';
import {
  BOSS, boss, IFINDEX, makeConfig, memoryDatapath, minion, MINION, NOWHERE, policy, recordingLogger, report, routes, startedEngine,
  tempStateDir, tracked, VOICE, writes,
} from './fixtures.js';

let state: ReturnType<typeof tempStateDir>;
beforeEach(() => {
  state = tempStateDir();
});
afterEach(() => state.remove());

const idFile = () => JSON.parse(readFileSync(join(state.dir, POLICY_IDS_FILE), 'utf8')) as { ids: Record<string, number> };
const key = (src: string, sport: number, dst = '198.51.100.9', dport = 443) => ({ protocol: 'tcp', src, sport, dst, dport });
const status = (o: SessionOutcome[]) => o.map((x) => (x.status === 'steered' ? `steered:${x.policy}` : `${x.status}:${x.reason}`));

describe('sessions', () => {
  it('writes a flow local -> remote with the id of the policy its route matched', () => {
    // Proves classification -> policy -> flow entry, with ids from the persisted assignment.
    const dp = memoryDatapath();
    const engine = startedEngine(dp, state.dir);
    const out = engine.reportSessions([boss(40000), minion(40001)], '10.0.0.5');
    expect(status(out)).toEqual(['steered:boss-to-fibre', 'steered:minion-to-lte']);
    const ids = idFile().ids;
    expect(dp.getFlow(key('10.0.0.5', 40000))?.policyId).toBe(ids['boss-to-fibre']);
    expect(dp.getFlow(key('10.0.0.5', 40001))?.policyId).toBe(ids['minion-to-lte']);
    expect(out[0]).toMatchObject({ link: 'fibre', flow: { protocol: 'tcp', src: '10.0.0.5', sport: 40000, dst: '198.51.100.9', dport: 443 } });
    expect(out[1]).toMatchObject({ link: 'lte', dscp: 10 });
    expect(engine.sessions.steered).toBe(2);
    expect(engine.policyCounts().get('boss-to-fibre')?.hits).toBe(1);
    expect(engine.latency.count).toBe(2);
  });

  it('takes the route the proxy matched when the report names it, and matches itself when the name is unknown', () => {
    // Proves routeName (outbound and gateway proxies): the attributes say boss, Envoy matched minion
    // (say the header was rewritten after routing); an Istio-internal route name falls back to matching.
    const dp = memoryDatapath();
    const engine = startedEngine(dp, state.dir);
    const named = (sport: number, routeName: string) => {
      const r = report(`10.0.0.5:${sport}`, '198.51.100.9:443', { 'x-user': 'boss' });
      return { ...r, request: { ...r.request, routeName } };
    };
    const out = engine.reportSessions([named(40000, 'minion'), named(40001, 'default'), named(40002, 'boss')], '10.0.0.5');
    expect(status(out)).toEqual(['steered:minion-to-lte', 'steered:boss-to-fibre', 'steered:boss-to-fibre']);
  });

  it('answers unmatched with the reason for each way a session can miss', () => {
    // Proves no-virtual-service, no-route, no-policy and no-usable-link, and that none writes a flow.
    const dp = memoryDatapath();
    const engine = startedEngine(dp, state.dir, { policies: [BOSS, MINION, NOWHERE] });
    const out = engine.reportSessions(
      [
        report('10.0.0.5:1', '198.51.100.9:443', {}, 'unknown-host'),
        { ...report('10.0.0.5:2', '198.51.100.9:443', {}, 'api'), request: { authority: 'api', path: '/', method: 'GET' } },
        report('10.0.0.5:3', '198.51.100.9:443', {}, 'plain'),
        { ...report('10.0.0.5:4', '198.51.100.9:443', {}, 'api'), request: { authority: 'api', path: '/', method: 'POST' } },
      ],
      '10.0.0.5',
    );
    expect(status(out)).toEqual(['unmatched:no-virtual-service', 'unmatched:no-route', 'unmatched:no-policy', 'unmatched:no-usable-link']);
    expect(out[2]).toMatchObject({ virtualService: 'default/plain', route: '0' });
    expect(out[3]).toMatchObject({ virtualService: 'default/api', route: 'only-post' });
    expect(dp.countFlows()).toBe(0);
    expect([...engine.sessions.unmatched]).toEqual([1, 1, 1, 1, 0]);
  });

  it('answers not-ready, not a wrong no-virtual-service or no-policy, until both rules and policies are in', () => {
    // Proves a report during start-up (the cluster's first lists pending) is not misclassified.
    const dp = memoryDatapath();
    const engine = new Engine({ datapath: dp, config: makeConfig(state.dir), attach: false });
    engine.start();
    const ask = (sport: number) => engine.reportSessions([boss(sport)], '10.0.0.5')[0];
    expect(ask(1)).toEqual({ status: 'unmatched', reason: 'not-ready' });
    engine.setRoutes(routes());
    expect(ask(2)).toEqual({ status: 'unmatched', reason: 'not-ready' });
    engine.setPolicies([BOSS]);
    expect(ask(3)).toMatchObject({ status: 'steered', policy: 'boss-to-fibre' });
    expect(engine.sessions.unmatched[UnmatchedReasons.indexOf('not-ready')]).toBe(2);
    expect(dp.countFlows()).toBe(1);
  });

  it('rejects a spoofed local address and accepts it from an allowed proxy', () => {
    // Proves the spoof check, the allowed-proxy exception (also when listed IPv4-mapped) and a mapped caller.
    const dp = memoryDatapath();
    const engine = startedEngine(dp, state.dir);
    const [spoofed] = engine.reportSessions([boss(40000, '10.0.0.6')], '10.0.0.5');
    expect(spoofed).toMatchObject({ status: 'rejected', reason: 'spoofed-local' });
    expect(dp.countFlows()).toBe(0);
    expect(status(engine.reportSessions([boss(40000, '10.0.0.6')], '10.0.0.200'))).toEqual(['steered:boss-to-fibre']);
    expect(status(engine.reportSessions([boss(40001, '10.0.0.6')], '10.0.0.201'))).toEqual(['steered:boss-to-fibre']);
    expect(status(engine.reportSessions([boss(40002, '10.0.0.6')], '::ffff:10.0.0.6'))).toEqual(['steered:boss-to-fibre']);
    expect(engine.reportSessions([boss(40003)], 'not-an-ip')[0]).toMatchObject({ status: 'rejected', reason: 'spoofed-local' });
    expect(engine.sessions.rejected[1]).toBe(2);
  });

  it('steers IPv6 sessions and stores IPv4-mapped ones as IPv4', () => {
    // Proves both families and the normalisation of mapped addresses, for the local check too.
    const dp = memoryDatapath();
    const engine = startedEngine(dp, state.dir);
    const out = engine.reportSessions(
      [
        report('[fd00:0:0::5]:8080', '[2001:db8::9]:443', { 'x-user': 'boss' }),
        report('[::ffff:10.0.0.5]:8081', '[::ffff:198.51.100.9]:443', { 'x-user': 'boss' }),
      ],
      'fd00::5',
    );
    expect(out[0]).toMatchObject({ status: 'steered', flow: { src: 'fd00::5', dst: '2001:db8::9' } });
    expect(out[1]).toMatchObject({ status: 'rejected', reason: 'spoofed-local' }); // caller is fd00::5, not 10.0.0.5
    expect(engine.reportSessions([report('[::ffff:10.0.0.5]:8081', '[::ffff:198.51.100.9]:443')], '10.0.0.5')[0]).toMatchObject({
      status: 'steered', flow: { src: '10.0.0.5', dst: '198.51.100.9' },
    });
    expect(dp.listFlows().map((f) => [f.family, f.src, f.sport]).sort()).toEqual([[4, '10.0.0.5', 8081], [6, 'fd00::5', 8080]]);
  });

  it('rejects reports whose endpoints are not ip:port of one family', () => {
    // Proves bad-address for each malformed shape, and that good reports in the same batch still land.
    const dp = memoryDatapath();
    const engine = startedEngine(dp, state.dir);
    const bad = ['10.0.0.5', '10.0.0.5:0', '10.0.0.5:70000', 'fd00::5:80', '[fd00::5]', 'host:80', '0.0.0.0:80', '010.0.0.5:80'];
    const out = engine.reportSessions([...bad.map((l) => report(l, '198.51.100.9:443')), report('[fd00::5]:80', '198.51.100.9:443'), boss(1)], '10.0.0.5');
    expect(status(out)).toEqual([...Array(bad.length + 1).fill('rejected:bad-address'), 'steered:boss-to-fibre']);
    expect(dp.countFlows()).toBe(1);
  });

  it('makes duplicates cheap: one batched write per call, no lookups, the same single entry', () => {
    // Proves a duplicate costs a slot in the batch write (no read-before-write) and leaves one entry.
    const mem = memoryDatapath();
    const { port, calls, reset } = tracked(mem);
    const engine = startedEngine(port, state.dir);
    engine.reportSessions([boss(40000)], '10.0.0.5');
    const first = mem.getFlow(key('10.0.0.5', 40000))!;
    reset();
    engine.reportSessions([boss(40000), boss(40000), boss(40000)], '10.0.0.5');
    expect(calls).toEqual({ upsertFlows: 1 });
    expect(mem.countFlows()).toBe(1);
    const again = mem.getFlow(key('10.0.0.5', 40000))!;
    expect(again.policyId).toBe(first.policyId);
    expect(again.lastSeenNs >= first.lastSeenNs).toBe(true); // refreshed: the session is alive
  });

  it('rejects with datapath-error only the entries the datapath refuses', () => {
    // Proves a failed batch write is retried one by one and the write error is counted.
    const mem = memoryDatapath();
    const engine = startedEngine(mem, state.dir);
    const realOne = mem.upsertFlow.bind(mem);
    mem.upsertFlows = () => {
      throw new Error('ENOMEM');
    };
    mem.upsertFlow = (k, id, now) => {
      if (k.sport === 2) throw new Error('ENOMEM');
      realOne(k, id, now);
    };
    expect(status(engine.reportSessions([boss(1), boss(2)], '10.0.0.5'))).toEqual(['steered:boss-to-fibre', 'rejected:datapath-error']);
    expect(engine.writeErrors.flows).toBe(1);
  });
});

describe('policies and links', () => {
  it('installs link, policy and DSCP entries from config and policies', () => {
    // Proves the reconciled tables: link ids in config order, canonical next hops, mark-mode DSCP entry.
    const dp = memoryDatapath();
    startedEngine(dp, state.dir);
    const ids = idFile().ids;
    expect([...dp.listLinks()]).toEqual([
      [0, { ifindex: 11, up: true, nextHop4: '192.0.2.1', nextHop6: '2001:db8::1' }],
      [1, { ifindex: 12, up: true }],
    ]);
    expect(dp.listPolicies()).toEqual(
      new Map([
        [ids['boss-to-fibre']!, { redirectLink: 0 }],
        [ids['minion-to-lte']!, { redirectLink: 1, dscp: 10 }],
        [ids['voice-ef']!, { redirectLink: 0, dscp: 46 }],
      ]),
    );
    expect(dp.listDscpPolicies()).toEqual(new Map([[46, ids['voice-ef']!]]));
  });

  it('rewrites the policy entry on a policy change and leaves flows alone', () => {
    // Proves a policy edit is one policy write: no flow is written or deleted.
    const mem = memoryDatapath();
    const { port, calls, reset } = tracked(mem);
    const engine = startedEngine(port, state.dir);
    engine.reportSessions([boss(1), minion(2)], '10.0.0.5');
    const before = mem.listFlows();
    reset();
    engine.setPolicies([policy('boss-to-fibre', { ...BOSS.spec, action: { links: ['lte'], mode: 'redirect' } }), MINION, VOICE]);
    expect(calls.setPolicy).toBe(1);
    expect(writes(calls)).toBe(1);
    expect(mem.listPolicies().get(idFile().ids['boss-to-fibre']!)).toEqual({ redirectLink: 1 });
    expect(mem.listFlows()).toEqual(before);
    expect(engine.reportSessions([boss(3)], '10.0.0.5')[0]).toMatchObject({ link: 'lte' });
  });

  it('moves policies to their next link in one write per policy when a link goes down, and back', () => {
    // Proves failover cost: the link entry plus one policy write per policy on that link, flows untouched.
    const mem = memoryDatapath();
    const { port, calls, reset } = tracked(mem);
    const engine = startedEngine(port, state.dir);
    engine.reportSessions([boss(1), minion(2)], '10.0.0.5');
    const flows = mem.listFlows();
    const ids = idFile().ids;
    reset();
    engine.setLinkHealth('fibre', { up: false, reason: 'carrier lost' });
    // fibre's link entry goes down, then boss moves to lte; minion is on lte already and voice has no other link.
    expect(calls).toMatchObject({ setLink: 1, setPolicy: 1 });
    expect(writes(calls)).toBe(2);
    expect(mem.listLinks().get(0)?.up).toBe(false);
    expect(mem.listPolicies().get(ids['boss-to-fibre']!)).toEqual({ redirectLink: 1 });
    expect(mem.listPolicies().get(ids['voice-ef']!)).toEqual({ redirectLink: 0, dscp: 46 }); // fibre only: passes, still marked
    expect(mem.listFlows()).toEqual(flows);
    const fibre = engine.links().find((l) => l.name === 'fibre')!;
    expect(fibre).toMatchObject({ up: false, reason: 'carrier lost', activeFor: [] });
    expect(engine.links().find((l) => l.name === 'lte')!.activeFor.sort()).toEqual(['boss-to-fibre', 'minion-to-lte']);
    reset();
    engine.setLinkHealth('fibre', { up: false, reason: 'carrier lost' }); // same again: nothing to do
    expect(writes(calls)).toBe(0);
    engine.setLinkHealth('fibre', { up: true });
    expect(calls).toMatchObject({ setLink: 1, setPolicy: 1 });
    expect(mem.listPolicies().get(ids['boss-to-fibre']!)).toEqual({ redirectLink: 0 });
  });

  it('right after moving traffic off a link, has its neighbour entries flushed: unresolved ones, or all with the carrier gone', () => {
    // Proves the neighbour release follows every write that moves traffic off a link, and only those.
    const mem = memoryDatapath();
    const engine = startedEngine(mem, state.dir);
    const flushes = mem.neighbourFlushes;
    expect(flushes).toEqual([]); // the start wrote entries but moved nothing off a link
    engine.setLinkHealth('lte', { up: true, rttMs: 12 }); // figures only: nothing moves
    expect(flushes).toEqual([]);
    engine.setLinkHealth('fibre', { up: false, carrier: true, reason: '11 probes lost in a row' });
    expect(flushes).toEqual([{ ifindex: IFINDEX.eth1, scope: 'unresolved' }]);
    engine.setLinkHealth('fibre', { up: true, carrier: true }); // failback: boss leaves lte for fibre
    expect(flushes.slice(1)).toEqual([{ ifindex: IFINDEX.wwan0, scope: 'unresolved' }]);
    engine.setLinkHealth('lte', { up: false, carrier: false, reason: 'no carrier' });
    expect(flushes.slice(2)).toEqual([{ ifindex: IFINDEX.wwan0, scope: 'all' }]);
    engine.setLinkHealth('lte', { up: false, carrier: false, reason: 'no carrier' }); // nothing new
    expect(flushes).toHaveLength(3);
  });

  it('counts and logs a neighbour flush that fails, and the failover stands', () => {
    // Proves a netlink failure does not undo or block the move: the policy is on its new link.
    const mem = memoryDatapath();
    const logger = recordingLogger();
    mem.flushNeighbours = () => {
      throw new Error('netlink said no');
    };
    const engine = startedEngine(mem, state.dir, { logger });
    engine.setLinkHealth('fibre', { up: false, carrier: false });
    expect(mem.listPolicies().get(idFile().ids['boss-to-fibre']!)).toEqual({ redirectLink: 1 });
    expect(engine.writeErrors.neighbours).toBe(1);
    expect(logger.lines.some((l) => l.level === 'error' && /neighbour entries/.test(l.msg))).toBe(true);
  });

  it('never black-holes: with every link down, policies name a down link and sessions pass unsteered', () => {
    // Proves the all-down state: every redirect target is down in the datapath, DSCP still set, flows still written.
    const dp = memoryDatapath();
    const engine = startedEngine(dp, state.dir);
    engine.setLinkHealth('fibre', { up: false });
    engine.setLinkHealth('lte', { up: false });
    const links = dp.listLinks();
    for (const action of dp.listPolicies().values()) {
      if (action.redirectLink !== undefined) expect(links.get(action.redirectLink)?.up).toBe(false);
    }
    expect(dp.listPolicies().get(idFile().ids['minion-to-lte']!)).toEqual({ redirectLink: 1, dscp: 10 });
    const [out] = engine.reportSessions([boss(1)], '10.0.0.5');
    expect(out).toMatchObject({ status: 'steered', policy: 'boss-to-fibre' });
    expect((out as { link?: string }).link).toBeUndefined();
    expect(dp.countFlows()).toBe(1); // steered again the moment a link returns, by one policy write
  });

  it('takes a link whose interface does not exist as down, with the reason', () => {
    // Proves a missing interface: no link entry, policies on the next link, a reason for people.
    const dp = new MemoryDatapath(4096, { eth1: 11 });
    const engine = startedEngine(dp, state.dir);
    expect(engine.links().find((l) => l.name === 'lte')).toMatchObject({ up: false, ifindex: null, reason: expect.stringContaining('wwan0 not found') });
    expect(dp.listLinks().has(1)).toBe(false);
    expect(dp.listPolicies().get(idFile().ids['minion-to-lte']!)).toEqual({ redirectLink: 0, dscp: 10 });
  });

  /** A started engine with one policy, `video`: LTE first, then fibre, within 50 ms RTT. */
  const videoOverLte = () => {
    const dp = memoryDatapath();
    const video = policy('video', {
      match: { route: { virtualService: 'default/plain' } },
      action: { links: ['lte', 'fibre'], mode: 'redirect', sla: { maxRttMs: 50 } },
    });
    const engine = startedEngine(dp, state.dir, { policies: [video] });
    return { dp, engine, id: idFile().ids.video! };
  };

  it('prefers a link that meets the SLA, and falls back to the first usable one', () => {
    // Proves the simple SLA rule on the link choice.
    const { dp, engine, id } = videoOverLte();
    engine.setLinkHealth('lte', { up: true, rttMs: 120 });
    expect(dp.listPolicies().get(id)).toEqual({ redirectLink: 0 });
    engine.setLinkHealth('fibre', { up: true, rttMs: 80 });
    expect(dp.listPolicies().get(id)).toEqual({ redirectLink: 1 });
    expect(engine.policyStatus()[0]).toMatchObject({ link: 'lte', slaMet: false });
  });

  it('takes a policy back to its preferred link only once that link is under the SLA by a margin', () => {
    // Proves SLA hysteresis through the engine: the last choice is the "current" link of the next reconcile.
    const { dp, engine, id } = videoOverLte();
    engine.setLinkHealth('fibre', { up: true, rttMs: 10 });
    engine.setLinkHealth('lte', { up: true, rttMs: 49 });
    expect(dp.listPolicies().get(id)).toEqual({ redirectLink: 1 });
    engine.setLinkHealth('lte', { up: true, rttMs: 51 });
    expect(dp.listPolicies().get(id)).toEqual({ redirectLink: 0 });
    for (const rttMs of [49, 47, 45.5]) {
      engine.setLinkHealth('lte', { up: true, rttMs });
      expect(dp.listPolicies().get(id)).toEqual({ redirectLink: 0 });
    }
    engine.setLinkHealth('lte', { up: true, rttMs: 44 });
    expect(dp.listPolicies().get(id)).toEqual({ redirectLink: 1 });
    expect(engine.linkChanges()).toEqual(expect.arrayContaining([expect.objectContaining({ policy: 'video', kind: 'failback' })]));
  });

  it('deletes a removed policy\'s entry and flows, and does not hand its id to the next policy', async () => {
    // Proves policy removal and the round-robin id assignment, and that the id file (saved off
    // the event loop, one save at a time) ends up holding what the engine holds.
    const dp = memoryDatapath();
    const engine = startedEngine(dp, state.dir);
    engine.reportSessions([boss(1), minion(2)], '10.0.0.5');
    const bossId = idFile().ids['boss-to-fibre']!;
    engine.setPolicies([MINION, VOICE]);
    expect(dp.listPolicies().has(bossId)).toBe(false);
    expect(dp.listFlows().map((f) => f.sport)).toEqual([2]);
    engine.setPolicies([MINION, VOICE, policy('newcomer', BOSS.spec)]);
    await engine.idsSaved();
    const saved = idFile().ids;
    expect(saved.newcomer).toBeDefined();
    expect(saved.newcomer).not.toBe(bossId);
    expect(saved['boss-to-fibre']).toBeUndefined();
    expect(dp.listPolicies().has(saved.newcomer!)).toBe(true);
    expect(engine.policyCounts().has('boss-to-fibre')).toBe(false);
  });
});

describe('start and restart', () => {
  it('keeps policy ids and flows across a restart on the same state dir and datapath', () => {
    // Proves adoption: a new engine over the pinned state writes nothing it need not and keeps every flow.
    const mem = memoryDatapath();
    const first = startedEngine(mem, state.dir);
    first.reportSessions([boss(1), minion(2)], '10.0.0.5');
    first.reportSessions([report('[fd00::5]:3', '[2001:db8::9]:443', { 'x-user': 'boss' })], 'fd00::5');
    first.stop();
    const idsBefore = idFile().ids;
    const flowsBefore = mem.listFlows();
    const { port, calls } = tracked(mem, { adopted: true });
    const second = startedEngine(port, state.dir);
    expect(idFile().ids).toEqual(idsBefore);
    expect(mem.listFlows()).toEqual(flowsBefore);
    expect(writes(calls)).toBe(0);
    expect(second.flows().items.map((f) => f.policy).sort()).toEqual(['boss-to-fibre', 'boss-to-fibre', 'minion-to-lte']);
  });

  it('deletes adopted flows when the id file is missing, and says why', () => {
    // Proves untrusted flows go: without the id file their policy ids may mean other policies now.
    const mem = memoryDatapath();
    startedEngine(mem, state.dir).reportSessions([boss(1), minion(2)], '10.0.0.5');
    rmSync(join(state.dir, POLICY_IDS_FILE));
    const logger = recordingLogger();
    const { port } = tracked(mem, { adopted: true });
    startedEngine(port, state.dir, { logger });
    expect(mem.countFlows()).toBe(0);
    expect(logger.lines.find((l) => l.level === 'warn')?.msg).toMatch(/no usable policy id file.*deleted/);
    expect(existsSync(join(state.dir, POLICY_IDS_FILE))).toBe(true);
  });

  it('treats an unreadable id file as missing', () => {
    // Proves a corrupt file is not trusted either.
    const mem = memoryDatapath();
    startedEngine(mem, state.dir).reportSessions([boss(1)], '10.0.0.5');
    writeFileSync(join(state.dir, POLICY_IDS_FILE), '{"version": 1, "ids": {"a": 1, "b": 1}}');
    const { port } = tracked(mem, { adopted: true });
    startedEngine(port, state.dir);
    expect(mem.countFlows()).toBe(0);
  });

  it('leaves adopted policy and DSCP entries alone until the policies arrive', () => {
    // Proves start-up never strips steering from live flows while the policy store is still syncing.
    const mem = memoryDatapath();
    startedEngine(mem, state.dir).reportSessions([boss(1)], '10.0.0.5');
    const policies = mem.listPolicies();
    const dscp = mem.listDscpPolicies();
    const { port } = tracked(mem, { adopted: true });
    const engine = new Engine({ datapath: port, config: makeConfig(state.dir), attach: false });
    engine.setRoutes(routes());
    engine.start();
    expect(engine.ready()).toBe(false);
    expect(engine.waitingFor()).toEqual(['policies: the WanPolicies are not listed yet']);
    expect(mem.listPolicies()).toEqual(policies);
    expect(mem.listDscpPolicies()).toEqual(dscp);
    expect(mem.countFlows()).toBe(1);
    // A link that fails meanwhile is marked down at once: its flows pass on their original path.
    const lte = makeConfig(state.dir).links.findIndex((l) => l.name === 'lte');
    expect(mem.listLinks().get(lte)?.up).toBe(true);
    engine.setLinkHealth('lte', { up: false, reason: 'no carrier' });
    expect(mem.listLinks().get(lte)?.up).toBe(false);
    expect(mem.listPolicies()).toEqual(policies);
    engine.setLinkHealth('lte', { up: true });
    engine.setPolicies([MINION]);
    expect(engine.ready()).toBe(true);
    expect([...mem.listPolicies().keys()]).toEqual([idFile().ids['minion-to-lte']]);
    expect(mem.listDscpPolicies().size).toBe(0);
    expect(mem.countFlows()).toBe(0); // boss-to-fibre is gone: its flows with it
  });

  it('refuses reports before start and after stop', () => {
    // Proves the engine never writes flows with ids it has not loaded.
    const engine = new Engine({ datapath: memoryDatapath(), config: makeConfig(state.dir), attach: false });
    expect(engine.reportSessions([boss(1)], '10.0.0.5')[0]).toMatchObject({ status: 'rejected', reason: 'datapath-error' });
    engine.setRoutes(routes());
    engine.setPolicies([BOSS]);
    engine.start();
    expect(engine.ready()).toBe(true);
    engine.stop();
    expect(engine.ready()).toBe(false);
    expect(engine.reportSessions([boss(1)], '10.0.0.5')[0]).toMatchObject({ status: 'rejected' });
  });
});

describe('views', () => {
  it('lists flows with policy names, idle time and filters', () => {
    // Proves flows(): names for ids, idle seconds from the datapath clock, policy/link/limit filters.
    let now = 1_000_000_000_000n;
    const dp = memoryDatapath();
    const engine = startedEngine(dp, state.dir, { clock: () => now });
    dp.upsertFlow(key('10.0.0.5', 1), idFile().ids['boss-to-fibre']!, now - 5_000_000_000n);
    engine.reportSessions([minion(2), minion(3)], '10.0.0.5');
    now += 2_000_000_000n;
    expect(engine.flows({ policy: 'boss-to-fibre' })).toEqual({
      items: [{ protocol: 'tcp', src: '10.0.0.5', sport: 1, dst: '198.51.100.9', dport: 443, policy: 'boss-to-fibre', idleSeconds: 7 }],
    });
    expect(engine.flows({ link: 'lte' }).items.length).toBe(2);
    const first = engine.flows({ limit: 1 });
    expect(first.items.length).toBe(1);
    // The rest, a page at a time from the cursor: every flow once.
    const second = engine.flows({ limit: 2, after: first.next! });
    expect([...first.items, ...second.items].map((f) => f.sport).sort()).toEqual([1, 2, 3]);
    expect(second.next).toBeUndefined();
    expect(engine.flows({ policy: 'nope' })).toEqual({ items: [] });
    expect(() => engine.flows({ after: 'k4.0.0' })).toThrow(FlowCursorError);
  });

  it('explains what a request would get without writing anything', () => {
    // Proves explainSession agrees with steering and writes nothing.
    const mem = memoryDatapath();
    const { port, calls, reset } = tracked(mem);
    const engine = startedEngine(port, state.dir);
    reset();
    const e = engine.explainSession({ authority: 'cloud-app', path: '/', method: 'GET', headers: { 'x-user': 'boss' } });
    expect(e.outcome).toMatchObject({ status: 'steered', policy: 'boss-to-fibre', link: 'fibre' });
    expect(writes(calls)).toBe(0);
  });
});

describe('internet links', () => {
  const internetConfig = (dir: string) =>
    makeConfig(dir, {
      links: [
        { name: 'fibre', interface: 'eth1', nextHop4: '192.0.2.1', addressing: 'internet', table: 3600 },
        { name: 'lte', interface: 'wwan0', addressing: 'internet', table: 3601 },
      ],
    });
  const video = policy('video', { match: { dscp: 10 }, action: { links: ['lte', 'fibre'], mode: 'redirect' } });

  it('binds each mark-mode class to its link; a dead link moves the class, resets the link\'s connections once, and gets its routes back when it returns', () => {
    // Proves the engine's side of internet failover: class rules first, then one reset per link death, a refresh on return.
    const routing = new MemoryInternetRouting();
    const dp = memoryDatapath();
    const engine = new Engine({ datapath: dp, config: internetConfig(state.dir), attach: false, routing });
    engine.setRoutes(routes());
    engine.setPolicies([video]);
    engine.start();
    expect([...routing.classLinks()]).toEqual([[10, 1]]);
    expect(dp.listLinks().get(1)).toMatchObject({ internet: true });

    engine.setLinkHealth('lte', { up: false, reason: 'carrier lost' });
    expect([...routing.classLinks()]).toEqual([[10, 0]]);
    expect(routing.resets).toEqual([1]);
    expect(routing.refreshed).toEqual([1]);
    engine.setLinkHealth('lte', { up: false, reason: 'still down' });
    expect(routing.resets).toEqual([1]);

    engine.setLinkHealth('lte', { up: true });
    expect(routing.refreshed).toEqual([1, 1]);
    expect([...routing.classLinks()]).toEqual([[10, 1]]);
    expect(routing.resets).toEqual([1]); // failback moves new connections only
  });

  it('leaves the class rules a previous agent left alone until the policies are in', () => {
    // Proves that a restart does not unbind classes while the policies are still being read.
    const routing = new MemoryInternetRouting();
    routing.setClasses(new Map([[10, 1]]));
    const engine = new Engine({ datapath: memoryDatapath(), config: internetConfig(state.dir), attach: false, routing });
    engine.start();
    expect([...routing.classLinks()]).toEqual([[10, 1]]);
    engine.setPolicies([]);
    expect(routing.classLinks().size).toBe(0);
  });
});
