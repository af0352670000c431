/**
 * The shapes of a compiled route table: what the table holds per VirtualService, route and match
 * block, and what a classification answers. Apart from route-table.ts so the host index can name
 * them without importing the table that builds it.
 */
import type { Condition } from './conditions.js';
import type { Destination, RouteAction, VirtualService } from './model.js';

/** The answer when a request matches: what Istio would do with it, and which rule said so. */
export interface RouteMatch {
  readonly matched: true;
  readonly virtualService: { readonly namespace: string; readonly name: string };
  readonly routeIndex: number;
  readonly routeName: string | undefined;
  /** Index of the match block that matched; undefined for a route without `match`. */
  readonly matchIndex: number | undefined;
  readonly matchName: string | undefined;
  readonly action: RouteAction;
  /** Destinations with weights in percent (FQDN hosts). Empty unless action is `route`. */
  readonly destinations: readonly WeightedDestination[];
}

export interface WeightedDestination {
  readonly destination: Destination;
  readonly percent: number;
}

export interface NoMatch {
  readonly matched: false;
  readonly reason: 'no-virtual-service' | 'no-route';
}

export type ClassifyResult = RouteMatch | NoMatch;

export interface CompiledBlock {
  readonly index: number;
  readonly name: string | undefined;
  readonly conditions: readonly Condition[];
  readonly result: RouteMatch;
}

export interface CompiledRoute {
  readonly index: number;
  readonly name: string | undefined;
  /** Empty when the route has no `match`: then `catchAll` is the answer. */
  readonly blocks: readonly CompiledBlock[];
  readonly catchAll: RouteMatch | undefined;
}

export interface CompiledVirtualService {
  readonly source: VirtualService;
  readonly key: string;
  /** Resolved top-level gateways (`mesh` when none are written). */
  readonly gateways: ReadonlySet<string>;
  readonly routes: readonly CompiledRoute[];
}
