/**
 * The Kubernetes objects of a workload with a sidecar, as a cluster holds them for istiod (a Pod
 * with its Service and EndpointSlice, the status a kubelet would report), and what to read back
 * from the sidecar Envoy's /config_dump. Shared by test/istio/istiod-envoyfilter.test.ts and
 * bench/envoy-istiod.ts, which both give istiod a cluster without kubelets or controllers.
 */
import type { Lab, LabEnvoy } from '../../src/lab/index.js';
import type { SidecarIdentity } from './istiod.js';
import type { ApiObject, KubeControlPlane } from './kube-control-plane.js';

export const LUA = 'wansteer.session_report';
export const ROUTER = 'envoy.filters.http.router';
const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

export const pod = (id: SidecarIdentity, port: number) => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { name: id.pod, namespace: id.namespace, labels: { ...id.labels } },
  spec: { nodeName: 'edge-1', containers: [{ name: 'app', image: 'app', ports: [{ name: 'http', containerPort: port }] }] },
});
export const service = (name: string, namespace: string, selector: Record<string, string>, port: number, targetPort: number) => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace },
  spec: { selector, ports: [{ name: 'http', port, targetPort, protocol: 'TCP' }] },
});
export const endpointSlice = (serviceName: string, namespace: string, ip: string, port: number, podName?: string) => ({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
  metadata: { name: `${serviceName}-1`, namespace, labels: { 'kubernetes.io/service-name': serviceName } },
  addressType: 'IPv4',
  endpoints: [{ addresses: [ip], conditions: { ready: true }, ...(podName ? { targetRef: { kind: 'Pod', name: podName, namespace } } : {}) }],
  ports: [{ name: 'http', port, protocol: 'TCP' }],
});

/**
 * What a cluster without kubelets or controllers needs before its workloads: the namespace, the
 * node the pods run on (no kubelet registers it; istiod reads its locality from it), the
 * namespace's default ServiceAccount (no controller-manager makes it; the ServiceAccount
 * admission wants it), and plaintext inbound chains mesh-wide (the stock Envoy has no
 * pilot-agent to serve its mTLS secrets).
 */
export function clusterBasics(namespace: string): ApiObject[] {
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
    { apiVersion: 'v1', kind: 'Node', metadata: { name: 'edge-1' } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace } },
    { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'istio-system' }, spec: { mtls: { mode: 'DISABLE' } } } as ApiObject,
  ];
}

/** A workload: its Pod, the Service selecting it by `app` on `port`, and the EndpointSlice to the pod. */
export function workload(id: SidecarIdentity, port: number): ApiObject[] {
  return [pod(id, port), service(id.pod, id.namespace, { app: id.labels.app! }, port, port), endpointSlice(id.pod, id.namespace, id.ip, port, id.pod)];
}

/** What a kubelet would report: the pod running and ready on its IP. */
export async function markRunning(cp: KubeControlPlane, id: SidecarIdentity): Promise<void> {
  const path = `/api/v1/namespaces/${id.namespace}/pods/${id.pod}`;
  const current = (await cp.request('GET', path)).body as Record<string, unknown>;
  const now = new Date().toISOString();
  const status = {
    phase: 'Running', hostIP: id.ip, podIP: id.ip, podIPs: [{ ip: id.ip }], startTime: now,
    conditions: ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map((type) => ({ type, status: 'True', lastTransitionTime: now })),
    containerStatuses: [{ name: 'app', image: 'app', imageID: '', ready: true, started: true, restartCount: 0, state: { running: { startedAt: now } } }],
  };
  const res = await cp.request('PUT', `${path}/status`, { ...current, status });
  if (res.status !== 200) throw new Error(`pod ${id.pod} status: ${res.status} ${JSON.stringify(res.body)}`);
}

// ---- reading Envoy's config dump ----------------------------------------------------------

/* eslint-disable @typescript-eslint/no-explicit-any */
export type Json = any;

export interface Dump {
  listeners: Json[];
  clusters: Map<string, Json>;
}

export function configDump(proxy: LabEnvoy): Dump {
  const answer = proxy.adminGet('/config_dump');
  if (answer.status !== 200) throw new Error(`/config_dump: ${answer.status} ${answer.error ?? ''}`);
  const configs = answer.body.configs as Json[];
  const of = (type: string) => configs.find((c) => String(c['@type']).endsWith(type)) ?? {};
  const listeners = ((of('ListenersConfigDump').dynamic_listeners ?? []) as Json[]).map((l) => l.active_state?.listener).filter(Boolean);
  const clusters = new Map<string, Json>();
  for (const c of of('ClustersConfigDump').dynamic_active_clusters ?? []) clusters.set(c.cluster.name, c.cluster);
  return { listeners, clusters };
}

export interface HttpChain {
  listener: string;
  direction: string;
  chain: string;
  filters: string[];
  lua?: Json;
}

/** Every HTTP connection manager in the dump's listeners: its listener, chain and HTTP filter names. */
export function httpChains(dump: Dump): HttpChain[] {
  const out: HttpChain[] = [];
  for (const listener of dump.listeners) {
    const chains = [...(listener.filter_chains ?? []), ...(listener.default_filter_chain ? [listener.default_filter_chain] : [])];
    for (const chain of chains) {
      for (const filter of chain.filters ?? []) {
        if (filter.typed_config?.['@type'] !== HCM_TYPE) continue;
        const httpFilters = (filter.typed_config.http_filters ?? []) as Json[];
        out.push({
          listener: listener.name,
          direction: listener.traffic_direction ?? '',
          chain: chain.name ?? '',
          filters: httpFilters.map((f) => f.name as string),
          lua: httpFilters.find((f) => f.name === LUA)?.typed_config,
        });
      }
    }
  }
  return out;
}

/** The values of the socket options at (level, name) (proto3 JSON leaves out a level of 0). */
export const optionValues = (options: Json[] | undefined, level: number, name: number) =>
  (options ?? []).filter((o) => Number(o.level ?? 0) === level && Number(o.name ?? 0) === name).map((o) => Number(o.int_value ?? 0));
export const ipTos = (cluster: Json) => optionValues(cluster?.upstream_bind_config?.socket_options, 0, 1);
/* eslint-enable @typescript-eslint/no-explicit-any */

export async function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}


/**
 * Istio's REDIRECT capture, for one pod port only (as its iptables do for the ports it
 * intercepts): what arrives in namespace `ns` for ip:port goes to the sidecar's inbound 15006.
 */
export function captureInbound(lab: Lab, ns: string, ip: string, port: number): void {
  lab.exec(ns, ['nft', '-f', '-'], [
    'table ip wst_istio {',
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat;',
    `    ip daddr ${ip} tcp dport ${port} redirect to :15006`,
    '  }',
    '}',
  ].join('\n') + '\n');
}
