// Proves that bad input is refused object by object with a stable code and a reason naming the
// field: malformed YAML, wrong types, invalid regexes, unknown fields and oversized files.
import { describe, expect, it } from 'vitest';
import { parseRuleDocuments } from '../../src/routes/rule-documents.js';

const good = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: good }
spec:
  hosts: [good]
  http: [{ route: [{ destination: { host: good } }] }]
`;

function withSpec(spec: string, name = 'bad'): string {
  return `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: ${name} }\nspec:\n${spec}`;
}

describe('parseRuleDocuments', () => {
  it('keeps the good objects of a file and reports each bad one with its code and field path', () => {
    const text = [
      good,
      withSpec('  hosts: [a]\n  http: [{ match: [{ headers: { end-user: { regex: "(jason" } } }], route: [{ destination: { host: a } }] }]'),
      withSpec('  hosts: a-string-not-a-list\n'),
      withSpec('  hosts: [a]\n  http: [{ match: [{ header: { end-user: { exact: x } } }], route: [{ destination: { host: a } }] }]'),
      withSpec('  hosts: [a]\n  http: [{ match: [{ port: "80" }], route: [{ destination: { host: a } }] }]'),
    ].join('\n---\n');
    const docs = parseRuleDocuments(text, { origin: 'rules.yaml' });
    expect(docs.virtualServices.map((v) => v.name)).toEqual(['good']);
    expect(docs.invalid.map((e) => e.code)).toEqual([
      'WS_ROUTES_INVALID_REGEX',
      'WS_ROUTES_WRONG_TYPE',
      'WS_ROUTES_UNKNOWN_FIELD',
      'WS_ROUTES_WRONG_TYPE',
    ]);
    expect(docs.invalid[0]!.message).toBe(
      'rules.yaml#2 (default/bad): spec.http[0].match[0].headers.end-user.regex: invalid RE2 regex "(jason": missing closing )',
    );
    expect(docs.invalid[2]!.message).toContain('spec.http[0].match[0]: unknown field "header"');
  });

  it.each([
    ['no kind', 'apiVersion: networking.istio.io/v1\nmetadata: { name: x }\nspec: { hosts: [x] }', 'WS_ROUTES_NOT_A_VIRTUAL_SERVICE'],
    ['an unknown apiVersion', 'apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: { name: x }', 'WS_ROUTES_UNSUPPORTED_API_VERSION'],
    ['no name', 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: { hosts: [x] }', 'WS_ROUTES_MISSING_FIELD'],
    ['a route with no action', withSpec('  hosts: [a]\n  http: [{ name: r }]'), 'WS_ROUTES_MISSING_FIELD'],
    ['both route and redirect', withSpec('  hosts: [a]\n  http: [{ redirect: { uri: /x }, route: [{ destination: { host: a } }] }]'), 'WS_ROUTES_INVALID_VALUE'],
    ['two match kinds at once', withSpec('  hosts: [a]\n  http: [{ match: [{ uri: { exact: /a, prefix: /b } }], route: [{ destination: { host: a } }] }]'), 'WS_ROUTES_INVALID_VALUE'],
    ['a null header match', withSpec('  hosts: [a]\n  http: [{ match: [{ headers: { x: null } }], route: [{ destination: { host: a } }] }]'), 'WS_ROUTES_INVALID_VALUE'],
    ['an empty header prefix', withSpec('  hosts: [a]\n  http: [{ match: [{ headers: { x: { prefix: "" } } }], route: [{ destination: { host: a } }] }]'), 'WS_ROUTES_INVALID_VALUE'],
    ['a query parameter prefix (Istio does not support it)', withSpec('  hosts: [a]\n  http: [{ match: [{ queryParams: { q: { prefix: a } } }], route: [{ destination: { host: a } }] }]'), 'WS_ROUTES_INVALID_VALUE'],
    ['a port out of range', withSpec('  hosts: [a]\n  http: [{ match: [{ port: 70000 }], route: [{ destination: { host: a } }] }]'), 'WS_ROUTES_INVALID_VALUE'],
    ['a regex "*" in headers (not RE2)', withSpec('  hosts: [a]\n  http: [{ match: [{ headers: { x: { regex: "*" } } }], route: [{ destination: { host: a } }] }]'), 'WS_ROUTES_INVALID_REGEX'],
    ['a regex RE2 accepts but V8 cannot mirror', withSpec('  hosts: [a]\n  http: [{ match: [{ uri: { regex: "a(?i:b)" } }], route: [{ destination: { host: a } }] }]'), 'WS_ROUTES_UNSUPPORTED_REGEX'],
    ['all-zero weights', withSpec('  hosts: [a]\n  http: [{ route: [{ destination: { host: a }, weight: 0 }, { destination: { host: b }, weight: 0 }] }]'), 'WS_ROUTES_INVALID_VALUE'],
    ['a list where a map belongs', withSpec('  hosts: [a]\n  http: [{ match: [{ headers: [x] }], route: [{ destination: { host: a } }] }]'), 'WS_ROUTES_WRONG_TYPE'],
  ])('refuses an object with %s', (_what, text, code) => {
    const docs = parseRuleDocuments(text, { origin: 'f.yaml' });
    expect(docs.virtualServices).toEqual([]);
    expect(docs.invalid.map((e) => e.code)).toEqual([code]);
  });

  it('accepts withoutHeaders regex "*" as Istio does: header absent', () => {
    const docs = parseRuleDocuments(withSpec('  hosts: [a]\n  http: [{ match: [{ withoutHeaders: { x: { regex: "*" } } }], route: [{ destination: { host: a } }] }]'), { origin: 'f' });
    expect(docs.virtualServices[0]!.http[0]!.match[0]!.withoutHeaders).toEqual({ x: { present: true } });
  });

  it('reads a kubectl-style List and ignores other kinds', () => {
    const text = `apiVersion: v1\nkind: List\nitems:\n- ${good.trim().split('\n').join('\n  ')}\n- { apiVersion: networking.istio.io/v1, kind: Gateway, metadata: { name: g } }\n`;
    const docs = parseRuleDocuments(text, { origin: 'list.yaml' });
    expect(docs.virtualServices.map((v) => v.name)).toEqual(['good']);
    expect(docs.ignoredKinds).toEqual(['list.yaml#1.items[1] Gateway']);
  });

  it('fails the whole text on a YAML syntax error, naming the document', () => {
    expect(() => parseRuleDocuments(`${good}\n---\nspec: [unclosed`, { origin: 'broken.yaml' })).toThrowError(
      expect.objectContaining({ code: 'WS_ROUTES_YAML_SYNTAX', message: expect.stringMatching(/^broken\.yaml#2: YAML syntax error/) }),
    );
  });

  it('refuses duplicate keys, which would silently drop a rule', () => {
    expect(() => parseRuleDocuments('kind: VirtualService\nkind: VirtualService\n', { origin: 'dup.yaml' })).toThrowError(
      expect.objectContaining({ code: 'WS_ROUTES_YAML_SYNTAX' }),
    );
  });

  it('refuses a text over the size limit before parsing it', () => {
    const huge = `${good}\n# ${'x'.repeat(2048)}\n`;
    expect(() => parseRuleDocuments(huge, { origin: 'huge.yaml', maxBytes: 1024 })).toThrowError(
      expect.objectContaining({ code: 'WS_ROUTES_FILE_TOO_LARGE' }),
    );
  });

  it('refuses an alias bomb instead of expanding it', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++) bomb.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(', ')}]`);
    expect(() => parseRuleDocuments(bomb.join('\n'), { origin: 'bomb.yaml' })).toThrowError(
      expect.objectContaining({ code: 'WS_ROUTES_YAML_SYNTAX' }),
    );
  });
});
