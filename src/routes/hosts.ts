/**
 * Host names as Istio resolves them. A VirtualService's short host (`reviews`) means
 * `reviews.<its namespace>.svc.<cluster domain>`; a client's short authority means the service in the
 * *client's* namespace, because that is how the sidecar's virtual-host domains are generated.
 */

export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';
/** The namespace assumed for a request whose source namespace is unknown. */
export const DEFAULT_NAMESPACE = 'default';
export const MESH_GATEWAY = 'mesh';

/** A VirtualService host as the sidecar sees it: an exact FQDN or a `*.` suffix wildcard. */
export type ResolvedHost = { readonly kind: 'exact'; readonly name: string } | { readonly kind: 'wildcard'; readonly suffix: string };

export function resolveVirtualServiceHost(host: string, namespace: string, clusterDomain: string): ResolvedHost {
  const h = host.toLowerCase();
  if (h === '*') return { kind: 'wildcard', suffix: '' };
  if (h.startsWith('*.')) return { kind: 'wildcard', suffix: h.slice(1) };
  if (!h.includes('.')) return { kind: 'exact', name: `${h}.${namespace}.svc.${clusterDomain}` };
  return { kind: 'exact', name: h };
}

/** A destination host, resolved like a VirtualService host (short names in the VS namespace). */
export function resolveDestinationHost(host: string, namespace: string, clusterDomain: string): string {
  return host.includes('.') || host.startsWith('*') ? host : `${host}.${namespace}.svc.${clusterDomain}`;
}

/** Gateway names are `namespace/name`; a bare name means the VirtualService's namespace. */
export function resolveGatewayName(gateway: string, namespace: string): string {
  return gateway === MESH_GATEWAY || gateway.includes('/') ? gateway : `${namespace}/${gateway}`;
}

export interface Authority {
  /** Lowercase, no port, no trailing dot. */
  readonly hostname: string;
  readonly port: number | undefined;
}

export function parseAuthority(authority: string): Authority {
  let hostname = authority;
  let port: number | undefined;
  const close = authority.lastIndexOf(']');
  const colon = authority.lastIndexOf(':');
  if (colon > close && (close !== -1 || authority.indexOf(':') === colon)) {
    const digits = authority.slice(colon + 1);
    if (/^\d{1,5}$/.test(digits)) port = Number(digits);
    hostname = authority.slice(0, colon);
  }
  hostname = hostname.toLowerCase();
  if (hostname.endsWith('.')) hostname = hostname.slice(0, -1);
  return { hostname, port };
}

/**
 * The FQDNs an authority can stand for, most literal first: `reviews` from namespace `shop` is
 * `reviews.shop.svc.cluster.local`; `reviews.shop` may be `reviews.shop` or the service.
 */
export function authorityCandidates(hostname: string, sourceNamespace: string, clusterDomain: string): string[] {
  if (hostname.startsWith('[') || /^[\d.]+$/.test(hostname)) return [hostname];
  if (!hostname.includes('.')) return [`${hostname}.${sourceNamespace}.svc.${clusterDomain}`];
  if (hostname.endsWith('.svc')) return [hostname, `${hostname}.${clusterDomain}`];
  const dots = hostname.split('.').length - 1;
  return dots === 1 ? [hostname, `${hostname}.svc.${clusterDomain}`] : [hostname];
}
