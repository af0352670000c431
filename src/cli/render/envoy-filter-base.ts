/**
 * What every rendered EnvoyFilter shares (envoy-filter.ts, native-reporter.ts): its metadata and
 * scope, and where the session reporter goes in an HTTP filter chain.
 */
import type { Placement } from './lua-source.js';

export type KubeObject = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; namespace: string; labels?: Record<string, string> } };

/** Which workloads the EnvoyFilters apply to. */
export interface Scope {
  readonly namespace: string;
  /** Pod labels a workload must carry; undefined: every workload the namespace reaches. */
  readonly selector?: Readonly<Record<string, string>>;
}

export const PART_OF = { 'app.kubernetes.io/part-of': 'wansteer' } as const;
export const PATCH_CONTEXT: Record<Placement, string> = {
  'sidecar-inbound': 'SIDECAR_INBOUND',
  'sidecar-outbound': 'SIDECAR_OUTBOUND',
  gateway: 'GATEWAY',
};

export function envoyFilter(name: string, scope: Scope, configPatches: unknown[]): KubeObject {
  return {
    apiVersion: 'networking.istio.io/v1alpha3',
    kind: 'EnvoyFilter',
    metadata: { name, namespace: scope.namespace, labels: { ...PART_OF } },
    spec: {
      ...(scope.selector !== undefined ? { workloadSelector: { labels: { ...scope.selector } } } : {}),
      configPatches,
    },
  };
}

type Filter = { readonly name: string; readonly typed_config: unknown };

/**
 * The session reporter's EnvoyFilter: `filter` (an HTTP filter, Lua or the module) inserted before
 * the router; and `networkFilter`, when given, before the HTTP connection manager of the same
 * listeners (the module's, which keeps each connection's own remote address for it).
 */
export function sessionReportFilter(placement: Placement, scope: Scope, filter: Filter, networkFilter?: Filter): KubeObject {
  return envoyFilter(`wansteer-session-report-${placement}`, scope, [
    ...(networkFilter !== undefined
      ? [
          {
            applyTo: 'NETWORK_FILTER',
            match: { context: PATCH_CONTEXT[placement], listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager' } } } },
            patch: { operation: 'INSERT_BEFORE', value: networkFilter },
          },
        ]
      : []),
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
      // Last before the router: after Istio's authn/authz filters, so refused requests are never reported.
      patch: { operation: 'INSERT_BEFORE', value: filter },
    },
  ]);
}
