/**
 * The engine's views: what the API, `wansteer status` and the metrics read of the engine's
 * links, policies and flows, built from its runtime state on request. Nothing here writes.
 */
import type { AgentConfig } from '../config/schema.js';
import { DatapathError, DatapathErrorCode, type DatapathPort, type FlowEntry, type FlowPage } from '../datapath/index.js';
import type { Explanation } from '../routes/explain.js';
import type { RouteMatch } from '../routes/route-table.js';
import { canonicalIp } from './intake.js';
import type { PolicyIds } from './policy-ids.js';
import type { PolicyRuntime, Unmatched } from './policy-runtime.js';
import { usable, type LinkInput } from './reconcile.js';
import {
  FlowCursorError, type ExplainedSteer, type FlowFilter, type FlowView, type FlowViewPage, type LinkStatus, type PolicyStatus, type SessionExplanation,
} from './types.js';

/** A link as the engine holds it: what reconcile needs, and why it is unusable, for people. */
export interface LinkRuntime extends LinkInput {
  interface: string;
  /** A problem in the link's config (a bad next hop): it is never usable. */
  configProblem?: string;
  /** Why the interface could not be found or attached. */
  interfaceProblem?: string;
  healthReason?: string;
  carrier?: boolean;
}

/** The configured links, id = position, next hops canonical so they compare equal to what the datapath reads back. */
export function linkRuntimes(links: AgentConfig['links']): LinkRuntime[] {
  return links.map((l, id) => {
    const link: LinkRuntime = { id, name: l.name, interface: l.interface, ifindex: null, up: true, ...(l.addressing === 'internet' ? { internet: true } : {}) };
    for (const [field, family] of [['nextHop4', 4], ['nextHop6', 6]] as const) {
      const text = l[field];
      if (text === undefined) continue;
      const c = canonicalIp(text);
      if (!c || c.family !== family) link.configProblem = `${field} ${JSON.stringify(text)} is not an IPv${family} address`;
      else link[field] = c.ip;
    }
    return link;
  });
}

/** What reconcile sees of a link: one with a config problem has no interface to use. */
export function linkInput(l: LinkRuntime): LinkInput {
  const usableIfindex = l.configProblem ? null : l.ifindex;
  return { ...l, ifindex: usableIfindex };
}

export function linkStatuses(links: readonly LinkRuntime[], policies: Iterable<PolicyRuntime>): LinkStatus[] {
  const activeFor = new Map<string, string[]>();
  for (const p of policies) {
    const link = p.choice?.link;
    if (link === undefined) continue;
    let names = activeFor.get(link);
    if (!names) activeFor.set(link, (names = []));
    names.push(p.name);
  }
  return links.map((l) => {
    const status: LinkStatus = { name: l.name, interface: l.interface, ifindex: l.ifindex, up: usable(l), activeFor: activeFor.get(l.name) ?? [] };
    if (l.rttMs !== undefined) status.rttMs = l.rttMs;
    if (l.lossPercent !== undefined) status.lossPercent = l.lossPercent;
    if (l.jitterMs !== undefined) status.jitterMs = l.jitterMs;
    const reason = l.configProblem ?? l.interfaceProblem ?? (l.up ? undefined : (l.healthReason ?? 'reported down by the health monitor'));
    if (reason !== undefined) status.reason = reason;
    return status;
  });
}

export function policyStatuses(policies: Iterable<PolicyRuntime>): PolicyStatus[] {
  return [...policies].map((p) => {
    const c = p.choice;
    const s: PolicyStatus = {
      name: p.name, id: p.id, links: [...p.spec.action.links], installed: p.id !== null && c?.action !== undefined, reason: c?.reason ?? 'not reconciled yet',
    };
    if (c?.link !== undefined) s.link = c.link;
    if (p.spec.action.sla) s.sla = { ...p.spec.action.sla };
    if (c?.slaMet !== undefined) s.slaMet = c.slaMet;
    if (c?.dscp !== undefined) s.dscp = c.dscp;
    return s;
  });
}

const DEFAULT_FLOW_LIMIT = 1000;

/**
 * A page of the steered flows as the datapath holds them: at most `limit` (default 1000),
 * from where `after` left off, the policy and link filters turned into policy ids the
 * datapath filters by, so that a page costs the same whatever the table holds.
 */
export function flowPage(
  dp: DatapathPort, ids: PolicyIds | undefined, policies: Iterable<PolicyRuntime>, filter: FlowFilter, now: bigint,
): FlowViewPage {
  const limit = filter.limit ?? DEFAULT_FLOW_LIMIT;
  if (!ids || limit <= 0) return { items: [] };
  let policyIds: Set<number> | undefined;
  if (filter.policy !== undefined) {
    const id = ids.get(filter.policy);
    if (id === undefined) return { items: [] };
    policyIds = new Set([id]);
  }
  if (filter.link !== undefined) {
    const onLink = new Set<number>();
    for (const p of policies) {
      const id = ids.get(p.name);
      if (id !== undefined && p.choice?.link === filter.link && (!policyIds || policyIds.has(id))) onLink.add(id);
    }
    if (onLink.size === 0) return { items: [] };
    policyIds = onLink;
  }
  let page: FlowPage;
  try {
    page = dp.pageFlows({ limit, ...(filter.after !== undefined && { after: filter.after }), ...(policyIds && { policyIds }) });
  } catch (err) {
    if (err instanceof DatapathError && err.code === DatapathErrorCode.INVALID && filter.after !== undefined) throw new FlowCursorError(filter.after, err.message);
    throw err;
  }
  const items = page.items.map((f) => flowView(f, ids.nameOf(f.policyId) ?? `#${f.policyId}`, now));
  return page.next === undefined ? { items } : { items, next: page.next };
}

function flowView(f: FlowEntry, policy: string, now: bigint): FlowView {
  const idleNs = now > f.lastSeenNs ? now - f.lastSeenNs : 0n;
  return {
    protocol: f.protocol === 6 ? 'tcp' : f.protocol === 17 ? 'udp' : f.protocol,
    src: f.src, sport: f.sport, dst: f.dst, dport: f.dport, policy,
    idleSeconds: Math.round(Number(idleNs / 1_000_000n)) / 1000,
  };
}

/** The explanation of a traced request, given the policy its match resolves to. */
export function explainOutcome(route: Explanation, resolve: (m: RouteMatch) => PolicyRuntime | Unmatched): SessionExplanation {
  if (!route.result.matched) return { route, outcome: { status: 'unmatched', reason: route.result.reason } };
  const answer = resolve(route.result);
  if ('status' in answer) return { route, outcome: answer };
  const c = answer.choice;
  const steer: ExplainedSteer = { status: 'steered', policy: answer.name };
  if (c?.link !== undefined) steer.link = c.link;
  if (c?.dscp !== undefined) steer.dscp = c.dscp;
  if (c?.reason !== undefined) steer.reason = c.reason;
  return { route, outcome: steer };
}
