/**
 * The Kubernetes objects `wansteer render envoyfilter` writes, as plain JS (YAML comes later):
 *
 *  - the session reporter: an EnvoyFilter inserting the Lua filter (or the dynamic module,
 *    native-reporter.ts) before the router at one
 *    placement (SIDECAR_INBOUND, SIDECAR_OUTBOUND or GATEWAY);
 *  - the agent clusters the filter's httpCall goes to (one per address family), and (in
 *    cluster) the dual-stack, node-local Service behind them;
 *  - mark mode: for each class, the DSCP as a socket option on its upstream cluster (IP_TOS on
 *    IPv4 sockets, IPV6_TCLASS on IPv6 ones).
 *
 * Every EnvoyFilter carries the same scope: a namespace and, unless told otherwise, a workload
 * selector, so only the edge workloads that opted in report sessions (in Istio's root namespace,
 * istio-system, a selector picks labelled workloads of every namespace). docs/envoy.md explains
 * each choice.
 */
import { envoyFilter, PART_OF, sessionReportFilter, type KubeObject, type Scope } from './envoy-filter-base.js';
import type { ClassField, FilterConfig, Placement } from './lua-source.js';
import type { MarkClass } from './mark-classes.js';
import { BATCH_INTAKE_PATH, nativeSessionReporter } from './native-reporter.js';

export type { KubeObject, Scope } from './envoy-filter-base.js';

export const LUA_FILTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua';
export const AGENT_CLUSTER = 'wansteer-agent';
/** The same agent reached over IPv6: an IPv6 session is reported from the pod's IPv6 address. */
export const AGENT_CLUSTER_V6 = 'wansteer-agent-v6';
export const INTAKE_PATH = '/v1/sessions';
export const DEFAULT_AGENT_PORT = 9090;
export const DEFAULT_AGENT_NAMESPACE = 'wansteer-system';
export const DEFAULT_AGENT_HOST = `wansteer-agent.${DEFAULT_AGENT_NAMESPACE}.svc.cluster.local`;
/** The label the agent DaemonSet's pods carry; the Service selects them by it. */
export const AGENT_POD_LABELS = { 'app.kubernetes.io/name': 'wansteer-agent' } as const;

/**
 * Istio adds CLUSTER `ADD` patches to a sidecar only with context SIDECAR_OUTBOUND (all of a
 * sidecar's added clusters live there, whichever listener uses them) and to a gateway only with
 * GATEWAY; the same two contexts reach the upstream clusters mark mode patches.
 */
const CLUSTER_CONTEXTS = ['SIDECAR_OUTBOUND', 'GATEWAY'] as const;

/** The label a workload carries to report sessions, unless --selector says another. */
export const DEFAULT_SELECTOR: Readonly<Record<string, string>> = { 'wansteer.io/steer': 'true' };

/** Linux socket option numbers: IPPROTO_IP / IP_TOS, IP_BIND_ADDRESS_NO_PORT; IPPROTO_IPV6 / IPV6_TCLASS. */
const SOL_IP = 0;
const IP_TOS = 1;
const IP_BIND_ADDRESS_NO_PORT = 24;
const SOL_IPV6 = 41;
const IPV6_TCLASS = 67;

export function sessionReporter(placement: Placement, scope: Scope, luaSource: string): KubeObject {
  return sessionReportFilter(placement, scope, {
    name: 'wansteer.session_report',
    typed_config: { '@type': LUA_FILTER_TYPE, default_source_code: { inline_string: luaSource } },
  });
}

/**
 * Where the agent is: a DNS name (the node-local Service, or the user's), reached over both
 * families, or IP literals, at most one per family.
 */
export type AgentHosts = { readonly name: string } | { readonly v4?: string; readonly v6?: string };

/** The Envoy clusters for the agent, and which one the filter reports each family's sessions to. */
export interface AgentClusters {
  readonly clusters: readonly Record<string, unknown>[];
  readonly v4: string;
  readonly v6: string;
}

/**
 * A report must come from the session's own address (the agent's spoof check), so an IPv6
 * session is reported over IPv6 and an IPv4 one over IPv4: a DNS name gets one cluster per
 * family (V4_ONLY, V6_ONLY); literals one STATIC cluster each. With a single literal, both
 * families report through it.
 */
export function agentClusters(hosts: AgentHosts, port: number): AgentClusters {
  if ('name' in hosts) {
    return {
      clusters: [dnsCluster(AGENT_CLUSTER, hosts.name, port, 'V4_ONLY'), dnsCluster(AGENT_CLUSTER_V6, hosts.name, port, 'V6_ONLY')],
      v4: AGENT_CLUSTER,
      v6: AGENT_CLUSTER_V6,
    };
  }
  if (hosts.v4 !== undefined && hosts.v6 !== undefined) {
    return { clusters: [staticCluster(AGENT_CLUSTER, hosts.v4, port), staticCluster(AGENT_CLUSTER_V6, hosts.v6, port)], v4: AGENT_CLUSTER, v6: AGENT_CLUSTER_V6 };
  }
  const only = hosts.v4 ?? hosts.v6;
  if (only === undefined) throw new Error('agentClusters: no agent host');
  return { clusters: [staticCluster(AGENT_CLUSTER, only, port)], v4: AGENT_CLUSTER, v6: AGENT_CLUSTER };
}

function dnsCluster(name: string, host: string, port: number, family: 'V4_ONLY' | 'V6_ONLY'): Record<string, unknown> {
  return { ...clusterBase(name, host, port), type: 'STRICT_DNS', dns_lookup_family: family };
}

function staticCluster(name: string, address: string, port: number): Record<string, unknown> {
  return { ...clusterBase(name, address.replace(/^\[|\]$/g, ''), port), type: 'STATIC' };
}

function clusterBase(name: string, address: string, port: number): Record<string, unknown> {
  return {
    name,
    connect_timeout: '0.25s',
    lb_policy: 'ROUND_ROBIN',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address, port_value: port } } } }] }] },
  };
}

/** The clusters the report httpCall reaches the node's agent through. */
export function agentClusterFilter(clusters: readonly Record<string, unknown>[], scope: Scope): KubeObject {
  return envoyFilter(
    'wansteer-agent-cluster',
    scope,
    clusters.flatMap((cluster) => CLUSTER_CONTEXTS.map((context) => ({ applyTo: 'CLUSTER', match: { context }, patch: { operation: 'ADD', value: cluster } }))),
  );
}

/**
 * One agent per node, reached from every pod on the node: a Service whose endpoints are the
 * agent DaemonSet's (host network) pods, with `internalTrafficPolicy: Local` so kube-proxy only
 * ever sends a pod's report to the agent on its own node.
 */
export function agentService(port: number): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: AGENT_CLUSTER, namespace: DEFAULT_AGENT_NAMESPACE, labels: { ...PART_OF } },
    spec: {
      selector: { ...AGENT_POD_LABELS },
      internalTrafficPolicy: 'Local',
      // An address of each family where the cluster has both: IPv6 sessions are reported over IPv6.
      ipFamilyPolicy: 'PreferDualStack',
      ports: [{ name: 'http-intake', port, targetPort: port, protocol: 'TCP' }],
    },
  };
}

/**
 * Mark mode: each class's upstream sockets carry the class's DSCP. Envoy applies a bind
 * config's socket options to every upstream socket whatever its family, and IPV6_TCLASS on an
 * IPv4 socket fails the connection; so the IPv4 options sit on the bind config and the IPv6 ones
 * on an extra source address `::`, which Envoy uses (with its own options, instead) for IPv6
 * upstreams. The wildcard addresses with port 0 bind nothing the kernel would not pick anyway;
 * IP_BIND_ADDRESS_NO_PORT keeps the port choice at connect(), so the bind costs no ephemeral ports.
 */
export function markClassFilter(classes: readonly MarkClass[], scope: Scope): KubeObject {
  const configPatches = classes.flatMap((c) =>
    CLUSTER_CONTEXTS.map((context) => ({
      applyTo: 'CLUSTER',
      match: { context, cluster: { service: c.host, subset: c.subset, ...(c.port !== undefined ? { portNumber: c.port } : {}) } },
      patch: { operation: 'MERGE', value: { upstream_bind_config: markBindConfig(c) } },
    })),
  );
  return envoyFilter('wansteer-mark-classes', scope, configPatches);
}

function markBindConfig(c: MarkClass): Record<string, unknown> {
  // DSCP is the TOS / traffic class byte's upper six bits; the ECN bits stay 0 for the kernel to set.
  const tos = c.dscp << 2;
  const what = `wansteer mark class ${c.policy} (DSCP ${c.dscp})`;
  const option = (description: string, level: number, name: number, value: number) => ({ description, level, name, int_value: value, state: 'STATE_PREBIND' });
  const noPort = option('bind without reserving a port', SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1);
  return {
    source_address: { address: '0.0.0.0', port_value: 0 },
    socket_options: [option(`${what}: IP_TOS`, SOL_IP, IP_TOS, tos), noPort],
    extra_source_addresses: [
      {
        address: { address: '::', port_value: 0 },
        socket_options: { socket_options: [option(`${what}: IPV6_TCLASS`, SOL_IPV6, IPV6_TCLASS, tos), noPort] },
      },
    ],
  };
}

export interface EnvoyFilterInput {
  readonly placement: Placement;
  /** Where the EnvoyFilters live and which workloads they select. */
  readonly scope: Scope;
  /** Where the agent listens; absent: the node-local Service, which is rendered too. */
  readonly agentHosts?: AgentHosts;
  readonly agentPort: number;
  readonly timeoutMs: number;
  readonly headers: readonly string[];
  /** Which of path, method and scheme the rules read (header-allow-list.ts classFields). */
  readonly classFields: readonly ClassField[];
  readonly markClasses: readonly MarkClass[];
  /** Builds the Lua source for a filter configuration (lua-source.ts filterSource). */
  readonly luaSource: (config: FilterConfig) => string;
  /** Which session reporter: the Lua filter (default) or the dynamic module (native-reporter.ts). */
  readonly reporter?: Reporter;
  /** The native reporter's network filter for each connection's own remote address (native-reporter.ts NativeOptions); default on. */
  readonly nativeDirectRemote?: boolean;
}

export type Reporter = 'lua' | 'native';
export const REPORTERS: readonly Reporter[] = ['lua', 'native'];

/** Everything for one placement, in apply order. */
export function envoyFilterObjects(input: EnvoyFilterInput): KubeObject[] {
  const agent = agentClusters(input.agentHosts ?? { name: DEFAULT_AGENT_HOST }, input.agentPort);
  const config: FilterConfig = {
    placement: input.placement,
    cluster: agent.v4,
    cluster_v6: agent.v6,
    authority: AGENT_CLUSTER,
    // The module sends batches; the Lua filter one report a call.
    path: input.reporter === 'native' ? BATCH_INTAKE_PATH : INTAKE_PATH,
    timeout_ms: input.timeoutMs,
    headers: input.headers,
    class_fields: input.classFields,
  };
  const objects: KubeObject[] = [];
  if (input.agentHosts === undefined) objects.push(agentService(input.agentPort));
  const reporter = input.reporter === 'native' ? nativeSessionReporter(input.placement, input.scope, config, { directRemote: input.nativeDirectRemote !== false }) : sessionReporter(input.placement, input.scope, input.luaSource(config));
  objects.push(agentClusterFilter(agent.clusters, input.scope), reporter);
  if (input.markClasses.length > 0) objects.push(markClassFilter(input.markClasses, input.scope));
  return objects;
}
