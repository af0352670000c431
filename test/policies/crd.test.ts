// Proves deploy/crds/wanpolicy.yaml is what the generator makes from WanPolicySpec (no drift),
// is a structural schema Kubernetes accepts, and accepts and rejects the same specs as the
// TypeBox schema the REST API validates with.
import { readFile } from 'node:fs/promises';
import { Value } from '@sinclair/typebox/value';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { fromRoot } from '../../src/config/paths.js';
import { renderWanPolicyCrd } from '../../src/policies/crd.js';
import { WanPolicySpec } from '../../src/policies/model.js';
import { crdSpecSchema, structuralErrors } from './helpers/structural-schema.js';

const committed = async () => parse(await readFile(fromRoot('deploy/crds/wanpolicy.yaml'), 'utf8')) as unknown;

const route = (extra: object = {}) => ({ route: { virtualService: 'default/cloud-app', ...extra } });
const action = (extra: object = {}) => ({ links: ['wan1', 'wan0'], mode: 'redirect', ...extra });

const examples: { what: string; spec: unknown; valid: boolean }[] = [
  { what: 'route by name, redirect', spec: { match: route({ route: 'minion' }), action: action() }, valid: true },
  { what: 'route by index', spec: { match: route({ routeIndex: 2 }), action: action() }, valid: true },
  { what: 'any route, with an SLA and a description', spec: { match: route(), action: action({ sla: { maxRttMs: 80.5, maxLossPercent: 1 } }), description: 'boss traffic' }, valid: true },
  { what: 'dscp match, both', spec: { match: { dscp: 10 }, action: { links: ['wan0'], dscp: 46, mode: 'both' } }, valid: true },
  { what: 'DSCP 64', spec: { match: { dscp: 64 }, action: action() }, valid: false },
  { what: 'negative DSCP', spec: { match: { dscp: -1 }, action: action() }, valid: false },
  { what: 'fractional DSCP', spec: { match: { dscp: 1.5 }, action: action() }, valid: false },
  { what: 'both route and dscp in match', spec: { match: { ...route(), dscp: 1 }, action: action() }, valid: false },
  { what: 'empty match', spec: { match: {}, action: action() }, valid: false },
  { what: 'unknown mode', spec: { match: { dscp: 1 }, action: action({ mode: 'teleport' }) }, valid: false },
  { what: 'missing mode', spec: { match: { dscp: 1 }, action: { links: ['wan0'] } }, valid: false },
  { what: 'missing action', spec: { match: { dscp: 1 } }, valid: false },
  { what: 'unknown field in spec', spec: { match: { dscp: 1 }, action: action(), colour: 'red' }, valid: false },
  { what: 'unknown field in route', spec: { match: route({ weight: 1 }), action: action() }, valid: false },
  { what: 'VirtualService without namespace', spec: { match: { route: { virtualService: 'cloud-app' } }, action: action() }, valid: false },
  { what: 'link name with a space', spec: { match: { dscp: 1 }, action: action({ links: ['wan 0'] }) }, valid: false },
  { what: 'the same link twice', spec: { match: { dscp: 1 }, action: action({ links: ['wan0', 'wan0'] }) }, valid: false },
  { what: 'seventeen links', spec: { match: { dscp: 1 }, action: action({ links: Array.from({ length: 17 }, (_, i) => `l${i}`) }) }, valid: false },
  { what: 'loss over 100 %', spec: { match: { dscp: 1 }, action: action({ sla: { maxLossPercent: 101 } }) }, valid: false },
  { what: 'description over 1 KiB', spec: { match: { dscp: 1 }, action: action(), description: 'x'.repeat(1025) }, valid: false },
  { what: 'empty route name', spec: { match: route({ route: '' }), action: action() }, valid: false },
];

describe('WanPolicy CRD', () => {
  it('is exactly what renderWanPolicyCrd() generates (regenerate: see src/policies/crd.ts)', async () => {
    expect(await committed()).toEqual(renderWanPolicyCrd());
  });

  it('is structural: no additionalProperties:false or uniqueItems, oneOf branches hold only required', async () => {
    const text = JSON.stringify(await committed());
    expect(text).not.toMatch(/"additionalProperties":false|"uniqueItems"/);
    const branches = JSON.stringify(crdSpecSchema(await committed())).match(/"oneOf":\[[^\]]*\]\]/g) ?? [];
    for (const b of branches) expect(b).not.toMatch(/"type"|"properties"/);
  });

  it('names the resource, its short name and its printer columns', async () => {
    const crd = (await committed()) as { spec: { names: { shortNames: string[] }; scope: string; versions: { additionalPrinterColumns: { name: string }[] }[] } };
    expect(crd.spec.names.shortNames).toEqual(['wp']);
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.versions[0]!.additionalPrinterColumns.map((c) => c.name)).toEqual(['Match-VS', 'Match-Route', 'Match-DSCP', 'Links', 'Mode', 'Age']);
  });

  it.each(examples)('CRD schema and TypeBox agree: $what → valid=$valid', async ({ spec, valid }) => {
    const schema = crdSpecSchema(await committed());
    expect(Value.Check(WanPolicySpec, spec)).toBe(valid);
    expect(structuralErrors(schema, spec)).toEqual(valid ? [] : expect.arrayContaining([expect.any(String)]));
  });
});
