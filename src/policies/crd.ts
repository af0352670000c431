/**
 * The WanPolicy CustomResourceDefinition, generated from the TypeBox schema so the CRD and the
 * REST API cannot disagree. deploy/crds/wanpolicy.yaml is this function's output; a test fails
 * when the two drift. Regenerate with:
 *
 *   node --import tsx -e "import('./src/policies/crd.ts').then((m) => process.stdout.write(m.renderWanPolicyCrdYaml()))" > deploy/crds/wanpolicy.yaml
 *
 * Kubernetes wants a *structural* schema, which differs from JSON Schema in ways that matter:
 * no `additionalProperties: false` (unknown fields are pruned, or refused with
 * fieldValidation=Strict), no `uniqueItems` (`x-kubernetes-list-type: set` instead), unions as
 * one object with every variant's properties plus `oneOf` branches of `required` only.
 */
import { Kind, type TSchema } from '@sinclair/typebox';
import { stringify } from 'yaml';
import { WanPolicySpec } from './model.js';
import { WANPOLICY_GROUP, WANPOLICY_KIND, WANPOLICY_PLURAL, WANPOLICY_VERSION } from './wan-policy-object.js';

type OpenApi = Record<string, unknown>;

/** What validate.ts checks beyond the schema, as CEL rules, so kubectl users hear it at once. */
const CEL_RULES: Record<string, { rule: string; message: string }[]> = {
  '.action': [
    { rule: "self.mode == 'mark' || size(self.links) > 0", message: 'modes redirect and both need at least one link' },
    { rule: "self.mode != 'mark' || size(self.links) == 0", message: 'mode mark sets a DSCP only: remove links, or use mode both' },
    { rule: "self.mode == 'redirect' || has(self.dscp)", message: 'modes mark and both need dscp' },
    { rule: "self.mode != 'redirect' || !has(self.dscp)", message: 'mode redirect sets no DSCP: remove dscp, or use mode both' },
  ],
  '.match.route': [{ rule: '!(has(self.route) && has(self.routeIndex))', message: 'name the route by route or by routeIndex, not both' }],
};

/** TypeBox (JSON Schema) → Kubernetes structural OpenAPI v3. `path` (`.match.route`) keys the CEL rules. */
export function toStructuralSchema(schema: TSchema, path = ''): OpenApi {
  const out: OpenApi = {};
  if (typeof schema.description === 'string') out.description = schema.description;
  switch (schema[Kind]) {
    case 'Object': {
      out.type = 'object';
      const properties = schema.properties as Record<string, TSchema>;
      out.properties = Object.fromEntries(Object.entries(properties).map(([key, s]) => [key, toStructuralSchema(s, `${path}.${key}`)]));
      if (Array.isArray(schema.required) && schema.required.length > 0) out.required = [...schema.required];
      break;
    }
    case 'Union': {
      const variants = schema.anyOf as TSchema[];
      if (variants.every((v) => v[Kind] === 'Literal')) {
        out.type = typeof variants[0]!.const === 'number' ? 'integer' : 'string';
        out.enum = variants.map((v) => v.const);
        break;
      }
      // Every variant's properties at the top (the structural rule), and oneOf to pick exactly one.
      out.type = 'object';
      const merged: Record<string, TSchema> = Object.assign({}, ...variants.map((v) => v.properties as object));
      out.properties = Object.fromEntries(Object.entries(merged).map(([key, s]) => [key, toStructuralSchema(s, `${path}.${key}`)]));
      out.oneOf = variants.map((v) => ({ required: [...(v.required as string[])] }));
      break;
    }
    case 'Array':
      out.type = 'array';
      out.items = toStructuralSchema(schema.items as TSchema, `${path}[]`);
      copy(schema, out, ['minItems', 'maxItems']);
      if (schema.uniqueItems) out['x-kubernetes-list-type'] = 'set';
      break;
    case 'String':
      out.type = 'string';
      copy(schema, out, ['minLength', 'maxLength', 'pattern']);
      break;
    case 'Integer':
    case 'Number':
      out.type = schema[Kind] === 'Integer' ? 'integer' : 'number';
      copy(schema, out, ['minimum', 'maximum']);
      break;
    case 'Boolean':
      out.type = 'boolean';
      break;
    default:
      throw new Error(`toStructuralSchema: no mapping for TypeBox kind ${String(schema[Kind])}`);
  }
  const rules = CEL_RULES[path];
  if (rules) out['x-kubernetes-validations'] = rules;
  return out;
}

function copy(from: TSchema, to: OpenApi, keys: readonly string[]): void {
  for (const key of keys) if (from[key] !== undefined) to[key] = from[key];
}

export function renderWanPolicyCrd(): OpenApi {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${WANPOLICY_PLURAL}.${WANPOLICY_GROUP}` },
    spec: {
      group: WANPOLICY_GROUP,
      names: { kind: WANPOLICY_KIND, listKind: `${WANPOLICY_KIND}List`, plural: WANPOLICY_PLURAL, singular: 'wanpolicy', shortNames: ['wp'], categories: ['wansteer'] },
      scope: 'Namespaced',
      versions: [
        {
          name: WANPOLICY_VERSION,
          served: true,
          storage: true,
          additionalPrinterColumns: [
            { name: 'Match-VS', type: 'string', jsonPath: '.spec.match.route.virtualService', description: 'VirtualService whose route the policy takes' },
            { name: 'Match-Route', type: 'string', jsonPath: '.spec.match.route.route', description: 'the http route by name (empty: any, or by index)' },
            { name: 'Match-DSCP', type: 'integer', jsonPath: '.spec.match.dscp', description: 'mark mode: the DSCP the upstream sockets set' },
            { name: 'Links', type: 'string', jsonPath: '.spec.action.links', description: 'links in order of preference' },
            { name: 'Mode', type: 'string', jsonPath: '.spec.action.mode' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              description: 'Which sessions a policy takes and which WAN link (or DSCP) they get.',
              type: 'object',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: toStructuralSchema(WanPolicySpec),
              },
              'x-kubernetes-validations': [
                {
                  // The policy name is used as a DNS-1123 label elsewhere (and by the REST API).
                  rule: "self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
                  message: 'the name must be a DNS-1123 label: lower-case letters, digits and "-", at most 63 characters',
                },
              ],
            },
          },
        },
      ],
    },
  };
}

export function renderWanPolicyCrdYaml(): string {
  const header = '# Generated by renderWanPolicyCrd() in src/policies/crd.ts from the WanPolicySpec schema: do not edit.\n';
  return header + stringify(renderWanPolicyCrd(), { lineWidth: 0, aliasDuplicateObjects: false });
}
