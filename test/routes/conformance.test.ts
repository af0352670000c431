// Proves that classifyRequest answers as Istio's documented VirtualService semantics say, rule by rule.
// Each case names the rule (from istio.io's VirtualService reference and the bookinfo tasks) it checks.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { classifyRequest } from '../../src/routes/classify.js';
import type { RouteRequest } from '../../src/routes/model.js';
import { RouteTable } from '../../src/routes/route-table.js';
import { parseVirtualService } from '../../src/routes/validate.js';

function vs(yaml: string, extra: { namespace?: string; created?: string } = {}) {
  const doc = parse(yaml);
  doc.apiVersion ??= 'networking.istio.io/v1';
  doc.kind ??= 'VirtualService';
  doc.metadata ??= { name: 'vs' };
  if (extra.namespace) doc.metadata.namespace = extra.namespace;
  if (extra.created) doc.metadata.creationTimestamp = extra.created;
  return parseVirtualService(doc, { origin: 'test', defaultNamespace: 'default' });
}

/** Bookinfo reviews: jason → v2, everyone else → v1. */
const reviews = vs(`
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{ headers: { end-user: { exact: jason } } }]
    route: [{ destination: { host: reviews, subset: v2 } }]
  - name: default
    route: [{ destination: { host: reviews, subset: v1 } }]
`);

const matchers = vs(`
metadata: { name: api }
spec:
  hosts: [api.example.com]
  http:
  - name: prefix-header
    match: [{ headers: { x-team: { prefix: edge- } } }]
    route: [{ destination: { host: a } }]
  - name: regex-header
    match: [{ headers: { x-build: { regex: "v[0-9]+" } } }]
    route: [{ destination: { host: a } }]
  - name: present-header
    match: [{ headers: { x-canary: {} } }]
    route: [{ destination: { host: a } }]
  - name: without-debug
    match: [{ uri: { prefix: /nodebug }, withoutHeaders: { x-debug: { exact: "1" } } }]
    route: [{ destination: { host: a } }]
  - name: without-trace
    match: [{ uri: { prefix: /notrace }, withoutHeaders: { x-trace: {} } }]
    route: [{ destination: { host: a } }]
  - name: exact-uri
    match: [{ uri: { exact: /login } }]
    route: [{ destination: { host: a } }]
  - name: regex-uri
    match: [{ uri: { regex: "/items/[0-9]+" } }]
    route: [{ destination: { host: a } }]
  - name: uri-ignore-case
    match: [{ uri: { prefix: /Admin }, ignoreUriCase: true }]
    route: [{ destination: { host: a } }]
  - name: post-only
    match: [{ uri: { prefix: /orders }, method: { exact: POST } }]
    route: [{ destination: { host: a } }]
  - name: port-8443
    match: [{ uri: { prefix: /secure }, port: 8443 }]
    route: [{ destination: { host: a } }]
  - name: https-only
    match: [{ uri: { prefix: /pay }, scheme: { exact: https } }]
    route: [{ destination: { host: a } }]
  - name: query
    match: [{ uri: { prefix: /search }, queryParams: { q: { exact: wan } } }]
    route: [{ destination: { host: a } }]
  - name: query-flag
    match: [{ uri: { prefix: /flags }, queryParams: { beta: { exact: "" } } }]
    route: [{ destination: { host: a } }]
  - name: and-or
    match:
    - { uri: { prefix: /both }, headers: { x-a: { exact: "1" }, x-b: { exact: "2" } } }
    - { uri: { prefix: /either } }
    route: [{ destination: { host: a } }]
  - name: from-frontend
    match: [{ uri: { prefix: /internal }, sourceLabels: { app: frontend }, sourceNamespace: shop }]
    route: [{ destination: { host: a } }]
  - name: authority
    match: [{ uri: { prefix: /auth }, authority: { exact: "api.example.com:8080" } }]
    route: [{ destination: { host: a } }]
`);

const wildcard = vs(`
metadata: { name: wild }
spec:
  hosts: ["*.example.com"]
  http: [{ name: wild, route: [{ destination: { host: w } }] }]
`);
const wildcardLonger = vs(`
metadata: { name: wild-eu }
spec:
  hosts: ["*.eu.example.com"]
  http: [{ name: wild-eu, route: [{ destination: { host: w } }] }]
`);
const everything = vs(`
metadata: { name: everything }
spec:
  hosts: ["*"]
  http: [{ name: star, route: [{ destination: { host: s } }] }]
`);
const shopCart = vs(`
metadata: { name: cart, namespace: shop }
spec:
  hosts: [cart]
  http: [{ name: shop-cart, route: [{ destination: { host: cart } }] }]
`);
const gatewayOnly = vs(`
metadata: { name: ingress }
spec:
  hosts: [reviews.default.svc.cluster.local]
  gateways: [edge-gateway]
  http: [{ name: ingress, route: [{ destination: { host: reviews } }] }]
`);
const meshAndGateway = vs(`
metadata: { name: split, namespace: edge }
spec:
  hosts: [split.example.org]
  gateways: [mesh, edge-gateway]
  http:
  - name: gateway-only-block
    match: [{ gateways: [edge-gateway], uri: { prefix: / } }]
    route: [{ destination: { host: g } }]
  - name: rest
    route: [{ destination: { host: r } }]
`);
const older = vs(
  `
metadata: { name: old }
spec:
  hosts: [dup.example.org]
  http: [{ name: old, match: [{ uri: { prefix: /old } }], route: [{ destination: { host: o } }] }]
`,
  { created: '2024-01-01T00:00:00Z' },
);
const newer = vs(
  `
metadata: { name: new }
spec:
  hosts: [dup.example.org]
  http: [{ name: new, route: [{ destination: { host: n } }] }]
`,
  { created: '2025-01-01T00:00:00Z' },
);

const table = new RouteTable([reviews, matchers, wildcard, wildcardLonger, everything, shopCart, gatewayOnly, meshAndGateway, older, newer]);

interface Case {
  readonly rule: string;
  readonly request: RouteRequest;
  /** `vs/route`, or `no-virtual-service` / `no-route`. */
  readonly expect: string;
}

const api = (extra: Partial<RouteRequest>): RouteRequest => ({ host: 'api.example.com', method: 'GET', scheme: 'http', ...extra });

const cases: Case[] = [
  // Host selection.
  { rule: 'short host in the VS namespace: reviews = reviews.default.svc.cluster.local', request: { host: 'reviews.default.svc.cluster.local' }, expect: 'reviews/default' },
  { rule: 'client short name resolves in the client namespace', request: { host: 'reviews', sourceNamespace: 'default' }, expect: 'reviews/default' },
  { rule: 'client short name from another namespace is another service (only "*" takes it)', request: { host: 'cart', sourceNamespace: 'default' }, expect: 'everything/star' },
  { rule: 'VS short host belongs to its own namespace (shop), not the client\'s', request: { host: 'cart.shop.svc.cluster.local' }, expect: 'cart/shop-cart' },
  { rule: 'name.namespace form reaches the service', request: { host: 'cart.shop' }, expect: 'cart/shop-cart' },
  { rule: 'authority port is ignored for host selection', request: { host: 'reviews.default.svc.cluster.local:9080' }, expect: 'reviews/default' },
  { rule: 'host match is case-insensitive', request: { host: 'Reviews.Default.svc.cluster.local' }, expect: 'reviews/default' },
  { rule: 'exact host beats wildcard', request: api({ path: '/login' }), expect: 'api/exact-uri' },
  { rule: '*.example.com covers a subdomain', request: { host: 'shop.example.com' }, expect: 'wild/wild' },
  { rule: 'longer wildcard suffix wins', request: { host: 'shop.eu.example.com' }, expect: 'wild-eu/wild-eu' },
  { rule: '*.example.com does not cover example.com itself', request: { host: 'example.com' }, expect: 'everything/star' },
  { rule: '"*" catches any other host', request: { host: 'unknown.org' }, expect: 'everything/star' },
  { rule: 'no fall-through: exact host VS with no matching route is no match', request: api({ path: '/nothing-here' }), expect: 'no-route' },
  // Gateways.
  { rule: 'gateway-bound VS does not apply to sidecars (mesh)', request: { host: 'reviews', gateway: 'mesh' }, expect: 'reviews/default' },
  { rule: 'gateway-bound VS applies at its gateway (short name in VS namespace)', request: { host: 'reviews.default.svc.cluster.local', gateway: 'default/edge-gateway' }, expect: 'ingress/ingress' },
  { rule: 'match.gateways limits a block to that gateway', request: { host: 'split.example.org', gateway: 'mesh' }, expect: 'split/rest' },
  { rule: 'match.gateways block applies at the named gateway', request: { host: 'split.example.org', gateway: 'edge/edge-gateway' }, expect: 'split/gateway-only-block' },
  { rule: 'same host in two VSs: the oldest wins on a sidecar', request: { host: 'dup.example.org', path: '/other' }, expect: 'no-route' },
  { rule: 'same host in two VSs: the oldest one\'s routes apply', request: { host: 'dup.example.org', path: '/old' }, expect: 'old/old' },
  // Route order and headers.
  { rule: 'header exact: jason gets the jason route', request: { host: 'reviews', headers: { 'end-user': 'jason' } }, expect: 'reviews/jason' },
  { rule: 'header exact is case-sensitive in the value', request: { host: 'reviews', headers: { 'end-user': 'Jason' } }, expect: 'reviews/default' },
  { rule: 'route without match matches all (bookinfo default route)', request: { host: 'reviews' }, expect: 'reviews/default' },
  { rule: 'header prefix', request: api({ headers: { 'x-team': 'edge-berlin' } }), expect: 'api/prefix-header' },
  { rule: 'header regex matches the whole value', request: api({ headers: { 'x-build': 'v42' } }), expect: 'api/regex-header' },
  { rule: 'header regex is not a substring search', request: api({ headers: { 'x-build': 'v42-rc1' } }), expect: 'no-route' },
  { rule: 'header {} means present, any value', request: api({ headers: { 'x-canary': '' } }), expect: 'api/present-header' },
  { rule: 'withoutHeaders: other value passes', request: api({ path: '/nodebug', headers: { 'x-debug': '0' } }), expect: 'api/without-debug' },
  { rule: 'withoutHeaders: matching value excludes', request: api({ path: '/nodebug', headers: { 'x-debug': '1' } }), expect: 'no-route' },
  { rule: 'withoutHeaders with a value needs the header present (Envoy, istio#50988)', request: api({ path: '/nodebug' }), expect: 'no-route' },
  { rule: 'withoutHeaders {} means the header is absent', request: api({ path: '/notrace' }), expect: 'api/without-trace' },
  { rule: 'withoutHeaders {}: present header excludes', request: api({ path: '/notrace', headers: { 'x-trace': 'x' } }), expect: 'no-route' },
  // URI.
  { rule: 'uri exact', request: api({ path: '/login' }), expect: 'api/exact-uri' },
  { rule: 'uri exact ignores the query string', request: api({ path: '/login?next=/' }), expect: 'api/exact-uri' },
  { rule: 'uri exact does not match a longer path', request: api({ path: '/login/x' }), expect: 'no-route' },
  { rule: 'uri regex is a full match on the path without query', request: api({ path: '/items/17?x=1' }), expect: 'api/regex-uri' },
  { rule: 'uri regex full match rejects a trailing segment', request: api({ path: '/items/17/x' }), expect: 'no-route' },
  { rule: 'ignoreUriCase folds case for prefix', request: api({ path: '/ADMIN/users' }), expect: 'api/uri-ignore-case' },
  // Method, port, scheme, authority, query, source.
  { rule: 'method exact', request: api({ path: '/orders', method: 'POST' }), expect: 'api/post-only' },
  { rule: 'method mismatch', request: api({ path: '/orders', method: 'GET' }), expect: 'no-route' },
  { rule: 'port from request', request: api({ path: '/secure', port: 8443 }), expect: 'api/port-8443' },
  { rule: 'port from authority', request: api({ host: 'api.example.com:8443', path: '/secure' }), expect: 'api/port-8443' },
  { rule: 'port mismatch', request: api({ path: '/secure', port: 443 }), expect: 'no-route' },
  { rule: 'scheme exact', request: api({ path: '/pay', scheme: 'https' }), expect: 'api/https-only' },
  { rule: 'authority exact includes the port as sent', request: api({ host: 'api.example.com:8080', path: '/auth' }), expect: 'api/authority' },
  { rule: 'queryParams exact', request: api({ path: '/search?q=wan&page=2' }), expect: 'api/query' },
  { rule: 'queryParams values are percent-decoded', request: api({ path: '/search?q=w%61n' }), expect: 'api/query' },
  { rule: 'queryParams exact "" matches a bare ?key', request: api({ path: '/flags?beta' }), expect: 'api/query-flag' },
  { rule: 'sourceLabels and sourceNamespace both hold', request: api({ path: '/internal', sourceLabels: { app: 'frontend', v: '1' }, sourceNamespace: 'shop' }), expect: 'api/from-frontend' },
  { rule: 'sourceLabels must all match', request: api({ path: '/internal', sourceLabels: { app: 'batch' }, sourceNamespace: 'shop' }), expect: 'no-route' },
  { rule: 'sourceNamespace must match', request: api({ path: '/internal', sourceLabels: { app: 'frontend' }, sourceNamespace: 'other' }), expect: 'no-route' },
  // Several match blocks.
  { rule: 'conditions inside a block are AND-ed', request: api({ path: '/both', headers: { 'x-a': '1' } }), expect: 'no-route' },
  { rule: 'all conditions of the block hold', request: api({ path: '/both', headers: { 'x-a': '1', 'x-b': '2' } }), expect: 'api/and-or' },
  { rule: 'match blocks are OR-ed', request: api({ path: '/either' }), expect: 'api/and-or' },
  { rule: 'first matching route wins (prefix-header before present-header)', request: api({ headers: { 'x-team': 'edge-1', 'x-canary': 'y' } }), expect: 'api/prefix-header' },
];

describe('Istio VirtualService match semantics', () => {
  it.each(cases)('$rule', ({ request, expect: want }) => {
    const got = classifyRequest(table, request);
    const summary = got.matched ? `${got.virtualService.name}/${got.routeName}` : got.reason;
    expect(summary).toBe(want);
  });

  it('returns the destination Istio would route to, with the short host resolved in the VS namespace', () => {
    const got = classifyRequest(table, { host: 'reviews', headers: { 'end-user': 'jason' } });
    expect(got.matched && got.destinations).toEqual([{ destination: { host: 'reviews.default.svc.cluster.local', subset: 'v2' }, percent: 100 }]);
    expect(got.matched && [got.routeIndex, got.matchIndex]).toEqual([0, 0]);
  });
});
