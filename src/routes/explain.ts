/**
 * explainRequest: the same decision as classifyRequest, with the reasoning written down — which
 * host the authority was read as, which VirtualService owns it, and for every route and match
 * block which condition held or failed. Slower than classify (it records everything), so it is for
 * people and the API, not the hot path. It walks the same compiled conditions, so the two agree.
 */
import { classifyRequest } from './classify.js';
import { DEFAULT_NAMESPACE, MESH_GATEWAY } from './hosts.js';
import type { RouteRequest } from './model.js';
import { RequestView } from './request-view.js';
import type { ClassifyResult, RouteTable } from './route-table.js';

export interface ConditionTrace {
  readonly condition: string;
  readonly held: boolean;
}

export interface BlockTrace {
  readonly index: number;
  readonly name: string | undefined;
  readonly matched: boolean;
  /** Conditions up to and including the first that failed. */
  readonly conditions: readonly ConditionTrace[];
}

export interface RouteTrace {
  readonly virtualService: string;
  readonly index: number;
  readonly name: string | undefined;
  readonly outcome: 'matched' | 'no-match';
  /** Empty for a route without `match` (it matches every request). */
  readonly blocks: readonly BlockTrace[];
}

export interface VirtualServiceTrace {
  readonly virtualService: string;
  readonly host: string;
  readonly status: 'used' | 'shadowed-by-older';
}

export interface Explanation {
  readonly request: { readonly authority: string; readonly readAs: readonly string[]; readonly port: number | undefined; readonly gateway: string };
  readonly selectedDomain: string | undefined;
  readonly virtualServices: readonly VirtualServiceTrace[];
  readonly routes: readonly RouteTrace[];
  readonly result: ClassifyResult;
}

export function explainRequest(table: RouteTable, request: RouteRequest): Explanation {
  const gateway = request.gateway ?? MESH_GATEWAY;
  const found = table.hosts.lookup(request.host, request.sourceNamespace ?? DEFAULT_NAMESPACE, gateway);
  const view = new RequestView(request, found.port);
  const virtualServices: VirtualServiceTrace[] = [];
  const routes: RouteTrace[] = [];
  for (const entry of found.selection?.entries ?? []) {
    virtualServices.push({ virtualService: entry.virtualService.key, host: entry.written, status: 'used' });
    if (!routes.some((r) => r.outcome === 'matched')) routes.push(...traceRoutes(entry.virtualService.routes, entry.virtualService.key, view));
  }
  for (const entry of found.selection?.shadowed ?? []) {
    virtualServices.push({ virtualService: entry.virtualService.key, host: entry.written, status: 'shadowed-by-older' });
  }
  return {
    request: { authority: request.host, readAs: found.candidates, port: view.port, gateway: view.gateway },
    selectedDomain: found.selection?.domain,
    virtualServices,
    routes,
    result: classifyRequest(table, request),
  };
}

type CompiledRoutes = import('./route-table.js').CompiledVirtualService['routes'];

function traceRoutes(compiled: CompiledRoutes, key: string, view: RequestView): RouteTrace[] {
  const out: RouteTrace[] = [];
  for (const route of compiled) {
    const blocks: BlockTrace[] = [];
    for (const block of route.blocks) {
      const conditions: ConditionTrace[] = [];
      for (const c of block.conditions) {
        const held = c.test(view);
        conditions.push({ condition: c.describe, held });
        if (!held) break;
      }
      const matched = conditions.every((c) => c.held);
      blocks.push({ index: block.index, name: block.name, matched, conditions });
      if (matched) break; // blocks are OR-ed: the first that holds decides
    }
    const matched = route.catchAll !== undefined || blocks.some((b) => b.matched);
    out.push({ virtualService: key, index: route.index, name: route.name, outcome: matched ? 'matched' : 'no-match', blocks });
    if (matched) break;
  }
  return out;
}
