// Proves the pure reconcile: the link each policy takes for every health picture, and that the
// plan writes exactly the differences, in a safe order.
import { describe, expect, it } from 'vitest';
import type { WanPolicySpec } from '../../src/policies/model.js';
import { desiredState, linksLeft, planChanges, sameDesired, type LinkInput, type PolicyInput } from '../../src/steering/reconcile.js';

const link = (id: number, name: string, over: Partial<LinkInput> = {}): LinkInput => ({ id, name, ifindex: 10 + id, up: true, ...over });
const redirect = (links: string[], extra: Partial<WanPolicySpec['action']> = {}): WanPolicySpec => ({
  match: { route: { virtualService: 'default/app' } },
  action: { links, mode: 'redirect', ...extra },
});

describe('desiredState: the link a policy takes', () => {
  const cases: { what: string; links: LinkInput[]; spec: WanPolicySpec; action: unknown; link?: string }[] = [
    { what: 'first preferred link when all are up', links: [link(0, 'a'), link(1, 'b')], spec: redirect(['b', 'a']), action: { redirectLink: 1 }, link: 'b' },
    { what: 'next link when the first is down', links: [link(0, 'a'), link(1, 'b', { up: false })], spec: redirect(['b', 'a']), action: { redirectLink: 0 }, link: 'a' },
    { what: 'next link when the first has no interface', links: [link(0, 'a'), link(1, 'b', { ifindex: null })], spec: redirect(['b', 'a']), action: { redirectLink: 0 }, link: 'a' },
    { what: 'all down: the first preferred (down) link, no active link', links: [link(0, 'a', { up: false }), link(1, 'b', { up: false })], spec: redirect(['b', 'a']), action: { redirectLink: 1 } },
    { what: 'unknown link names are skipped', links: [link(0, 'a')], spec: redirect(['ghost', 'a']), action: { redirectLink: 0 }, link: 'a' },
    { what: 'no configured link: no entry', links: [link(0, 'a')], spec: redirect(['ghost']), action: undefined },
    { what: 'both mode keeps its DSCP with the redirect', links: [link(0, 'a')], spec: redirect(['a'], { mode: 'both', dscp: 10 }), action: { redirectLink: 0, dscp: 10 }, link: 'a' },
    { what: 'both mode with no configured link marks only', links: [link(0, 'a')], spec: redirect(['ghost'], { mode: 'both', dscp: 10 }), action: { dscp: 10 } },
    { what: 'mark mode ignores links', links: [link(0, 'a', { up: false })], spec: redirect(['a'], { mode: 'mark', dscp: 46 }), action: { dscp: 46 } },
    { what: 'SLA: the first link that meets it', links: [link(0, 'a', { rttMs: 90 }), link(1, 'b', { rttMs: 20 })], spec: redirect(['a', 'b'], { sla: { maxRttMs: 50 } }), action: { redirectLink: 1 }, link: 'b' },
    { what: 'SLA missed everywhere: first usable link on a tie', links: [link(0, 'a', { lossPercent: 9 }), link(1, 'b', { lossPercent: 7 })], spec: redirect(['a', 'b'], { sla: { maxLossPercent: 1 } }), action: { redirectLink: 0 }, link: 'a' },
    { what: 'SLA missed everywhere: the link breaking fewer bounds', links: [link(0, 'a', { lossPercent: 9, rttMs: 90 }), link(1, 'b', { lossPercent: 7, rttMs: 10 })], spec: redirect(['a', 'b'], { sla: { maxLossPercent: 1, maxRttMs: 50 } }), action: { redirectLink: 1 }, link: 'b' },
    { what: 'SLA missed everywhere: a down link is never the best', links: [link(0, 'a', { rttMs: 90 }), link(1, 'b', { up: false, rttMs: 10 })], spec: redirect(['b', 'a'], { sla: { maxRttMs: 50 } }), action: { redirectLink: 0 }, link: 'a' },
    { what: 'SLA with no measurement yet is met', links: [link(0, 'a'), link(1, 'b')], spec: redirect(['a', 'b'], { sla: { maxJitterMs: 5 } }), action: { redirectLink: 0 }, link: 'a' },
  ];
  for (const c of cases) {
    it(c.what, () => {
      // Proves one row of the link-choice table.
      const d = desiredState(c.links, [{ name: 'p', id: 7, spec: c.spec }]);
      expect(d.policies.get(7)).toEqual(c.action);
      expect(d.choices.get('p')?.link).toBe(c.link);
    });
  }

  it('maps link entries: down links keep their ifindex, missing interfaces have none', () => {
    // Proves the link table: health in `up`, null for a link without an interface.
    const d = desiredState([link(0, 'a', { nextHop4: '192.0.2.1' }), link(1, 'b', { up: false }), link(2, 'c', { ifindex: null })], []);
    expect([...d.links]).toEqual([
      [0, { ifindex: 10, up: true, nextHop4: '192.0.2.1' }],
      [1, { ifindex: 11, up: false }],
      [2, null],
    ]);
  });

  it('gives a DSCP to the first policy by name and warns about the second', () => {
    // Proves a DSCP conflict is resolved deterministically, whatever order the store lists policies in.
    const mark = (dscp: number): WanPolicySpec => ({ match: { dscp }, action: { links: [], mode: 'mark', dscp: 46 } });
    const policies: PolicyInput[] = [{ name: 'zeta', id: 2, spec: mark(10) }, { name: 'alpha', id: 1, spec: mark(10) }, { name: 'none', id: null, spec: mark(12) }];
    const d = desiredState([], policies);
    expect([...d.dscp]).toEqual([[10, 1]]);
    expect(d.warnings).toEqual([expect.stringContaining('policy zeta matches DSCP 10')]);
    expect(d.choices.get('none')?.reason).toMatch(/no datapath id/);
  });
});

describe('desiredState: SLA hysteresis (a margin to win a policy back)', () => {
  const spec = redirect(['a', 'b'], { sla: { maxRttMs: 50, maxLossPercent: 10 } });
  const choose = (a: Partial<LinkInput>, current?: string) =>
    desiredState([link(0, 'a', a), link(1, 'b', { rttMs: 5, lossPercent: 0 })], [{ name: 'p', id: 7, spec, ...(current ? { current } : {}) }]).choices.get('p')?.link;

  it('the link carrying the policy keeps it up to the bound itself', () => {
    // Proves no margin applies to the current link: 50 ms meets a 50 ms bound.
    expect(choose({ rttMs: 50, lossPercent: 10 }, 'a')).toBe('a');
    expect(choose({ rttMs: 50.5 }, 'a')).toBe('b');
    expect(choose({ lossPercent: 12 }, 'a')).toBe('b');
  });

  it('a preferred link takes the policy back only under the bound less the margin', () => {
    // Proves failback to an earlier link needs 10% headroom on every bound: 46 ms is not enough, 45 is.
    expect(choose({ rttMs: 46 }, 'b')).toBe('b');
    expect(choose({ rttMs: 45 }, 'b')).toBe('a');
    expect(choose({ rttMs: 20, lossPercent: 9.5 }, 'b')).toBe('b');
    expect(choose({ rttMs: 20, lossPercent: 8 }, 'b')).toBe('a');
  });

  it('without a current link (first choice, or a new policy) the plain bound decides', () => {
    // Proves the margin is hysteresis only: it never keeps a fresh policy off its first link.
    expect(choose({ rttMs: 48 })).toBe('a');
  });

  it('a link behind the current one is judged by the plain bound', () => {
    // Proves failover away from a failing current link is not made harder by the margin.
    const d = desiredState(
      [link(0, 'a', { rttMs: 90 }), link(1, 'b', { rttMs: 49 })],
      [{ name: 'p', id: 7, spec, current: 'a' }],
    );
    expect(d.choices.get('p')).toMatchObject({ link: 'b', slaMet: true, reason: 'b, first of its preference that is usable and meets its SLA (a: RTT 90 ms > 50 ms)' });
  });

  it('says why a preferred link was passed over, margin included', () => {
    // Proves the failover/failback log line can name the bound that moved the sessions.
    const d = desiredState(
      [link(0, 'a', { rttMs: 46, lossPercent: 12 }), link(1, 'b', { rttMs: 5 })],
      [{ name: 'p', id: 7, spec, current: 'b' }],
    );
    expect(d.choices.get('p')?.reason).toBe('b, first of its preference that is usable and meets its SLA (a: RTT 46 ms > 45 ms (50 ms less the 10% margin), loss 12% > 9% (10% less the 10% margin))');
    const none = desiredState([link(0, 'a', { rttMs: 60 }), link(1, 'b', { up: false })], [{ name: 'p', id: 7, spec }]);
    expect(none.choices.get('p')).toMatchObject({ link: 'a', slaMet: false, reason: 'no link meets the SLA (a: RTT 60 ms > 50 ms; b: not usable); best usable: a' });
  });
});

describe('planChanges: only the differences', () => {
  const desired = desiredState([link(0, 'a'), link(1, 'b', { ifindex: null })], [
    { name: 'p', id: 1, spec: redirect(['a']) },
    { name: 'm', id: 2, spec: { match: { dscp: 46 }, action: { links: [], mode: 'mark', dscp: 46 } } },
  ]);

  it('writes nothing when the datapath already matches', () => {
    // Proves idempotence.
    const actual = { links: new Map([[0, { ifindex: 10, up: true }]]), policies: new Map([[1, { redirectLink: 0 }], [2, { dscp: 46 }]]), dscp: new Map([[46, 2]]) };
    expect(planChanges(desired, actual)).toEqual([]);
  });

  it('fixes every table, links first, deletions last', () => {
    // Proves the order: link entries, policy entries, DSCP entries, then stale policies deleted.
    const actual = {
      links: new Map([[0, { ifindex: 99, up: true }], [1, { ifindex: 5, up: true }], [7, { ifindex: 6, up: true }], [8, { ifindex: 6, up: false }]]),
      policies: new Map([[1, { redirectLink: 3 }], [9, { dscp: 1 }]]),
      dscp: new Map([[46, 9], [12, 9]]),
    };
    expect(planChanges(desired, actual)).toEqual([
      { op: 'set-link', id: 0, entry: { ifindex: 10, up: true } },
      { op: 'set-link', id: 1, entry: { ifindex: 5, up: false } }, // no interface now: never left up
      { op: 'set-link', id: 7, entry: { ifindex: 6, up: false } }, // not configured any more
      { op: 'set-policy', id: 2, action: { dscp: 46 } }, // policies in name order: m, p
      { op: 'set-policy', id: 1, action: { redirectLink: 0 } },
      { op: 'set-dscp', dscp: 46, policyId: 2 },
      { op: 'set-dscp', dscp: 12, policyId: null },
      { op: 'delete-policy', id: 9 },
    ]);
  });

  it('leaves policy and DSCP tables alone when they are not given (policies not synced yet)', () => {
    // Proves the start-up rule: only links are reconciled before the policies arrive.
    expect(planChanges(desired, { links: new Map([[0, { ifindex: 10, up: true }]]) })).toEqual([]);
  });

  it('tells equal desired states apart from changed ones', () => {
    // Proves the engine's skip check.
    const again = desiredState([link(0, 'a'), link(1, 'b', { ifindex: null })], [
      { name: 'p', id: 1, spec: redirect(['a']) },
      { name: 'm', id: 2, spec: { match: { dscp: 46 }, action: { links: [], mode: 'mark', dscp: 46 } } },
    ]);
    expect(sameDesired(desired, again)).toBe(true);
    expect(sameDesired(desired, desiredState([link(0, 'a', { up: false }), link(1, 'b', { ifindex: null })], []))).toBe(false);
  });
});

describe('desiredState: internet links are chosen per class, before routing', () => {
  const mark = (dscp: number, links: string[]): WanPolicySpec => ({ match: { dscp }, action: { links, mode: 'redirect' } });
  const inet = (id: number, name: string, over: Partial<LinkInput> = {}) => link(id, name, { internet: true, ...over });

  it('a class on internet links is bound to the link its policy chose, and follows it on failover', () => {
    // Proves the class -> link map that the nftables class rules are written from.
    const up = desiredState([inet(0, 'a'), inet(1, 'b')], [{ name: 'v', id: 3, spec: mark(10, ['b', 'a']) }]);
    expect([...up.classes]).toEqual([[10, 1]]);
    expect(up.links.get(1)).toEqual({ ifindex: 11, up: true, internet: true });
    const down = desiredState([inet(0, 'a'), inet(1, 'b', { up: false })], [{ name: 'v', id: 3, spec: mark(10, ['b', 'a']) }]);
    expect([...down.classes]).toEqual([[10, 0]]);
    expect(sameDesired(up, down)).toBe(false);
  });

  it('no usable internet link: the class takes the default route (no class entry); overlay classes get none', () => {
    // Proves that a class is never bound to a dead link, and that overlay links stay the BPF program's.
    const dead = desiredState([inet(0, 'a', { up: false })], [{ name: 'v', id: 3, spec: mark(10, ['a']) }]);
    expect(dead.classes.size).toBe(0);
    const overlay = desiredState([link(0, 'a')], [{ name: 'v', id: 3, spec: mark(10, ['a']) }]);
    expect(overlay.classes.size).toBe(0);
    expect(overlay.dscp.get(10)).toBe(3);
  });
});

describe('linksLeft: the links traffic moves off (their neighbour entries may hold packets)', () => {
  const actualOf = (links: LinkInput[], policies: PolicyInput[]) => {
    const d = desiredState(links, policies);
    return { links: new Map([...d.links].filter(([, e]) => e !== null).map(([id, e]) => [id, e!])), policies: d.policies, dscp: d.dscp };
  };
  const p = (name: string, id: number, links: string[]): PolicyInput => ({ name, id, spec: redirect(links) });

  it('a link going down, with or without policies on it; nothing when nothing moves', () => {
    // Proves a down link is left by whatever was on it, and a steady state leaves nothing.
    const policies = [p('x', 1, ['b', 'a'])];
    const before = actualOf([link(0, 'a'), link(1, 'b')], policies);
    expect(linksLeft(before, desiredState([link(0, 'a'), link(1, 'b')], policies))).toEqual([]);
    expect(linksLeft(before, desiredState([link(0, 'a'), link(1, 'b', { up: false })], policies))).toEqual([{ id: 1, ifindex: 11 }]);
    expect(linksLeft(before, desiredState([link(0, 'a', { up: false }), link(1, 'b')], policies))).toEqual([{ id: 0, ifindex: 10 }]);
    expect(linksLeft(before, desiredState([link(0, 'a'), link(1, 'b', { ifindex: null })], policies))).toEqual([{ id: 1, ifindex: 11 }]);
  });

  it('a policy moving to another link (an SLA, a failback, an edit) leaves the one it was on', () => {
    // Proves the up-link case: only the link that lost a policy, with the ifindex the datapath had.
    const links = [link(0, 'a'), link(1, 'b', { rttMs: 20 })];
    const policies = [p('x', 1, ['b', 'a']), { ...p('y', 2, ['b', 'a']), spec: redirect(['b', 'a'], { sla: { maxRttMs: 50 } }) }];
    const before = actualOf(links, policies);
    const slow = [link(0, 'a'), link(1, 'b', { rttMs: 80 })];
    expect(linksLeft(before, desiredState(slow, policies))).toEqual([{ id: 1, ifindex: 11 }]);
    expect(linksLeft(actualOf(slow, policies), desiredState(links, policies))).toEqual([{ id: 0, ifindex: 10 }]);
    expect(linksLeft(before, desiredState(links, [p('x', 1, ['a'])]))).toEqual([{ id: 1, ifindex: 11 }]);
    expect(linksLeft({ links: before.links }, desiredState(links, policies))).toEqual([]); // policies not read: links only
  });
});
