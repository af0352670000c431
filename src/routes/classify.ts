/**
 * classifyRequest: which VirtualService, route and destination Istio would pick for a request.
 * Pure and allocation-light: one small view object per call; results are shared frozen objects
 * built when the table was compiled.
 */
import { DEFAULT_NAMESPACE, MESH_GATEWAY } from './hosts.js';
import type { RouteRequest } from './model.js';
import { RequestView } from './request-view.js';
import type { ClassifyResult, CompiledBlock, CompiledRoute, NoMatch, RouteMatch, RouteTable } from './route-table.js';

const NO_VIRTUAL_SERVICE: NoMatch = Object.freeze({ matched: false, reason: 'no-virtual-service' });
const NO_ROUTE: NoMatch = Object.freeze({ matched: false, reason: 'no-route' });

export function classifyRequest(table: RouteTable, request: RouteRequest): ClassifyResult {
  const gateway = request.gateway ?? MESH_GATEWAY;
  const found = table.hosts.lookup(request.host, request.sourceNamespace ?? DEFAULT_NAMESPACE, gateway);
  if (!found.selection) return NO_VIRTUAL_SERVICE;
  const view = new RequestView(request, found.port);
  for (const entry of found.selection.entries) {
    for (const route of entry.virtualService.routes) {
      const hit = matchRoute(route, view);
      if (hit !== undefined) return hit;
    }
  }
  return NO_ROUTE;
}

/**
 * The route a proxy already matched, named as Istio names Envoy routes: the HTTP route's name,
 * with `.` and the match block's name when the block has one. The VirtualService is found by
 * host as classifyRequest finds it; within it the name, not the conditions, picks the route, so
 * the answer holds for what the proxy saw even when the request was rewritten on the way (a
 * route's block without a name: the first of its unnamed blocks that holds, else the first).
 * Undefined when no route there has that name (Istio's own routes, such as `default`, or rules
 * that changed since): the caller then matches the request itself.
 */
export function classifyByRouteName(table: RouteTable, request: RouteRequest, routeName: string): RouteMatch | undefined {
  const gateway = request.gateway ?? MESH_GATEWAY;
  const found = table.hosts.lookup(request.host, request.sourceNamespace ?? DEFAULT_NAMESPACE, gateway);
  if (!found.selection) return undefined;
  for (const entry of found.selection.entries) {
    for (const route of entry.virtualService.routes) {
      if (route.catchAll) {
        if (route.name === routeName) return route.catchAll;
        continue;
      }
      if (route.name === routeName) {
        const unnamed = route.blocks.filter((b) => b.name === undefined);
        if (unnamed.length === 0) continue;
        const view = new RequestView(request, found.port);
        return (unnamed.find((b) => blockHolds(b, view)) ?? unnamed[0]!).result;
      }
      const prefix = `${route.name ?? ''}.`;
      if (!routeName.startsWith(prefix)) continue;
      const block = route.blocks.find((b) => b.name !== undefined && prefix + b.name === routeName);
      if (block) return block.result;
    }
  }
  return undefined;
}

/** The first match block whose conditions all hold; a route without blocks matches everything. */
export function matchRoute(route: CompiledRoute, view: RequestView): RouteMatch | undefined {
  if (route.catchAll) return route.catchAll;
  for (const block of route.blocks) {
    if (blockHolds(block, view)) return block.result;
  }
  return undefined;
}

function blockHolds(block: CompiledBlock, view: RequestView): boolean {
  const conditions = block.conditions;
  for (let i = 0; i < conditions.length; i++) {
    if (!conditions[i]!.test(view)) return false;
  }
  return true;
}
