/**
 * Validation of `spec.http`: routes, match blocks and string matches, with Istio's rules
 * (pilot's validation) where they decide what a match means.
 */
import { WansteerError } from '../base/errors.js';
import { InvalidValueError, MissingFieldError } from './errors.js';
import type { Destination, HttpMatchRequest, HttpRoute, HttpRouteDestination, RouteAction, StringMatch } from './model.js';
import { compileRe2FullMatch } from './re2/compile.js';
import {
  fields, onlyKnownFields, optionalBoolean, optionalInteger, optionalList, optionalString, optionalStringMap,
  requiredString, stringList, isFields, type Fields,
} from './validate-fields.js';

const ROUTE_FIELDS = [
  'name', 'match', 'route', 'redirect', 'directResponse', 'delegate', 'rewrite', 'timeout', 'retries', 'fault',
  'mirror', 'mirrors', 'mirrorPercent', 'mirrorPercentage', 'mirror_percent', 'corsPolicy', 'headers',
] as const;
const MATCH_FIELDS = [
  'name', 'uri', 'scheme', 'method', 'authority', 'headers', 'withoutHeaders', 'port', 'sourceLabels', 'gateways',
  'queryParams', 'ignoreUriCase', 'sourceNamespace', 'statPrefix',
] as const;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const HEADER_NAME = /^[-_A-Za-z0-9]+$/;

export function parseHttpRoutes(spec: Fields, path: string): HttpRoute[] {
  return (optionalList(spec, 'http', path) ?? []).map((r, i) => parseRoute(r, `${path}.http[${i}]`));
}

function parseRoute(value: unknown, path: string): HttpRoute {
  const obj = fields(value, path);
  onlyKnownFields(obj, path, ROUTE_FIELDS);
  const actions: RouteAction[] = [];
  const destinations = optionalList(obj, 'route', path) ?? [];
  if (destinations.length > 0) actions.push('route');
  if (obj.redirect != null) actions.push('redirect');
  if (obj.directResponse != null) actions.push('directResponse');
  if (obj.delegate != null) actions.push('delegate');
  if (actions.length === 0) throw new MissingFieldError('one of route, redirect, directResponse or delegate').located(path);
  if (actions.length > 1) throw new InvalidValueError(`cannot have both ${actions.join(' and ')}`).located(path);
  const route = destinations.map((d, i) => parseRouteDestination(d, `${path}.route[${i}]`));
  if (route.length > 1 && route.every((d) => d.weight === 0)) {
    throw new InvalidValueError('weights of several destinations cannot all be 0').located(`${path}.route`);
  }
  return {
    name: optionalString(obj, 'name', path),
    match: (optionalList(obj, 'match', path) ?? []).map((m, i) => parseMatch(m, `${path}.match[${i}]`)),
    action: actions[0]!,
    route,
  };
}

function parseRouteDestination(value: unknown, path: string): HttpRouteDestination {
  const obj = fields(value, path);
  onlyKnownFields(obj, path, ['destination', 'weight', 'headers']);
  if (obj.destination == null) throw new MissingFieldError(`${path}.destination`);
  const d = fields(obj.destination, `${path}.destination`);
  onlyKnownFields(d, `${path}.destination`, ['host', 'subset', 'port']);
  const destination: { -readonly [K in keyof Destination]: Destination[K] } = { host: requiredString(d, 'host', `${path}.destination`) };
  const subset = optionalString(d, 'subset', `${path}.destination`);
  if (subset !== undefined) destination.subset = subset;
  if (d.port != null) {
    const port = fields(d.port, `${path}.destination.port`);
    onlyKnownFields(port, `${path}.destination.port`, ['number']);
    const number = optionalInteger(port, 'number', `${path}.destination.port`, 1, 65535);
    if (number !== undefined) destination.port = number;
  }
  return { destination, weight: optionalInteger(obj, 'weight', path, 0, 2 ** 31 - 1) ?? 0 };
}

function parseMatch(value: unknown, path: string): HttpMatchRequest {
  const obj = fields(value ?? {}, path);
  onlyKnownFields(obj, path, MATCH_FIELDS);
  const match: { -readonly [K in keyof HttpMatchRequest]: HttpMatchRequest[K] } = {};
  const name = optionalString(obj, 'name', path);
  if (name !== undefined) match.name = name;
  // Envoy needs a non-empty prefix except on the path, where "" means "any path".
  if (obj.uri != null) match.uri = parseStringMatch(obj.uri, `${path}.uri`, { emptyPrefix: true });
  for (const key of ['scheme', 'method', 'authority'] as const) {
    if (obj[key] != null) match[key] = parseStringMatch(obj[key], `${path}.${key}`, {});
  }
  const headers = parseMatchMap(obj, 'headers', path, { headerNames: true });
  if (headers) match.headers = headers;
  // `regex: "*"` is not RE2; Istio reads it as "header present" in withoutHeaders.
  const without = parseMatchMap(obj, 'withoutHeaders', path, { headerNames: true, starMeansPresent: true });
  if (without) match.withoutHeaders = without;
  const query = parseMatchMap(obj, 'queryParams', path, { noPrefix: true });
  if (query) match.queryParams = query;
  const port = optionalInteger(obj, 'port', path, 1, 65535);
  if (port !== undefined) match.port = port;
  const labels = optionalStringMap(obj, 'sourceLabels', path);
  if (labels) match.sourceLabels = labels;
  const ns = optionalString(obj, 'sourceNamespace', path);
  if (ns !== undefined) {
    if (!DNS_LABEL.test(ns)) throw new InvalidValueError(`${JSON.stringify(ns)} is not a namespace name`).located(`${path}.sourceNamespace`);
    match.sourceNamespace = ns;
  }
  const gateways = stringList(obj, 'gateways', path);
  if (gateways.length > 0) match.gateways = gateways;
  const ignoreUriCase = optionalBoolean(obj, 'ignoreUriCase', path);
  if (ignoreUriCase !== undefined) match.ignoreUriCase = ignoreUriCase;
  return match;
}

interface MatchMapRules {
  readonly headerNames?: boolean;
  readonly starMeansPresent?: boolean;
  readonly noPrefix?: boolean;
}

function parseMatchMap(obj: Fields, key: string, path: string, rules: MatchMapRules): Record<string, StringMatch> | undefined {
  if (obj[key] == null) return undefined;
  const map = fields(obj[key], `${path}.${key}`);
  const out: Record<string, StringMatch> = {};
  for (const [rawName, value] of Object.entries(map)) {
    const where = `${path}.${key}.${rawName}`;
    let name = rawName;
    if (rules.headerNames) {
      if (rawName.startsWith('@')) throw new InvalidValueError('JWT claim matching (@request.auth.claims) is not supported').located(where);
      if (!HEADER_NAME.test(rawName)) throw new InvalidValueError(`${JSON.stringify(rawName)} is not a header name`).located(where);
      // Envoy compares header names case-insensitively; requests carry lowercase names.
      name = rawName.toLowerCase();
    }
    if (value === null) throw new InvalidValueError('cannot be null (use {} to match presence)').located(where);
    if (rules.starMeansPresent && isFields(value) && value.regex === '*') {
      out[name] = { present: true };
      continue;
    }
    const m = parseStringMatch(value, where, { emptyPrefix: false });
    if (rules.noPrefix && 'prefix' in m) throw new InvalidValueError('prefix matching is not supported for query parameters').located(where);
    out[name] = m;
  }
  return out;
}

function parseStringMatch(value: unknown, path: string, opts: { emptyPrefix?: boolean }): StringMatch {
  const obj = fields(value, path);
  onlyKnownFields(obj, path, ['exact', 'prefix', 'regex']);
  const set = (['exact', 'prefix', 'regex'] as const).filter((k) => obj[k] !== undefined && obj[k] !== null);
  if (set.length === 0) return { present: true };
  if (set.length > 1) throw new InvalidValueError(`only one of exact, prefix or regex may be set, got ${set.join(', ')}`).located(path);
  const kind = set[0]!;
  const text = optionalString(obj, kind, path)!;
  if (kind === 'exact') return { exact: text };
  if (kind === 'prefix') {
    if (text === '' && !opts.emptyPrefix) throw new InvalidValueError('prefix must not be empty').located(`${path}.prefix`);
    return { prefix: text };
  }
  if (text === '') throw new InvalidValueError('regex must not be empty').located(`${path}.regex`);
  try {
    compileRe2FullMatch(text);
  } catch (err) {
    if (err instanceof WansteerError) throw err.located(`${path}.regex`);
    throw err;
  }
  return { regex: text };
}
