/**
 * Everything a policy must satisfy before any store keeps it: its name, the schema, and what
 * the schema cannot say — the mode's required parts, links this node has, one way of naming a
 * route — and, across policies, that no two take the same sessions (the same DSCP, or the same
 * route of a VirtualService, where "any route" overlaps every route of it).
 */
import { Value } from '@sinclair/typebox/value';
import { schemaProblems } from '../config/schema-errors.js';
import {
  PolicyDuplicateMatchError,
  PolicyInvalidError,
  PolicyLinkKindError,
  PolicyNameInvalidError,
  PolicyUnknownLinkError,
  type PolicyError,
} from './errors.js';
import { PolicyName, WanPolicySpec, type PolicyMatch } from './model.js';

export interface PolicyContext {
  /** The link names configured on this node. */
  readonly links: ReadonlySet<string>;
  /** Those of them that are internet links (own address, NAT on the node). */
  readonly internetLinks?: ReadonlySet<string>;
  /** The policies already stored; the one being replaced (same name) is skipped. */
  readonly others: Iterable<{ readonly name: string; readonly spec: WanPolicySpec }>;
}

/** Validates a whole write: name, spec, meaning, links, no duplicate match. Returns the typed spec. */
export function validatePolicy(name: string, input: unknown, context: PolicyContext): WanPolicySpec {
  const spec = checkPolicyItself(name, input);
  checkPolicyLinks(spec, context.links);
  checkLinkKinds(spec, context.internetLinks);
  const duplicate = findDuplicateMatch(name, spec, context.others);
  if (duplicate) throw duplicate;
  return spec;
}

/**
 * What a policy must satisfy on its own, whatever node and other policies it meets: its name, the
 * schema, the meaning. Stores that take objects written elsewhere (the cluster, a snapshot) check
 * this per object and leave links to the node and duplicates to the whole list.
 */
export function checkPolicyItself(name: string, input: unknown): WanPolicySpec {
  checkPolicyName(name);
  const spec = parsePolicySpec(input);
  checkPolicyMeaning(spec);
  return spec;
}

export function checkPolicyName(name: string): void {
  if (!Value.Check(PolicyName, name)) throw new PolicyNameInvalidError(JSON.stringify(name)).atField('name');
}

/** The schema check; the first problem is thrown with its field (`spec.action.dscp`). */
export function parsePolicySpec(input: unknown): WanPolicySpec {
  if (Value.Check(WanPolicySpec, input)) return input;
  const [first] = schemaProblems(WanPolicySpec, input);
  const field = first && first.field !== '(top level)' ? `spec.${first.field}` : 'spec';
  throw new PolicyInvalidError(first?.problem ?? 'is not a valid policy spec', first?.fix ?? 'see the WanPolicy reference').atField(field);
}

/** What the schema cannot express: each mode's parts, and one way of naming a route. */
export function checkPolicyMeaning(spec: WanPolicySpec): void {
  const { action, match } = spec;
  const redirects = action.mode !== 'mark';
  const marks = action.mode !== 'redirect';
  if (redirects && action.links.length === 0) {
    throw invalid('spec.action.links', `is empty, but mode ${action.mode} moves sessions to a link`, 'list at least one link, most preferred first');
  }
  if (!redirects && action.links.length > 0) {
    throw invalid('spec.action.links', 'lists links, but mode mark only sets a DSCP and never moves sessions', 'remove links, or use mode both to move them as well');
  }
  if (marks && action.dscp === undefined) {
    throw invalid('spec.action.dscp', `is missing, but mode ${action.mode} sets a DSCP`, 'give dscp from 0 to 63, e.g. 46 (EF)');
  }
  if (!marks && action.dscp !== undefined) {
    throw invalid('spec.action.dscp', 'is given, but mode redirect does not set a DSCP', 'remove dscp, or use mode both to set it as well');
  }
  if ('route' in match && match.route.route !== undefined && match.route.routeIndex !== undefined) {
    throw invalid('spec.match.route.routeIndex', 'is given together with route', 'name the http route either by route (its name) or by routeIndex, not both');
  }
}

export function checkPolicyLinks(spec: WanPolicySpec, links: ReadonlySet<string>): void {
  spec.action.links.forEach((link, i) => {
    if (!links.has(link)) {
      throw new PolicyUnknownLinkError(JSON.stringify(link), [...links].join(', ') || '(no links configured)').atField(`spec.action.links[${i}]`);
    }
  });
}

/**
 * What a node's internet links cannot do (docs/links.md, "Two kinds of WAN link"). A connection
 * on an internet link is bound to that link's address from its first packet: only a class known
 * before connect (mark mode, a DSCP set by the upstream socket) can choose its link. A route
 * (session mode) is known only after the handshake, so it cannot move a connection onto or
 * between internet links; and a preference mixing the two kinds would move connections between
 * a NATed path and one that is not.
 */
export function checkLinkKinds(spec: WanPolicySpec, internetLinks: ReadonlySet<string> | undefined): void {
  if (!internetLinks || internetLinks.size === 0 || spec.action.links.length === 0) return;
  const internet = spec.action.links.filter((l) => internetLinks.has(l));
  if (internet.length === 0) return;
  const i = spec.action.links.findIndex((l) => internetLinks.has(l));
  if ('route' in spec.match) {
    throw new PolicyLinkKindError(
      `a route-matched (session mode) policy cannot move connections onto internet link ${JSON.stringify(internet[0])}: a connection is bound to its link's address before its first request is seen`,
      'match by DSCP instead (mark mode: route the class to its own upstream cluster whose sockets set the DSCP, `wansteer render envoyfilter --mark-class`), or use overlay links',
    ).atField(`spec.action.links[${i}]`);
  }
  if (internet.length !== spec.action.links.length) {
    const j = spec.action.links.findIndex((l) => !internetLinks.has(l));
    throw new PolicyLinkKindError(
      `mixes internet links (${internet.join(', ')}) with overlay link ${JSON.stringify(spec.action.links[j])}`,
      'list links of one kind in a policy',
    ).atField(`spec.action.links[${j}]`);
  }
}

/** The error for the first other policy that takes the same sessions, if any. */
export function findDuplicateMatch(
  name: string,
  spec: WanPolicySpec,
  others: Iterable<{ readonly name: string; readonly spec: WanPolicySpec }>,
): PolicyError | undefined {
  for (const other of others) {
    if (other.name === name || !matchesOverlap(spec.match, other.spec.match)) continue;
    const fix = 'dscp' in spec.match
      ? `use another DSCP, or change policy ${other.name}`
      : `a route is steered by one policy only: change or delete policy ${other.name}, or match another route`;
    return new PolicyDuplicateMatchError(describeMatch(other.spec.match), other.name, fix).atField('spec.match');
  }
  return undefined;
}

/**
 * Policies already accepted, bucketed by what two policies can clash on — the same DSCP, or the
 * same VirtualService — so checking one more looks at its bucket only, not at every policy (a
 * store re-deriving 4096 policies would otherwise compare each with all before it). Answers as
 * findDuplicateMatch over all of them would: policies in other buckets never overlap.
 */
export class MatchIndex<P extends { readonly name: string; readonly spec: WanPolicySpec }> {
  private readonly buckets = new Map<string, P[]>();

  add(policy: P): void {
    const key = bucketOf(policy.spec.match);
    const bucket = this.buckets.get(key);
    if (bucket) bucket.push(policy);
    else this.buckets.set(key, [policy]);
  }

  /** The error for the first policy added that takes the same sessions as this one, if any. */
  duplicateOf(name: string, spec: WanPolicySpec): PolicyError | undefined {
    return findDuplicateMatch(name, spec, this.buckets.get(bucketOf(spec.match)) ?? []);
  }
}

function bucketOf(match: PolicyMatch): string {
  return 'dscp' in match ? `dscp ${match.dscp}` : `vs ${match.route.virtualService}`;
}

/** True when some session could be claimed by both matches. */
export function matchesOverlap(a: PolicyMatch, b: PolicyMatch): boolean {
  if ('dscp' in a || 'dscp' in b) return 'dscp' in a && 'dscp' in b && a.dscp === b.dscp;
  const [ra, rb] = [a.route, b.route];
  if (ra.virtualService !== rb.virtualService) return false;
  const anyA = ra.route === undefined && ra.routeIndex === undefined;
  const anyB = rb.route === undefined && rb.routeIndex === undefined;
  if (anyA || anyB) return true;
  // A route named in one and indexed in the other may be the same route; only the VirtualService
  // knows, and it may change, so that overlap is left to the steering engine to report.
  if (ra.route !== undefined && rb.route !== undefined) return ra.route === rb.route;
  if (ra.routeIndex !== undefined && rb.routeIndex !== undefined) return ra.routeIndex === rb.routeIndex;
  return false;
}

export function describeMatch(match: PolicyMatch): string {
  if ('dscp' in match) return `DSCP ${match.dscp}`;
  const { virtualService, route, routeIndex } = match.route;
  if (route !== undefined) return `route "${route}" of VirtualService ${virtualService}`;
  if (routeIndex !== undefined) return `route #${routeIndex} of VirtualService ${virtualService}`;
  return `every route of VirtualService ${virtualService}`;
}

function invalid(field: string, problem: string, fix: string): PolicyError {
  return new PolicyInvalidError(problem, fix).atField(field);
}
