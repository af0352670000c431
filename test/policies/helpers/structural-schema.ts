/**
 * Validates a value against a Kubernetes structural OpenAPI v3 schema the way the API server
 * does with fieldValidation=Strict (unknown fields are errors, not silently pruned). It covers
 * the keywords the WanPolicy CRD uses; CEL rules (x-kubernetes-validations) are not evaluated:
 * there is no CEL engine here, and validate.ts's tests cover those checks.
 */
type Schema = Record<string, unknown>;

export function structuralErrors(schema: Schema, value: unknown, path = ''): string[] {
  const at = path || '<root>';
  const type = schema.type as string | undefined;
  if (type && !hasType(type, value)) return [`${at}: expected ${type}`];
  const errors: string[] = [];
  if (schema.enum && !(schema.enum as unknown[]).includes(value)) errors.push(`${at}: not in enum`);
  if (typeof value === 'string') {
    if (typeof schema.minLength === 'number' && [...value].length < schema.minLength) errors.push(`${at}: too short`);
    if (typeof schema.maxLength === 'number' && [...value].length > schema.maxLength) errors.push(`${at}: too long`);
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(value)) errors.push(`${at}: pattern`);
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) errors.push(`${at}: below minimum`);
    if (typeof schema.maximum === 'number' && value > schema.maximum) errors.push(`${at}: above maximum`);
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) errors.push(`${at}: too few items`);
    if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) errors.push(`${at}: too many items`);
    if (schema['x-kubernetes-list-type'] === 'set' && new Set(value.map((v) => JSON.stringify(v))).size !== value.length) errors.push(`${at}: duplicate in set`);
    value.forEach((item, i) => errors.push(...structuralErrors(schema.items as Schema, item, `${path}[${i}]`)));
  }
  if (isObject(value) && (type === 'object' || schema.required)) {
    const properties = (schema.properties ?? {}) as Record<string, Schema>;
    const open = schema['x-kubernetes-preserve-unknown-fields'] === true || schema.properties === undefined;
    for (const [key, v] of Object.entries(value)) {
      if (properties[key]) errors.push(...structuralErrors(properties[key], v, `${path}.${key}`));
      else if (!open) errors.push(`${path}.${key}: unknown field`);
    }
    for (const key of (schema.required ?? []) as string[]) if (!(key in value)) errors.push(`${path}.${key}: required`);
  }
  if (Array.isArray(schema.oneOf)) {
    const passing = (schema.oneOf as Schema[]).filter((branch) => structuralErrors(branch, value, path).length === 0).length;
    if (passing !== 1) errors.push(`${at}: must match exactly one of oneOf (matched ${passing})`);
  }
  return errors;
}

function hasType(type: string, value: unknown): boolean {
  switch (type) {
    case 'object': return isObject(value);
    case 'array': return Array.isArray(value);
    case 'string': return typeof value === 'string';
    case 'integer': return Number.isInteger(value);
    case 'number': return typeof value === 'number';
    case 'boolean': return typeof value === 'boolean';
    default: return true;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The spec schema of the CRD in deploy/crds/wanpolicy.yaml. */
export function crdSpecSchema(crd: unknown): Schema {
  const version = (crd as { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } }).spec.versions[0]!;
  return (version.schema.openAPIV3Schema.properties as Record<string, Schema>).spec!;
}
