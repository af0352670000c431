/**
 * The route table: every VirtualService compiled once into matchers and an index by host, so a
 * classification is a host lookup and a walk over precompiled conditions. Immutable: a change to
 * the rules builds a new table (cheap for hundreds of objects) and swaps it in.
 */
import type { CompiledRoute, CompiledVirtualService, RouteMatch, WeightedDestination } from './compiled.js';
import { compileMatchBlock } from './conditions.js';
import {
  DEFAULT_CLUSTER_DOMAIN, MESH_GATEWAY, resolveDestinationHost, resolveGatewayName, resolveVirtualServiceHost,
} from './hosts.js';
import { HostIndex } from './host-index.js';
import type { Destination, HttpRoute, VirtualService } from './model.js';
import { virtualServiceKey } from './model.js';

export interface RouteTableOptions {
  /** Kubernetes cluster domain used to expand short names. Default `cluster.local`. */
  readonly clusterDomain?: string;
}

export type {
  ClassifyResult, CompiledBlock, CompiledRoute, CompiledVirtualService, NoMatch, RouteMatch, WeightedDestination,
} from './compiled.js';

export class RouteTable {
  readonly hosts: HostIndex;
  readonly virtualServices: readonly CompiledVirtualService[];
  readonly clusterDomain: string;

  constructor(virtualServices: readonly VirtualService[], options: RouteTableOptions = {}) {
    this.clusterDomain = options.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
    // Istio's precedence among VirtualServices for one host: oldest first, then namespace/name.
    const ordered = [...virtualServices].sort(byPrecedence);
    this.virtualServices = ordered.map((vs) => compileVirtualService(vs, this.clusterDomain));
    this.hosts = new HostIndex(this.clusterDomain);
    for (const compiled of this.virtualServices) {
      for (const host of compiled.source.hosts) {
        this.hosts.add(resolveVirtualServiceHost(host, compiled.source.namespace, this.clusterDomain), host, compiled);
      }
    }
  }

  static empty(options?: RouteTableOptions): RouteTable {
    return new RouteTable([], options);
  }
}

function byPrecedence(a: VirtualService, b: VirtualService): number {
  const ta = a.creationTimestamp ?? '';
  const tb = b.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  const ka = virtualServiceKey(a);
  const kb = virtualServiceKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function compileVirtualService(vs: VirtualService, clusterDomain: string): CompiledVirtualService {
  const gateways = vs.gateways.length === 0 ? [MESH_GATEWAY] : vs.gateways.map((g) => resolveGatewayName(g, vs.namespace));
  return {
    source: vs,
    key: virtualServiceKey(vs),
    gateways: new Set(gateways),
    routes: vs.http.map((route, index) => compileRoute(vs, route, index, clusterDomain)),
  };
}

function compileRoute(vs: VirtualService, route: HttpRoute, index: number, clusterDomain: string): CompiledRoute {
  const destinations = weighDestinations(vs, route, clusterDomain);
  const result = (matchIndex: number | undefined, matchName: string | undefined): RouteMatch =>
    Object.freeze({
      matched: true,
      virtualService: Object.freeze({ namespace: vs.namespace, name: vs.name }),
      routeIndex: index,
      routeName: route.name,
      matchIndex,
      matchName,
      action: route.action,
      destinations,
    });
  return {
    index,
    name: route.name,
    blocks: route.match.map((block, i) => ({
      index: i,
      name: block.name,
      conditions: compileMatchBlock(block, vs.namespace),
      result: result(i, block.name),
    })),
    catchAll: route.match.length === 0 ? result(undefined, undefined) : undefined,
  };
}

/** Istio weights are relative; a lone destination takes everything whatever its weight says. */
function weighDestinations(vs: VirtualService, route: HttpRoute, clusterDomain: string): readonly WeightedDestination[] {
  const total = route.route.length === 1 ? 1 : route.route.reduce((sum, d) => sum + d.weight, 0);
  return Object.freeze(
    route.route.map((d) =>
      Object.freeze({
        destination: Object.freeze({ ...d.destination, host: resolveDestinationHost(d.destination.host, vs.namespace, clusterDomain) }),
        percent: route.route.length === 1 ? 100 : total === 0 ? 0 : (d.weight * 100) / total,
      }),
    ),
  );
}

/** Picks one weighted destination the way a random draw in [0, 1) would; pure so callers control the draw. */
export function pickDestination(match: RouteMatch, draw: number): Destination | undefined {
  let acc = 0;
  for (const d of match.destinations) {
    acc += d.percent / 100;
    if (draw < acc && d.percent > 0) return d.destination;
  }
  // Rounding can leave the draw just past the last bucket: fall back to the last live destination.
  for (let i = match.destinations.length - 1; i >= 0; i--) {
    const d = match.destinations[i]!;
    if (d.percent > 0) return d.destination;
  }
  return undefined;
}
