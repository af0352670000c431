/**
 * One HTTPMatchRequest (a "match block") compiled into a list of conditions, all of which must
 * hold. Cheap conditions come first so most blocks fail fast. Every condition carries a
 * description, so `explain` can say which one failed using the very objects that classify.
 */
import { resolveGatewayName } from './hosts.js';
import type { HttpMatchRequest, StringMatch } from './model.js';
import type { RequestView } from './request-view.js';
import { compileStringMatch } from './string-matcher.js';

export interface Condition {
  readonly describe: string;
  test(request: RequestView): boolean;
}

export function compileMatchBlock(block: HttpMatchRequest, namespace: string): Condition[] {
  const conditions: Condition[] = [];
  // Istio trims blocks per proxy: `gateways` in a block replaces the source checks (sourceMatchHTTP).
  if (block.gateways && block.gateways.length > 0) {
    const gateways = new Set(block.gateways.map((g) => resolveGatewayName(g, namespace)));
    conditions.push({ describe: `gateway in [${[...gateways].join(', ')}]`, test: (r) => gateways.has(r.gateway) });
  } else {
    if (block.sourceLabels) conditions.push(sourceLabelsCondition(block.sourceLabels));
    const ns = block.sourceNamespace;
    if (ns !== undefined) conditions.push({ describe: `source namespace ${ns}`, test: (r) => r.sourceNamespace === ns });
  }
  const port = block.port;
  if (port !== undefined) conditions.push({ describe: `port ${port}`, test: (r) => r.port === port });
  if (block.method) conditions.push(valueCondition('method', block.method, (r) => r.method));
  if (block.scheme) conditions.push(valueCondition('scheme', block.scheme, (r) => r.scheme));
  if (block.authority) conditions.push(valueCondition('authority', block.authority, (r) => r.authority));
  if (block.uri) conditions.push(uriCondition(block.uri, block.ignoreUriCase === true));
  for (const [name, match] of Object.entries(block.headers ?? {})) {
    conditions.push(valueCondition(`header ${name}`, match, (r) => r.header(name)));
  }
  for (const [name, match] of Object.entries(block.withoutHeaders ?? {})) {
    conditions.push(withoutHeaderCondition(name, match));
  }
  for (const [name, match] of Object.entries(block.queryParams ?? {})) {
    conditions.push(valueCondition(`query ${name}`, match, (r) => r.query(name)));
  }
  return conditions;
}

function valueCondition(what: string, match: StringMatch, read: (r: RequestView) => string | undefined): Condition {
  const m = compileStringMatch(match);
  return { describe: `${what} ${m.describe}`, test: (r) => m.matches(read(r)) };
}

/** Envoy reads a prefix against the whole `:path`, but exact and regex against the path without query. */
function uriCondition(match: StringMatch, ignoreCase: boolean): Condition {
  const m = compileStringMatch(match, { ignoreCase });
  const withQuery = 'prefix' in match;
  return { describe: `uri ${m.describe}`, test: withQuery ? (r) => m.matches(r.path) : (r) => m.matches(r.pathOnly) };
}

/**
 * Istio renders withoutHeaders as an inverted Envoy header matcher, and Envoy never inverts a
 * missing header: `withoutHeaders: {x: {exact: v}}` needs `x` present with another value. Only a
 * presence match (`{}`) inverted means "header absent" (istio/istio#50988).
 */
function withoutHeaderCondition(name: string, match: StringMatch): Condition {
  const m = compileStringMatch(match);
  if ('present' in match) {
    return { describe: `header ${name} absent`, test: (r) => r.header(name) === undefined };
  }
  return {
    describe: `header ${name} present and not ${m.describe}`,
    test: (r) => {
      const v = r.header(name);
      return v !== undefined && !m.matches(v);
    },
  };
}

function sourceLabelsCondition(labels: Readonly<Record<string, string>>): Condition {
  const entries = Object.entries(labels);
  return {
    describe: `source labels ${entries.map(([k, v]) => `${k}=${v}`).join(',')}`,
    test: (r) => {
      for (const [k, v] of entries) if (r.sourceLabels[k] !== v) return false;
      return true;
    },
  };
}
