/**
 * Finds the VirtualServices that own a request's authority, the way Envoy picks a virtual host:
 * an exact domain beats any wildcard, a longer wildcard suffix beats a shorter one, `*` comes last.
 * Only VirtualServices bound to the routing proxy (`mesh` for a sidecar, or a gateway) take part.
 * There is no fall-through: if the chosen VirtualService has no matching route, the answer is
 * "no match" even if a wildcard VirtualService would have matched.
 */
import { authorityCandidates, MESH_GATEWAY, parseAuthority, type ResolvedHost } from './hosts.js';
import type { CompiledVirtualService } from './compiled.js';

export interface HostEntry {
  /** The host as written in the VirtualService. */
  readonly written: string;
  readonly virtualService: CompiledVirtualService;
}

export interface HostSelection {
  /** The resolved domain that matched: an FQDN or a `*.suffix` wildcard. */
  readonly domain: string;
  /**
   * The VirtualServices whose routes apply, in order. A sidecar uses only the oldest one for a
   * host; a gateway merges them all (Istio's documented behaviour).
   */
  readonly entries: readonly HostEntry[];
  /** VirtualServices that claim the host too but lose to the oldest (sidecars only). */
  readonly shadowed: readonly HostEntry[];
}

export interface AuthorityLookup {
  readonly port: number | undefined;
  readonly selection: HostSelection | undefined;
  /** The FQDNs the authority was read as. */
  readonly candidates: readonly string[];
}

/** Memo size (namespaces, and authorities per namespace) before it starts over: bounds memory. */
const MEMO_LIMIT = 4096;

export class HostIndex {
  private readonly exact = new Map<string, HostEntry[]>();
  /** Sorted longest suffix first once built. */
  private wildcards: { suffix: string; entries: HostEntry[] }[] = [];
  /** gateway + source namespace → authority → lookup. */
  private readonly memo = new Map<string, Map<string, AuthorityLookup>>();

  constructor(private readonly clusterDomain: string) {}

  add(host: ResolvedHost, written: string, virtualService: CompiledVirtualService): void {
    const entry = { written, virtualService };
    if (host.kind === 'exact') {
      const list = this.exact.get(host.name) ?? [];
      if (!list.some((e) => e.virtualService === virtualService)) list.push(entry);
      this.exact.set(host.name, list);
      return;
    }
    let bucket = this.wildcards.find((w) => w.suffix === host.suffix);
    if (!bucket) {
      bucket = { suffix: host.suffix, entries: [] };
      this.wildcards.push(bucket);
      this.wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
    }
    if (!bucket.entries.some((e) => e.virtualService === virtualService)) bucket.entries.push(entry);
  }

  /** Looks an authority up; results are memoised because the index never changes once built. */
  lookup(authority: string, sourceNamespace: string, gateway: string): AuthorityLookup {
    // Sidecars are the common case: their memo is keyed by namespace alone, no string building.
    const scope = gateway === MESH_GATEWAY ? sourceNamespace : `${gateway}\u0000${sourceNamespace}`;
    let byAuthority = this.memo.get(scope);
    if (!byAuthority) {
      if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
      byAuthority = new Map();
      this.memo.set(scope, byAuthority);
    }
    let found = byAuthority.get(authority);
    if (!found) {
      if (byAuthority.size >= MEMO_LIMIT) byAuthority.clear();
      found = this.resolve(authority, sourceNamespace, gateway);
      byAuthority.set(authority, found);
    }
    return found;
  }

  private resolve(authority: string, sourceNamespace: string, gateway: string): AuthorityLookup {
    const { hostname, port } = parseAuthority(authority);
    const candidates = authorityCandidates(hostname, sourceNamespace, this.clusterDomain);
    for (const name of candidates) {
      const selection = select(name, this.exact.get(name), gateway);
      if (selection) return { port, candidates, selection };
    }
    for (const { suffix, entries } of this.wildcards) {
      // `*.example.com` needs at least one character before the suffix; `*` (suffix "") takes anything.
      if (!candidates.some((name) => name.length > suffix.length && name.endsWith(suffix))) continue;
      const selection = select(`*${suffix}`, entries, gateway);
      if (selection) return { port, candidates, selection };
    }
    return { port, candidates, selection: undefined };
  }
}

function select(domain: string, entries: readonly HostEntry[] | undefined, gateway: string): HostSelection | undefined {
  const bound = (entries ?? []).filter((e) => e.virtualService.gateways.has(gateway));
  if (bound.length === 0) return undefined;
  if (gateway !== MESH_GATEWAY) return { domain, entries: bound, shadowed: [] };
  return { domain, entries: bound.slice(0, 1), shadowed: bound.slice(1) };
}
