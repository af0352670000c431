/**
 * Schema-compiled validation, and answers shaped by their schemas, for the API, on the
 * @sinclair/typebox 0.34 schemas the contracts are written in. Both intakes (HTTP and gRPC) check
 * a report with the same compiled function, so they accept and refuse the same input with the
 * same field and message.
 *
 * Why not @fastify/type-provider-typebox: its version 6 is built on `typebox` 1.x, whose types do
 * not infer 0.34 schemas (every body would type as an unusable conditional). The provider is three
 * lines; the compilers are this file.
 */
import type { FastifySchemaCompiler, FastifySerializerCompiler, FastifyTypeProvider } from 'fastify';
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import { validationError, type ApiError } from './errors.js';

export interface TypeBoxProvider extends FastifyTypeProvider {
  validator: this['schema'] extends TSchema ? Static<this['schema']> : unknown;
  serializer: this['schema'] extends TSchema ? Static<this['schema']> : unknown;
}

/** A compiled check: undefined when `value` is valid, else the error naming the field. */
export type Checker = (value: unknown) => ApiError | undefined;

export function compileChecker(schema: TSchema, where = 'body'): Checker {
  const check = TypeCompiler.Compile(schema);
  return (value) => {
    if (check.Check(value)) return undefined;
    const first = check.Errors(value).First();
    const best = first ? mostSpecific(first) : undefined;
    return validationError(where, best?.path ?? '', best?.message ?? 'invalid');
  };
}

/**
 * For a failed union (e.g. a policy's `match`), the error inside the variant the value came
 * closest to: fewest errors, then the deepest path. `{dscp: 64}` then reads as "dscp must be at
 * most 63", not as "must be one of the variants".
 */
function mostSpecific(error: ValueError): ValueError {
  if (error.type !== ValueErrorType.Union || error.errors.length === 0) return error;
  let best: { error: ValueError; count: number } | undefined;
  for (const variant of error.errors) {
    const all = [...variant];
    const first = all[0];
    if (!first) continue;
    const candidate = mostSpecific(first);
    if (!best || all.length < best.count || (all.length === best.count && candidate.path.length > best.error.path.length)) {
      best = { error: candidate, count: all.length };
    }
  }
  return best?.error ?? error;
}

/**
 * fastify's validator compiler: bodies are checked as sent (JSON has types; no coercion, nothing
 * removed or defaulted), params and query strings are converted from strings first.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const where = httpPart ?? 'body';
  const checker = compileChecker(schema, where);
  if (where === 'body') {
    return (value: unknown) => {
      const error = checker(value);
      return error ? { error } : true;
    };
  }
  return (value: unknown) => {
    const converted = convertStrings(schema, value);
    const error = checker(converted);
    return error ? { error } : { value: converted };
  };
};

/** A whole number as a query string writes one: digits only, no exponent, sign, fraction or hex. */
const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;

/**
 * Strings of a query string, path or headers as the schema's types. Value.Convert alone reads
 * `1e9` and `1.5` as the integer 1 and `0x10` as 16; here a number must be written as one
 * (otherwise it stays a string and the check names the field), and the rest is Value.Convert's.
 */
function convertStrings(schema: TSchema, value: unknown): unknown {
  if (typeof value !== 'object' || value === null || schema.type !== 'object' || !schema.properties) return Value.Convert(schema, value);
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [key, property] of Object.entries(schema.properties as Record<string, TSchema>)) {
    const raw = out[key];
    if (typeof raw !== 'string') continue;
    if (property.type === 'integer' || property.type === 'number') out[key] = DECIMAL.test(raw) ? Number(raw) : raw;
    else out[key] = Value.Convert(property, raw);
  }
  return out;
}

/**
 * fastify's serializer compiler, in place of fast-json-stringify (fastify's default): the answer
 * with whatever its response schema does not declare removed (TypeBox's Value.Clean on a copy:
 * excess properties go, a union is cleaned as the first variant the value matches — the rule
 * fast-json-stringify applies), then JSON.stringify. fast-json-stringify brings ajv with it and
 * ajv instances for answer schemas: 2.4 MB of live heap, for answers that are small and rare
 * (policies, links, flows, health, errors). The one hot answer, the session intake's, is written
 * by outcome-json.ts. Keys come out in the handler's order where fast-json-stringify used the
 * schema's (the handlers build them in the schema's order: the bytes are the same today).
 */
export const serializerCompiler: FastifySerializerCompiler<TSchema> = ({ schema }) => {
  return (data: unknown) => JSON.stringify(Value.Clean(schema, Value.Clone(data)));
};
