/**
 * Turns TypeBox validation errors into problems a person can act on: the field path in the
 * notation people write (`links[1].nextHop4`), what is wrong, and the fix. TypeBox reports a
 * failed union as one opaque "Expected union value"; here the union is resolved to the variant
 * the value meant (by its discriminating literal, else the closest one) and that variant's own
 * error is reported. Shared by the config loader and the policy validator.
 */
import { Kind, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';

export interface SchemaProblem {
  /** `links[1].nextHop4`; the root is ''. */
  readonly field: string;
  readonly problem: string;
  readonly fix: string;
}

/** A better fix for a field than the schema alone can say; `pattern` is the path with `[]` for indices. */
export type FixHints = (pattern: string) => string | undefined;

/** Every problem with `value` against `schema`, at most one per field, in document order. */
export function schemaProblems(schema: TSchema, value: unknown, hints: FixHints = () => undefined): SchemaProblem[] {
  const seen = new Set<string>();
  const out: SchemaProblem[] = [];
  for (const error of Value.Errors(schema, value)) {
    const resolved = resolveUnion(error, hints);
    const problem = 'problem' in resolved ? resolved : describe(resolved, hints);
    if (seen.has(problem.field)) continue;
    seen.add(problem.field);
    out.push(problem);
  }
  return out;
}

/**
 * Whole-number fields given a fraction: `Value.Convert` would truncate `port: 862.5` to 862
 * without a word, so the loader asks for these first. Numeric strings count (YAML may quote).
 */
export function fractionalIntegers(schema: TSchema, value: unknown, hints: FixHints = () => undefined, field = ''): SchemaProblem[] {
  const kind = schema[Kind];
  if (kind === 'Integer') {
    const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isFinite(n) || Number.isInteger(n)) return [];
    return [{ field, problem: `${JSON.stringify(value)} is not a whole number`, fix: hints(patternOf(field)) ?? 'give a whole number' }];
  }
  if (kind === 'Object' && typeof value === 'object' && value !== null && !Array.isArray(value)) {
    return Object.entries(schema.properties as Record<string, TSchema>).flatMap(([key, s]) =>
      key in value ? fractionalIntegers(s, (value as Record<string, unknown>)[key], hints, field ? `${field}.${key}` : key) : [],
    );
  }
  if (kind === 'Array' && Array.isArray(value)) return value.flatMap((v, i) => fractionalIntegers(schema.items as TSchema, v, hints, `${field}[${i}]`));
  if (kind === 'Union') {
    const seen = new Set<string>();
    return (schema.anyOf as TSchema[]).flatMap((v) => fractionalIntegers(v, value, hints, field)).filter((p) => !seen.has(p.field) && seen.add(p.field));
  }
  return [];
}

/** `/links/1/nextHop4` → `links[1].nextHop4`. */
export function fieldOf(pointer: string): string {
  let out = '';
  for (const part of pointer.split('/').slice(1)) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^[0-9]+$/.test(key) ? `[${key}]` : out === '' ? key : `.${key}`;
  }
  return out;
}

const patternOf = (field: string): string => field.replace(/\[[0-9]+\]/g, '[]');

/**
 * The error inside a failed union that the value was aiming at; the union error itself when no
 * variant stands out; a problem at the discriminator when it names no variant.
 */
function resolveUnion(error: ValueError, hints: FixHints): ValueError | SchemaProblem {
  if (error.type !== ValueErrorType.Union) return error;
  const variants = (error.schema.anyOf ?? []) as TSchema[];
  const branches = error.errors.map((it) => [...it]);
  if (variants.every((v) => v[Kind] === 'Literal')) return error;
  const chosen = discriminatedVariant(variants, error.value);
  if (chosen !== undefined) {
    if (chosen === -1) return unknownVariant(error, variants, hints);
    const inner = branches[chosen]?.[0];
    return inner ? resolveUnion(inner, hints) : error;
  }
  // No literal tells the variants apart (e.g. match: route | dscp): take the one that fails least,
  // unless two tie, which means the value is ambiguous or empty: report the union as a whole.
  const sizes = branches.map((b) => b.length);
  const least = Math.min(...sizes);
  if (sizes.filter((s) => s === least).length > 1) return error;
  const inner = branches[sizes.indexOf(least)]?.[0];
  return inner ? resolveUnion(inner, hints) : error;
}

function unknownVariant(error: ValueError, variants: readonly TSchema[], hints: FixHints): SchemaProblem {
  const key = discriminatorOf(variants)!;
  const parent = fieldOf(error.path);
  const field = parent ? `${parent}.${key}` : key;
  const allowed = variants.map((v) => String((v.properties as Record<string, TSchema>)[key]!.const)).join(', ');
  const given = (error.value as Record<string, unknown>)[key];
  const problem = given === undefined ? 'is missing' : `${show(given)} is not one of ${allowed}`;
  return { field, problem, fix: hints(patternOf(field)) ?? `use one of ${allowed}` };
}

/** The object property all variants hold as a literal (`store`, `source`), if any. */
function discriminatorOf(variants: readonly TSchema[]): string | undefined {
  const first = variants[0]?.properties as Record<string, TSchema> | undefined;
  if (!first) return undefined;
  return Object.keys(first).find((key) =>
    variants.every((v) => (v.properties as Record<string, TSchema> | undefined)?.[key]?.[Kind] === 'Literal'),
  );
}

/** Index of the variant the value names by its discriminator; -1 when it names none; undefined when there is no discriminator. */
function discriminatedVariant(variants: readonly TSchema[], value: unknown): number | undefined {
  const key = discriminatorOf(variants);
  if (key === undefined || typeof value !== 'object' || value === null) return undefined;
  const given = (value as Record<string, unknown>)[key];
  return variants.findIndex((v) => (v.properties as Record<string, TSchema>)[key]!.const === given);
}

function describe(error: ValueError, hints: FixHints): SchemaProblem {
  const field = fieldOf(error.path);
  const hint = hints(patternOf(field));
  const s = error.schema;
  const got = show(error.value);
  const range = rangeText(s);
  const [problem, fix] = ((): [string, string] => {
    switch (error.type) {
      case ValueErrorType.ObjectRequiredProperty:
        return ['is missing', hint ?? 'add it'];
      case ValueErrorType.ObjectAdditionalProperties:
        return ['is not a known field', unknownFieldFix(field, error)];
      case ValueErrorType.Union:
        return unionText(s, error.value, hint);
      case ValueErrorType.Literal:
        return [`must be ${show(s.const)}, got ${got}`, hint ?? `write ${show(s.const)}`];
      case ValueErrorType.Integer:
        return [`must be a whole number, got ${got}`, hint ?? range ?? 'give a whole number'];
      case ValueErrorType.Number:
        return [`must be a number, got ${got}`, hint ?? range ?? 'give a number'];
      case ValueErrorType.String:
        return [`must be a string, got ${got}`, hint ?? 'give a string (quote it in YAML if it looks like a number)'];
      case ValueErrorType.Boolean:
        return [`must be true or false, got ${got}`, 'write true or false'];
      case ValueErrorType.Object:
        return [`must be a mapping, got ${got}`, hint ?? 'give a mapping of fields (key: value)'];
      case ValueErrorType.Array:
        return [`must be a list, got ${got}`, hint ?? 'give a list (- item, or [a, b])'];
      case ValueErrorType.IntegerMinimum:
      case ValueErrorType.NumberMinimum:
        return [`${got} is below the minimum ${s.minimum}`, hint ?? range!];
      case ValueErrorType.IntegerMaximum:
      case ValueErrorType.NumberMaximum:
        return [`${got} is above the maximum ${s.maximum}`, hint ?? range!];
      case ValueErrorType.StringMinLength:
        return [s.minLength === 1 ? 'is empty' : `is shorter than ${s.minLength} characters`, hint ?? `give at least ${s.minLength} characters`];
      case ValueErrorType.StringMaxLength:
        return [`is ${String(error.value).length} characters long, over the limit of ${s.maxLength}`, hint ?? `shorten it to at most ${s.maxLength} characters`];
      case ValueErrorType.StringPattern:
        return [`${got} is not of the expected form`, hint ?? `write it to match the pattern ${s.pattern}`];
      case ValueErrorType.ArrayMinItems:
        return [s.minItems === 1 ? 'is empty' : `has fewer than ${s.minItems} entries`, hint ?? `give at least ${s.minItems}`];
      case ValueErrorType.ArrayMaxItems:
        return [`has more than ${s.maxItems} entries`, hint ?? `give at most ${s.maxItems}`];
      case ValueErrorType.ArrayUniqueItems:
        return ['has the same entry twice', hint ?? 'list each entry once'];
      default:
        return [error.message, hint ?? 'see the configuration reference'];
    }
  })();
  return { field: field || '(top level)', problem, fix };
}

function rangeText(s: TSchema): string | undefined {
  if (typeof s.minimum === 'number' && typeof s.maximum === 'number') return `use a value from ${s.minimum} to ${s.maximum}`;
  if (typeof s.minimum === 'number') return `use a value of at least ${s.minimum}`;
  if (typeof s.maximum === 'number') return `use a value of at most ${s.maximum}`;
  return undefined;
}

function unionText(s: TSchema, value: unknown, hint: string | undefined): [string, string] {
  const variants = (s.anyOf ?? []) as TSchema[];
  if (variants.every((v) => v[Kind] === 'Literal')) {
    const allowed = variants.map((v) => String(v.const)).join(', ');
    return [`${show(value)} is not one of ${allowed}`, hint ?? `use one of ${allowed}`];
  }
  const keys = variants.map((v) => Object.keys((v.properties ?? {}) as object).join('+')).join(', ');
  return ['does not have the form of any allowed variant', hint ?? `give exactly one of: ${keys}`];
}

function unknownFieldFix(field: string, error: ValueError): string {
  const key = field.slice(Math.max(field.lastIndexOf('.'), field.lastIndexOf(']')) + 1);
  const known = Object.keys((error.schema.properties ?? {}) as object);
  const near = known.find((k) => k.toLowerCase() === key.toLowerCase()) ?? known.find((k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
  if (near) return `did you mean ${near}?`;
  return known.length > 0 ? `remove it; the fields here are ${known.join(', ')}` : 'remove it';
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}
