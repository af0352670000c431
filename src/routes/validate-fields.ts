/**
 * Small readers for untyped objects (parsed YAML or API JSON) that throw catalogue errors naming
 * the field path, e.g. `spec.http[0].match[1].headers.end-user.regex`.
 */
import { InvalidValueError, MissingFieldError, UnknownFieldError, WrongTypeError } from './errors.js';

export type Fields = Readonly<Record<string, unknown>>;

export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'a map' : `${typeof value} ${JSON.stringify(value)}`.slice(0, 60);
}

export function isFields(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function fields(value: unknown, path: string): Fields {
  if (!isFields(value)) throw new WrongTypeError('a map', describeType(value)).located(path);
  return value;
}

/** Rejects fields the schema does not know: a typo (`header:` for `headers:`) must not silently match everything. */
export function onlyKnownFields(obj: Fields, path: string, known: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) throw new UnknownFieldError(JSON.stringify(key)).located(path);
  }
}

export function optionalString(obj: Fields, key: string, path: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new WrongTypeError('a string', describeType(v)).located(`${path}.${key}`);
  return v;
}

export function requiredString(obj: Fields, key: string, path: string): string {
  const v = optionalString(obj, key, path);
  if (v === undefined || v === '') throw new MissingFieldError(`${path}.${key}`);
  return v;
}

export function optionalBoolean(obj: Fields, key: string, path: string): boolean | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new WrongTypeError('true or false', describeType(v)).located(`${path}.${key}`);
  return v;
}

export function optionalInteger(obj: Fields, key: string, path: string, min: number, max: number): number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new WrongTypeError('an integer', describeType(v)).located(`${path}.${key}`);
  }
  if (v < min || v > max) throw new InvalidValueError(`must be between ${min} and ${max}, got ${v}`).located(`${path}.${key}`);
  return v;
}

export function optionalList(obj: Fields, key: string, path: string): readonly unknown[] | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw new WrongTypeError('a list', describeType(v)).located(`${path}.${key}`);
  return v;
}

export function stringList(obj: Fields, key: string, path: string): string[] {
  return (optionalList(obj, key, path) ?? []).map((v, i) => {
    if (typeof v !== 'string' || v === '') {
      throw new WrongTypeError('a non-empty string', describeType(v)).located(`${path}.${key}[${i}]`);
    }
    return v;
  });
}

export function optionalStringMap(obj: Fields, key: string, path: string): Record<string, string> | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  const map = fields(v, `${path}.${key}`);
  for (const [k, value] of Object.entries(map)) {
    if (typeof value !== 'string') throw new WrongTypeError('a string', describeType(value)).located(`${path}.${key}.${k}`);
  }
  return map as Record<string, string>;
}
