// Proves policy validation: each kind of bad policy is refused with its stable code, HTTP status
// and field, and two policies may not take the same sessions (same DSCP, same route, or "any
// route" against a route of the same VirtualService).
import { describe, expect, it } from 'vitest';
import { PolicyError } from '../../src/policies/errors.js';
import type { WanPolicySpec } from '../../src/policies/model.js';
import { checkLinkKinds, findDuplicateMatch, MatchIndex, validatePolicy } from '../../src/policies/validate.js';

const links = new Set(['fibre', 'lte']);
const redirect = (vs: string, extra: object = {}): WanPolicySpec => ({
  match: { route: { virtualService: vs, ...extra } },
  action: { links: ['lte'], mode: 'redirect' },
});
const mark = (dscp: number): WanPolicySpec => ({ match: { dscp }, action: { links: [], dscp: 46, mode: 'mark' } });

function failure(name: string, spec: unknown, others: { name: string; spec: WanPolicySpec }[] = []): PolicyError {
  try {
    validatePolicy(name, spec, { links, others });
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return err as PolicyError;
  }
  throw new Error('expected a PolicyError');
}

describe('validatePolicy: one policy', () => {
  it('accepts each mode in its well-formed shape', () => {
    expect(validatePolicy('a', redirect('default/app', { route: 'minion' }), { links, others: [] })).toBeTruthy();
    expect(validatePolicy('b', mark(10), { links, others: [] })).toBeTruthy();
    expect(validatePolicy('c', { match: { dscp: 12 }, action: { links: ['fibre', 'lte'], dscp: 46, mode: 'both', sla: { maxRttMs: 80 } } }, { links, others: [] })).toBeTruthy();
  });

  const cases: { what: string; name?: string; spec: unknown; code: string; status: number; field: string }[] = [
    { what: 'DSCP 64 in the action', spec: { match: { dscp: 1 }, action: { links: [], dscp: 64, mode: 'mark' } }, code: 'WS_POLICY_INVALID', status: 422, field: 'spec.action.dscp' },
    { what: 'DSCP 64 in the match', spec: { match: { dscp: 64 }, action: { links: ['lte'], mode: 'redirect' } }, code: 'WS_POLICY_INVALID', status: 422, field: 'spec.match.dscp' },
    { what: 'unknown mode', spec: { match: { dscp: 1 }, action: { links: ['lte'], mode: 'teleport' } }, code: 'WS_POLICY_INVALID', status: 422, field: 'spec.action.mode' },
    { what: 'unknown field', spec: { ...redirect('default/app'), colour: 'red' }, code: 'WS_POLICY_INVALID', status: 422, field: 'spec.colour' },
    { what: 'match with both route and dscp', spec: { match: { dscp: 1, route: { virtualService: 'default/app' } }, action: { links: ['lte'], mode: 'redirect' } }, code: 'WS_POLICY_INVALID', status: 422, field: 'spec.match' },
    { what: 'unknown link', spec: { match: { dscp: 1 }, action: { links: ['lte', 'satellite'], mode: 'redirect' } }, code: 'WS_POLICY_UNKNOWN_LINK', status: 422, field: 'spec.action.links[1]' },
    { what: 'redirect without links', spec: { match: { dscp: 1 }, action: { links: [], mode: 'redirect' } }, code: 'WS_POLICY_INVALID', status: 422, field: 'spec.action.links' },
    { what: 'both without links', spec: { match: { dscp: 1 }, action: { links: [], dscp: 46, mode: 'both' } }, code: 'WS_POLICY_INVALID', status: 422, field: 'spec.action.links' },
    { what: 'mark without dscp', spec: { match: { dscp: 1 }, action: { links: [], mode: 'mark' } }, code: 'WS_POLICY_INVALID', status: 422, field: 'spec.action.dscp' },
    { what: 'both without dscp', spec: { match: { dscp: 1 }, action: { links: ['lte'], mode: 'both' } }, code: 'WS_POLICY_INVALID', status: 422, field: 'spec.action.dscp' },
    { what: 'mark with links', spec: { match: { dscp: 1 }, action: { links: ['lte'], dscp: 46, mode: 'mark' } }, code: 'WS_POLICY_INVALID', status: 422, field: 'spec.action.links' },
    { what: 'redirect with dscp', spec: { match: { dscp: 1 }, action: { links: ['lte'], dscp: 46, mode: 'redirect' } }, code: 'WS_POLICY_INVALID', status: 422, field: 'spec.action.dscp' },
    { what: 'route and routeIndex', spec: redirect('default/app', { route: 'minion', routeIndex: 1 }), code: 'WS_POLICY_INVALID', status: 422, field: 'spec.match.route.routeIndex' },
    { what: 'VirtualService without namespace', spec: redirect('app'), code: 'WS_POLICY_INVALID', status: 422, field: 'spec.match.route.virtualService' },
    { what: 'duplicate link', spec: { match: { dscp: 1 }, action: { links: ['lte', 'lte'], mode: 'redirect' } }, code: 'WS_POLICY_INVALID', status: 422, field: 'spec.action.links' },
    { what: 'not an object', spec: 'redirect everything', code: 'WS_POLICY_INVALID', status: 422, field: 'spec' },
    { what: 'upper-case name', name: 'Minion', spec: redirect('default/app'), code: 'WS_POLICY_NAME_INVALID', status: 400, field: 'name' },
  ];

  it.each(cases)('$what → $code ($status) at $field', ({ name, spec, code, status, field }) => {
    const err = failure(name ?? 'p', spec);
    expect({ code: err.code, statusCode: err.statusCode, field: err.field }).toEqual({ code, statusCode: status, field });
    expect(err.message).toMatch(new RegExp(`^${field.replace(/[[\].]/g, '\\$&')}: .*fix: `));
  });
});

describe('validatePolicy: across policies', () => {
  const stored = [
    { name: 'voice', spec: mark(10) },
    { name: 'minion', spec: redirect('default/app', { route: 'minion' }) },
    { name: 'first-route', spec: redirect('default/web', { routeIndex: 0 }) },
    { name: 'all-of-api', spec: redirect('default/api') },
  ];
  const cases: { what: string; spec: WanPolicySpec; conflictsWith?: string }[] = [
    { what: 'the same DSCP', spec: mark(10), conflictsWith: 'voice' },
    { what: 'another DSCP', spec: mark(11) },
    { what: 'the same named route', spec: redirect('default/app', { route: 'minion' }), conflictsWith: 'minion' },
    { what: 'another route of the same VirtualService', spec: redirect('default/app', { route: 'boss' }) },
    { what: 'any route where one route is claimed', spec: redirect('default/app'), conflictsWith: 'minion' },
    { what: 'a route where any route is claimed', spec: redirect('default/api', { route: 'v2' }), conflictsWith: 'all-of-api' },
    { what: 'the same route index', spec: redirect('default/web', { routeIndex: 0 }), conflictsWith: 'first-route' },
    { what: 'a name where an index is claimed (only the VirtualService knows)', spec: redirect('default/web', { route: 'home' }) },
    { what: 'the same route name in another namespace', spec: redirect('other/app', { route: 'minion' }) },
  ];

  it.each(cases)('$what', ({ spec, conflictsWith }) => {
    if (!conflictsWith) {
      expect(validatePolicy('new', spec, { links, others: stored })).toEqual(spec);
      return;
    }
    const err = failure('new', spec, stored);
    expect({ code: err.code, statusCode: err.statusCode }).toEqual({ code: 'WS_POLICY_DUPLICATE_MATCH', statusCode: 409 });
    expect(err.message).toContain(`policy ${conflictsWith}`);
  });

  it('lets a policy keep its own match when it is replaced', () => {
    expect(validatePolicy('voice', mark(10), { links, others: stored })).toEqual(mark(10));
  });
});

describe('MatchIndex', () => {
  it('finds the same duplicate as a check against every policy, for 2000 random policies', () => {
    // A small space of matches, so clashes are common: 5 VirtualServices × (any | 3 names | 3 indexes), 8 DSCPs.
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const randomSpec = (): WanPolicySpec => {
      if (rand(4) === 0) return mark(rand(8));
      const k = rand(7);
      return redirect(`default/vs-${rand(5)}`, k === 0 ? {} : k < 4 ? { route: `r${k}` } : { routeIndex: k - 4 });
    };
    const index = new MatchIndex<{ name: string; spec: WanPolicySpec }>();
    const all: { name: string; spec: WanPolicySpec }[] = [];
    let clashes = 0;
    for (let i = 0; i < 2000; i++) {
      const p = { name: `p${i}`, spec: randomSpec() };
      const expected = findDuplicateMatch(p.name, p.spec, all);
      expect(index.duplicateOf(p.name, p.spec)?.message).toBe(expected?.message);
      if (expected) clashes++;
      else if (rand(2) === 0) {
        index.add(p);
        all.push(p);
      }
    }
    expect(clashes).toBeGreaterThan(500);
  });
});


describe('checkLinkKinds: what internet links cannot carry', () => {
  const internet = new Set(['isp1', 'isp2']);
  const spec = (match: WanPolicySpec['match'], links: string[]): WanPolicySpec => ({ match, action: { links, mode: 'redirect' } });

  it('refuses a route-matched policy onto an internet link, naming the link and the fix', () => {
    // Proves session mode cannot choose an internet link (the class is known only after the handshake).
    let err: unknown;
    try {
      checkLinkKinds(spec({ route: { virtualService: 'default/app' } }, ['tunnel', 'isp1']), internet);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'WS_POLICY_LINK_KIND', statusCode: 422, field: 'spec.action.links[1]' });
    expect((err as Error).message).toMatch(/internet link "isp1".*bound to its link's address.*fix: match by DSCP/);
  });

  it('refuses a DSCP policy mixing internet and overlay links; takes one of a single kind', () => {
    // Proves the kinds are not mixed in one preference, and mark mode on internet links is fine.
    expect(() => checkLinkKinds(spec({ dscp: 10 }, ['isp1', 'tunnel']), internet)).toThrow(/mixes internet links \(isp1\) with overlay link "tunnel"/);
    expect(() => checkLinkKinds(spec({ dscp: 10 }, ['isp1', 'isp2']), internet)).not.toThrow();
    expect(() => checkLinkKinds(spec({ route: { virtualService: 'default/app' } }, ['tunnel']), internet)).not.toThrow();
    expect(() => checkLinkKinds({ match: { route: { virtualService: 'default/app' } }, action: { links: [], mode: 'mark', dscp: 46 } }, internet)).not.toThrow();
  });
});
