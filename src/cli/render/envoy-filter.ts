/**
 * The Kubernetes objects `wansteer render envoyfilter` writes, as plain JS (YAML comes later):
 *
 *  - the session reporter: an EnvoyFilter inserting the Lua filter before the router at one
 *    placement (SIDECAR_INBOUND, SIDECAR_OUTBOUND or GATEWAY);
 *  - the agent cluster the filter's httpCall goes to, and (in cluster) the Service behind it;
 *  - mark mode: for each class, an IP_TOS socket option on its upstream cluster.
 *
 * Istio applies an EnvoyFilter in its root namespace (istio-system) to every workload.
 * docs/envoy.md explains each choice.
 */
import type { FilterConfig, Placement } from './lua-source.js';
import type { MarkClass } from './mark-classes.js';

export const LUA_FILTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua';
export const AGENT_CLUSTER = 'wansteer-agent';
export const INTAKE_PATH = '/v1/sessions';
export const DEFAULT_AGENT_PORT = 9090;
export const DEFAULT_AGENT_NAMESPACE = 'wansteer-system';
export const DEFAULT_AGENT_HOST = `wansteer-agent.${DEFAULT_AGENT_NAMESPACE}.svc.cluster.local`;
/** The label the agent DaemonSet's pods carry; the Service selects them by it. */
export const AGENT_POD_LABELS = { 'app.kubernetes.io/name': 'wansteer-agent' } as const;

const PART_OF = { 'app.kubernetes.io/part-of': 'wansteer' } as const;
const PATCH_CONTEXT: Record<Placement, string> = {
  'sidecar-inbound': 'SIDECAR_INBOUND',
  'sidecar-outbound': 'SIDECAR_OUTBOUND',
  gateway: 'GATEWAY',
};
/**
 * Istio adds CLUSTER `ADD` patches to a sidecar only with context SIDECAR_OUTBOUND (all of a
 * sidecar's added clusters live there, whichever listener uses them) and to a gateway only with
 * GATEWAY; the same two contexts reach the upstream clusters mark mode patches.
 */
const CLUSTER_CONTEXTS = ['SIDECAR_OUTBOUND', 'GATEWAY'] as const;

/** IPPROTO_IP / IP_TOS on Linux. */
const SOL_IP = 0;
const IP_TOS = 1;

export type KubeObject = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; namespace: string; labels?: Record<string, string> } };

export interface AgentEndpoint {
  /** An IP literal (a STATIC cluster) or a DNS name (STRICT_DNS). */
  readonly host: string;
  readonly port: number;
}

export function sessionReporter(placement: Placement, namespace: string, luaSource: string): KubeObject {
  return {
    apiVersion: 'networking.istio.io/v1alpha3',
    kind: 'EnvoyFilter',
    metadata: { name: `wansteer-session-report-${placement}`, namespace, labels: { ...PART_OF } },
    spec: {
      configPatches: [
        {
          applyTo: 'HTTP_FILTER',
          match: {
            context: PATCH_CONTEXT[placement],
            listener: {
              filterChain: {
                filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } },
              },
            },
          },
          patch: {
            // Last before the router: after Istio's authn/authz filters, so refused requests are never reported.
            operation: 'INSERT_BEFORE',
            value: {
              name: 'wansteer.session_report',
              typed_config: { '@type': LUA_FILTER_TYPE, default_source_code: { inline_string: luaSource } },
            },
          },
        },
      ],
    },
  };
}

/** The cluster the report httpCall reaches the node's agent through. */
export function agentCluster(agent: AgentEndpoint, namespace: string): KubeObject {
  const literal = isIpLiteral(agent.host);
  const cluster = {
    name: AGENT_CLUSTER,
    type: literal ? 'STATIC' : 'STRICT_DNS',
    connect_timeout: '0.25s',
    lb_policy: 'ROUND_ROBIN',
    load_assignment: {
      cluster_name: AGENT_CLUSTER,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: agent.host.replace(/^\[|\]$/g, ''), port_value: agent.port } } } }] }],
    },
  };
  return {
    apiVersion: 'networking.istio.io/v1alpha3',
    kind: 'EnvoyFilter',
    metadata: { name: 'wansteer-agent-cluster', namespace, labels: { ...PART_OF } },
    spec: {
      configPatches: CLUSTER_CONTEXTS.map((context) => ({ applyTo: 'CLUSTER', match: { context }, patch: { operation: 'ADD', value: cluster } })),
    },
  };
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
      ports: [{ name: 'http-intake', port, targetPort: port, protocol: 'TCP' }],
    },
  };
}

/** Mark mode: each class's upstream sockets carry the class's DSCP in IP_TOS. */
export function markClassFilter(classes: readonly MarkClass[], namespace: string): KubeObject {
  const configPatches = classes.flatMap((c) =>
    CLUSTER_CONTEXTS.map((context) => ({
      applyTo: 'CLUSTER',
      match: { context, cluster: { service: c.host, subset: c.subset, ...(c.port !== undefined ? { portNumber: c.port } : {}) } },
      patch: {
        operation: 'MERGE',
        value: {
          upstream_bind_config: {
            socket_options: [
              {
                description: `wansteer mark class ${c.policy} (DSCP ${c.dscp})`,
                level: SOL_IP,
                name: IP_TOS,
                // DSCP is the TOS byte's upper six bits; the ECN bits stay 0 for the kernel to set.
                int_value: c.dscp << 2,
                state: 'STATE_PREBIND',
              },
            ],
          },
        },
      },
    })),
  );
  return {
    apiVersion: 'networking.istio.io/v1alpha3',
    kind: 'EnvoyFilter',
    metadata: { name: 'wansteer-mark-classes', namespace, labels: { ...PART_OF } },
    spec: { configPatches },
  };
}

export interface EnvoyFilterInput {
  readonly placement: Placement;
  /** Where the EnvoyFilters live; the root namespace (istio-system) means every workload. */
  readonly namespace: string;
  /** Where the agent listens; absent: the node-local Service, which is rendered too. */
  readonly agentHost?: string;
  readonly agentPort: number;
  readonly timeoutMs: number;
  readonly headers: readonly string[];
  readonly markClasses: readonly MarkClass[];
  /** Builds the Lua source for a filter configuration (lua-source.ts filterSource). */
  readonly luaSource: (config: FilterConfig) => string;
}

/** Everything for one placement, in apply order. */
export function envoyFilterObjects(input: EnvoyFilterInput): KubeObject[] {
  const agent: AgentEndpoint = { host: input.agentHost ?? DEFAULT_AGENT_HOST, port: input.agentPort };
  const config: FilterConfig = {
    placement: input.placement,
    cluster: AGENT_CLUSTER,
    authority: AGENT_CLUSTER,
    path: INTAKE_PATH,
    timeout_ms: input.timeoutMs,
    headers: input.headers,
  };
  const objects: KubeObject[] = [];
  if (input.agentHost === undefined) objects.push(agentService(input.agentPort));
  objects.push(agentCluster(agent, input.namespace), sessionReporter(input.placement, input.namespace, input.luaSource(config)));
  if (input.markClasses.length > 0) objects.push(markClassFilter(input.markClasses, input.namespace));
  return objects;
}

function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || /^\[?[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]?$/.test(host);
}
