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
