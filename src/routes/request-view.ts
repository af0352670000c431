/**
 * A request in the shape the compiled matchers read: defaults filled in, the path split from its
 * query once, query parameters parsed only if some rule asks for them.
 */
import { DEFAULT_NAMESPACE, MESH_GATEWAY } from './hosts.js';
import type { RouteRequest } from './model.js';

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});

export class RequestView {
  readonly authority: string;
  readonly port: number | undefined;
  /** `:path` as sent, query included: Envoy's prefix match reads this. */
  readonly path: string;
  /** The path without its query string: Envoy's exact and regex path matches read this. */
  readonly pathOnly: string;
  readonly method: string | undefined;
  readonly scheme: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly sourceNamespace: string;
  readonly sourceLabels: Readonly<Record<string, string>>;
  readonly gateway: string;
  private queryParams: Map<string, string> | undefined;

  constructor(request: RouteRequest, defaultPort: number | undefined) {
    this.authority = request.host;
    this.port = request.port ?? defaultPort;
    this.path = request.path ?? '/';
    const q = this.path.indexOf('?');
    this.pathOnly = q === -1 ? this.path : this.path.slice(0, q);
    this.method = request.method;
    this.scheme = request.scheme;
    this.headers = request.headers ?? NO_HEADERS;
    this.sourceNamespace = request.sourceNamespace ?? DEFAULT_NAMESPACE;
    this.sourceLabels = request.sourceLabels ?? NO_LABELS;
    this.gateway = request.gateway ?? MESH_GATEWAY;
  }

  header(name: string): string | undefined {
    return this.headers[name];
  }

  /** First value of a query parameter, percent-decoded (`?key` alone has the value ""). */
  query(name: string): string | undefined {
    this.queryParams ??= parseQuery(this.path);
    return this.queryParams.get(name);
  }
}

function parseQuery(path: string): Map<string, string> {
  const params = new Map<string, string>();
  const q = path.indexOf('?');
  if (q === -1) return params;
  const end = path.indexOf('#', q);
  for (const pair of path.slice(q + 1, end === -1 ? undefined : end).split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = decode(eq === -1 ? pair : pair.slice(0, eq));
    if (!params.has(key)) params.set(key, eq === -1 ? '' : decode(pair.slice(eq + 1)));
  }
  return params;
}

/** Percent-decoding as Envoy does it: `+` stays `+`, a malformed escape stays as written. */
function decode(text: string): string {
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
