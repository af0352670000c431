// Proves the pieces around classification: weighted destinations and the draw that picks one,
// the RuleSet's merge of sources, and that explain agrees with classify.
import { describe, expect, it } from 'vitest';
import { classifyRequest } from '../../src/routes/classify.js';
import { explainRequest } from '../../src/routes/explain.js';
import { pickDestination, RouteTable } from '../../src/routes/route-table.js';
import { RuleSet } from '../../src/routes/rule-set.js';
import { parseVirtualService } from '../../src/routes/validate.js';

const make = (name: string, spec: unknown, namespace = 'default') =>
  parseVirtualService({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace }, spec }, { origin: 't', defaultNamespace: 'default' });

const ratings = make('ratings', {
  hosts: ['ratings'],
  http: [{ name: 'canary', route: [
    { destination: { host: 'ratings', subset: 'v1' }, weight: 75 },
    { destination: { host: 'ratings.prod.svc.cluster.local', subset: 'v3', port: { number: 9080 } }, weight: 25 },
  ] }],
});

describe('route table', () => {
  it('reports weighted destinations in percent and picks by the caller\'s draw', () => {
    const r = classifyRequest(new RouteTable([ratings]), { host: 'ratings' });
    if (!r.matched) throw new Error('expected a match');
    expect(r.destinations.map((d) => d.percent)).toEqual([75, 25]);
    expect(pickDestination(r, 0.1)?.subset).toBe('v1');
    expect(pickDestination(r, 0.8)).toEqual({ host: 'ratings.prod.svc.cluster.local', subset: 'v3', port: 9080 });
    expect(pickDestination(r, 0.999999)?.subset).toBe('v3');
  });

  it('uses the cluster domain it is given for short names', () => {
    const table = new RouteTable([ratings], { clusterDomain: 'edge.local' });
    expect(classifyRequest(table, { host: 'ratings.default.svc.edge.local' }).matched).toBe(true);
    expect(classifyRequest(table, { host: 'ratings.default.svc.cluster.local' }).matched).toBe(false);
  });

  it('explain reaches the same verdict as classify and shows the failed condition', () => {
    const vs = make('api', { hosts: ['api'], http: [
      { name: 'post', match: [{ method: { exact: 'POST' } }], route: [{ destination: { host: 'api' } }] },
      { name: 'rest', route: [{ destination: { host: 'api' } }] },
    ] });
    const table = new RouteTable([vs]);
    const e = explainRequest(table, { host: 'api', method: 'GET' });
    expect(e.result).toBe(classifyRequest(table, { host: 'api', method: 'GET' }));
    expect(e.routes.map((r) => [r.name, r.outcome])).toEqual([['post', 'no-match'], ['rest', 'matched']]);
    expect(e.routes[0]!.blocks[0]!.conditions).toEqual([{ condition: 'method exact "POST"', held: false }]);
  });
});

describe('RuleSet', () => {
  it('merges sources, keeps the first source\'s copy of a duplicated object, and rebuilds only after a change', () => {
    const set = new RuleSet();
    let changes = 0;
    set.onChange(() => changes++);
    set.replaceSource('file:b', [make('x', { hosts: ['from-b'], http: [] })]);
    set.replaceSource('file:a', [make('x', { hosts: ['from-a'], http: [] }), ratings]);
    expect(set.virtualServices().map((v) => `${v.name}:${v.hosts[0]}`).sort()).toEqual(['ratings:ratings', 'x:from-a']);
    const table = set.table();
    expect(set.table()).toBe(table);
    set.remove('file:a', 'default/ratings');
    expect(set.table()).not.toBe(table);
    expect(changes).toBe(3);
  });
});
