/**
 * What istiod would make of `wansteer render envoyfilter`'s objects, for one Envoy in a lab: a
 * static bootstrap whose listeners, routes and clusters are the lab's, with the rendered
 * EnvoyFilter patches applied the way Istio applies them. Nothing of the render is copied by
 * hand: the Lua filter, the agent clusters and the mark-class socket options are taken from the
 * objects, so the tests and bench/envoy.ts run exactly what a user would apply.
 *
 *   const docs = parseAllDocuments(renderedYaml).map((d) => d.toJS());
 *   const bootstrap = meshBootstrap(docs, {
 *     role: 'sidecar', workloadLabels: { 'wansteer.io/steer': 'true' }, adminPort: 15000,
 *     listeners: [{ name: 'inbound', context: 'SIDECAR_INBOUND', address: '10.10.1.1', port: 15006,
 *                   routes: [{ name: 'default', cluster: 'inbound|8080||' }] }],
 *     clusters: [{ name: 'inbound|8080||', address: '127.0.0.1', port: 8080 }],
 *   });
 *
 * Istio's rules modelled here: an EnvoyFilter applies when its workloadSelector's labels are
 * all on the workload (none: every workload); HTTP_FILTER patches go into listeners of their
 * context, INSERT_BEFORE the router, NETWORK_FILTER ones INSERT_BEFORE the HTTP connection
 * manager; CLUSTER patches apply to a sidecar with context
 * SIDECAR_OUTBOUND and to a gateway with GATEWAY; ADD appends a cluster, MERGE merges into the
 * clusters its match names (`outbound|PORT|SUBSET|HOST`) as protobuf merges: messages field by
 * field, repeated fields appended. Routes are named as Istio names them: the HTTP route's name,
 * and `.matchName` when the match block has one (routesFromVirtualService).
 */
import type { HttpMatchRequest, StringMatch, VirtualService } from '../routes/model.js';

export type PatchContext = 'SIDECAR_INBOUND' | 'SIDECAR_OUTBOUND' | 'GATEWAY';

export interface RouteSpec {
  /** The Envoy route's name, which the Lua filter reads back with streamInfo():routeName(). */
  readonly name: string;
  /** Header conditions (exact or prefix); none: every request. */
  readonly headers?: readonly { name: string; exact?: string; prefix?: string; present?: boolean }[];
  readonly pathPrefix?: string;
  readonly pathExact?: string;
  readonly cluster: string;
}

export interface ListenerSpec {
  readonly name: string;
  readonly context: PatchContext;
  readonly address: string;
  readonly port: number;
  readonly routes: readonly RouteSpec[];
  /** Files of the listener's certificate, key and the CA its clients' certificates must chain to. */
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca: string };
}

export interface ClusterSpec {
  /** Istio's name for a service's cluster: `outbound|PORT|SUBSET|HOST` (MERGE patches match it). */
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

export interface MeshSpec {
  readonly role: 'sidecar' | 'gateway';
  /** The pod labels of the workload this Envoy is the proxy of. */
  readonly workloadLabels: Readonly<Record<string, string>>;
  readonly adminPort: number;
  readonly listeners: readonly ListenerSpec[];
  readonly clusters: readonly ClusterSpec[];
}

type Json = Record<string, unknown>;
interface Patch {
  applyTo: string;
  match?: { context?: string; cluster?: { service?: string; subset?: string; portNumber?: number } };
  patch: { operation: string; value: Json };
}

const HCM = 'envoy.filters.network.http_connection_manager';
const ROUTER = {
  name: 'envoy.filters.http.router',
  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
};

/** The patches of every EnvoyFilter among `docs` that selects a workload with these labels. */
export function appliedPatches(docs: readonly unknown[], workloadLabels: Readonly<Record<string, string>>): Patch[] {
  const out: Patch[] = [];
  for (const doc of docs as { kind?: string; spec?: { workloadSelector?: { labels?: Record<string, string> }; configPatches?: Patch[] } }[]) {
    if (doc?.kind !== 'EnvoyFilter') continue;
    const wanted = doc.spec?.workloadSelector?.labels ?? {};
    if (!Object.entries(wanted).every(([k, v]) => workloadLabels[k] === v)) continue;
    out.push(...(doc.spec?.configPatches ?? []));
  }
  return out;
}

export function meshBootstrap(docs: readonly unknown[], spec: MeshSpec): Json {
  const patches = appliedPatches(docs, spec.workloadLabels);
  const clusterContext = spec.role === 'gateway' ? 'GATEWAY' : 'SIDECAR_OUTBOUND';
  const clusters: Json[] = spec.clusters.map(staticCluster);
  for (const p of patches.filter((p) => p.applyTo === 'CLUSTER' && p.match?.context === clusterContext)) {
    if (p.patch.operation === 'ADD') {
      if (!clusters.some((c) => c.name === p.patch.value.name)) clusters.push(structuredClone(p.patch.value));
    } else if (p.patch.operation === 'MERGE') {
      for (const c of clusters) if (clusterMatches(String(c.name), p.match?.cluster)) protoMerge(c, p.patch.value);
    } else {
      throw new Error(`meshBootstrap: CLUSTER ${p.patch.operation} is not modelled`);
    }
  }
  return {
    admin: { address: socketAddress('127.0.0.1', spec.adminPort) },
    static_resources: {
      listeners: spec.listeners.map((l) => listener(l, httpFilters(patches, l.context), networkFilters(patches, l.context))),
      clusters,
    },
  };
}

/** The HTTP filters of a listener of `context`: the patches' INSERT_BEFORE router, then the router. */
function httpFilters(patches: readonly Patch[], context: PatchContext): Json[] {
  const filters: Json[] = [];
  for (const p of patches.filter((p) => p.applyTo === 'HTTP_FILTER' && p.match?.context === context)) {
    const m = p.match as { listener?: { filterChain?: { filter?: { name?: string; subFilter?: { name?: string } } } } };
    const target = m.listener?.filterChain?.filter;
    if (p.patch.operation !== 'INSERT_BEFORE' || target?.name !== HCM || target.subFilter?.name !== ROUTER.name) {
      throw new Error(`meshBootstrap: HTTP_FILTER ${p.patch.operation} at ${JSON.stringify(target)} is not modelled`);
    }
    filters.push(structuredClone(p.patch.value));
  }
  return [...filters, ROUTER];
}

/** The network filters a listener of `context` gets before its HTTP connection manager (INSERT_BEFORE it). */
function networkFilters(patches: readonly Patch[], context: PatchContext): Json[] {
  const filters: Json[] = [];
  for (const p of patches.filter((p) => p.applyTo === 'NETWORK_FILTER' && p.match?.context === context)) {
    const m = p.match as { listener?: { filterChain?: { filter?: { name?: string } } } };
    const target = m.listener?.filterChain?.filter;
    if (p.patch.operation !== 'INSERT_BEFORE' || target?.name !== HCM) {
      throw new Error(`meshBootstrap: NETWORK_FILTER ${p.patch.operation} at ${JSON.stringify(target)} is not modelled`);
    }
    filters.push(structuredClone(p.patch.value));
  }
  return filters;
}

function listener(l: ListenerSpec, filters: Json[], networkFilters: Json[] = []): Json {
  const chain: Json = {
    filters: [
      ...networkFilters,
      {
        name: HCM,
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
          stat_prefix: l.name,
          codec_type: 'AUTO',
          route_config: { name: l.name, virtual_hosts: [{ name: l.name, domains: ['*'], routes: l.routes.map(route) }] },
          http_filters: filters,
        },
      },
    ],
  };
  if (l.tls) {
    chain.transport_socket = {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
        require_client_certificate: true,
        common_tls_context: {
          tls_certificates: [{ certificate_chain: { filename: l.tls.cert }, private_key: { filename: l.tls.key } }],
          validation_context: { trusted_ca: { filename: l.tls.ca } },
          alpn_protocols: ['h2', 'http/1.1'],
        },
      },
    };
  }
  return { name: l.name, address: socketAddress(l.address, l.port), filter_chains: [chain] };
}

function route(r: RouteSpec): Json {
  const match: Json = r.pathExact !== undefined ? { path: r.pathExact } : { prefix: r.pathPrefix ?? '/' };
  if (r.headers?.length) {
    match.headers = r.headers.map((h) =>
      h.present ? { name: h.name, present_match: true } : { name: h.name, string_match: h.exact !== undefined ? { exact: h.exact } : { prefix: h.prefix } },
    );
  }
  return { name: r.name, match, route: { cluster: r.cluster, timeout: '15s' } };
}

function staticCluster(c: ClusterSpec): Json {
  return {
    name: c.name,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: { cluster_name: c.name, endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(c.address, c.port) } }] }] },
  };
}

function socketAddress(address: string, port: number): Json {
  return { socket_address: { address, port_value: port } };
}

function clusterMatches(name: string, match: { service?: string; subset?: string; portNumber?: number } | undefined): boolean {
  if (!match) return true;
  const [direction, port, subset, host] = name.split('|');
  return (
    direction === 'outbound' &&
    (match.service === undefined || match.service === host) &&
    (match.subset === undefined || match.subset === subset) &&
    (match.portNumber === undefined || String(match.portNumber) === port)
  );
}

/** Protobuf merge of plain data: objects field by field, arrays appended, anything else replaced. */
export function protoMerge(target: Json, patch: Json): Json {
  for (const [key, value] of Object.entries(patch)) {
    const existing = target[key];
    if (Array.isArray(value)) target[key] = [...(Array.isArray(existing) ? existing : []), ...structuredClone(value)];
    else if (value !== null && typeof value === 'object' && existing !== null && typeof existing === 'object' && !Array.isArray(existing)) {
      protoMerge(existing as Json, value as Json);
    } else target[key] = structuredClone(value);
  }
  return target;
}

/**
 * A VirtualService's HTTP routes as Istio gives them to Envoy: one Envoy route per match block,
 * named `route.name[.match.name]`, to the cluster `clusterOf` names for the route's (first)
 * destination. Header and URI exact/prefix/presence conditions only: what the lab needs.
 */
export function routesFromVirtualService(vs: VirtualService, clusterOf: (host: string, subset: string | undefined) => string): RouteSpec[] {
  const out: RouteSpec[] = [];
  for (const http of vs.http) {
    const destination = http.route[0]?.destination;
    if (!destination) continue;
    const cluster = clusterOf(destination.host, destination.subset);
    const blocks: (HttpMatchRequest | undefined)[] = http.match.length > 0 ? [...http.match] : [undefined];
    for (const block of blocks) {
      const name = block?.name !== undefined ? `${http.name ?? ''}.${block.name}` : (http.name ?? '');
      const headers = Object.entries(block?.headers ?? {}).map(([header, m]) => ({ name: header, ...stringMatch(m, `header ${header}`) }));
      const uri = block?.uri ? stringMatch(block.uri, 'uri') : {};
      out.push({
        name,
        cluster,
        ...(headers.length > 0 ? { headers } : {}),
        ...(uri.exact !== undefined ? { pathExact: uri.exact } : uri.prefix !== undefined ? { pathPrefix: uri.prefix } : {}),
      });
    }
  }
  return out;
}

function stringMatch(m: StringMatch, what: string): { exact?: string; prefix?: string; present?: boolean } {
  if ('exact' in m) return { exact: m.exact };
  if ('prefix' in m) return { prefix: m.prefix };
  if ('present' in m) return { present: true };
  throw new Error(`routesFromVirtualService: ${what} regex matches are not modelled`);
}
