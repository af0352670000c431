/**
 * The VirtualService as wansteer keeps it after validation: only what HTTP classification needs,
 * with Istio's field names so a reader can hold it next to the Istio reference.
 * Input objects are checked by `validate.ts`; everything here is already well-formed.
 */

/** Istio `StringMatch`, plus `present` for `{}` (a header or query parameter that just has to exist). */
export type StringMatch =
  | { readonly exact: string }
  | { readonly prefix: string }
  | { readonly regex: string }
  | { readonly present: true };

export interface HttpMatchRequest {
  readonly name?: string;
  readonly uri?: StringMatch;
  readonly scheme?: StringMatch;
  readonly method?: StringMatch;
  readonly authority?: StringMatch;
  /** Keys are lowercase header names. */
  readonly headers?: Readonly<Record<string, StringMatch>>;
  readonly withoutHeaders?: Readonly<Record<string, StringMatch>>;
  readonly queryParams?: Readonly<Record<string, StringMatch>>;
  readonly port?: number;
  readonly sourceLabels?: Readonly<Record<string, string>>;
  readonly sourceNamespace?: string;
  readonly gateways?: readonly string[];
  readonly ignoreUriCase?: boolean;
}

export interface Destination {
  readonly host: string;
  readonly subset?: string;
  readonly port?: number;
}

export interface HttpRouteDestination {
  readonly destination: Destination;
  /** Istio's relative weight; a single destination gets all traffic whatever its weight. */
  readonly weight: number;
}

/** What a route does with a request it matches. Only `route` sends it to a destination. */
export type RouteAction = 'route' | 'redirect' | 'directResponse' | 'delegate';

export interface HttpRoute {
  readonly name?: string;
  /** Empty: the route matches every request. */
  readonly match: readonly HttpMatchRequest[];
  readonly action: RouteAction;
  readonly route: readonly HttpRouteDestination[];
}

export interface VirtualService {
  readonly namespace: string;
  readonly name: string;
  /** The apiVersion the object arrived with (v1, v1beta1 or v1alpha3 of networking.istio.io). */
  readonly apiVersion: string;
  /** ISO time; Istio gives the oldest VirtualService precedence when several claim one host. */
  readonly creationTimestamp?: string;
  readonly resourceVersion?: string;
  readonly hosts: readonly string[];
  /** As written; empty means the `mesh` gateway only. */
  readonly gateways: readonly string[];
  readonly http: readonly HttpRoute[];
}

/** `namespace/name`, the identity a VirtualService keeps across updates. */
export function virtualServiceKey(vs: { namespace: string; name: string }): string {
  return `${vs.namespace}/${vs.name}`;
}

/**
 * One HTTP request as the mesh saw it. Header names must be lowercase; repeated headers joined
 * with "," as Envoy does before matching.
 */
export interface RouteRequest {
  /** The authority (Host header), with or without `:port`. */
  readonly host: string;
  /** Destination port; defaults to the port in `host`, if any. */
  readonly port?: number;
  /** The `:path` pseudo-header, query string included. Defaults to `/`. */
  readonly path?: string;
  readonly method?: string;
  readonly scheme?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly sourceNamespace?: string;
  readonly sourceLabels?: Readonly<Record<string, string>>;
  /** Which proxy classifies: `mesh` (a sidecar, the default) or a gateway as `namespace/name`. */
  readonly gateway?: string;
}
