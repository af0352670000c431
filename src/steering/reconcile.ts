/**
 * Reconcile: the datapath's link, policy and DSCP entries as a function of the configured
 * links, their health and the policies — and the smallest set of writes that makes the
 * datapath match. Flows are not part of it: they point at policies, so moving every session
 * of a policy to another link is one policy write, whatever the number of flows.
 *
 *   desiredState(links, policies) -> DesiredState           (pure)
 *   planChanges(desired, actual)  -> Change[]               (pure: only what differs)
 *   applyChanges(datapath, plan)                            (the one place that writes)
 *
 * The link a policy takes: the first link of its preference that is usable (interface found,
 * health up) and meets the policy's SLA — a link ahead of the one carrying the policy now must
 * meet it with a margin (SLA_MARGIN), so measurements hovering at a bound do not move every
 * session back and forth; failing that, the usable one that breaks the fewest
 * of the SLA's bounds, the first in preference on a tie (a degraded link beats none); failing that, the policy still names its first preferred link, whose entry is
 * down or unset, so the datapath passes the packets on their original path (counted as
 * link_down / link_unset) — sessions are never black-holed, and a DSCP the policy sets is
 * still set. Links are written before policies, so a policy never points at a link that is
 * up in the datapath but not yet meant to be.
 */
import type { DatapathPort, LinkEntry, PolicyAction as DatapathAction } from '../datapath/index.js';
import type { Sla, WanPolicySpec } from '../policies/model.js';

/** A configured link and what is known about it now. Link ids: position in config.links. */
export interface LinkInput {
  id: number;
  name: string;
  /** Null when the interface does not exist (or its entry cannot be written). */
  ifindex: number | null;
  nextHop4?: string;
  nextHop6?: string;
  /** Health: carrier and probes say it can carry traffic. */
  up: boolean;
  /** An internet link: its own address, NAT on the node; chosen per connection before routing. */
  internet?: boolean;
  rttMs?: number;
  lossPercent?: number;
  jitterMs?: number;
}

export interface PolicyInput {
  name: string;
  /** Datapath id; null when none could be assigned (then the policy gets no entry). */
  id: number | null;
  spec: WanPolicySpec;
  /** The link carrying the policy's traffic now (the last choice), if any. */
  current?: string;
}

/** What a policy gets now, and why. */
export interface PolicyChoice {
  id: number | null;
  /** The datapath entry; absent: the policy cannot be expressed, it gets no entry. */
  action?: DatapathAction;
  /** The link carrying the policy's traffic now (usable), if any. */
  link?: string;
  /** False when the chosen link is the fallback that misses the SLA. */
  slaMet?: boolean;
  dscp?: number;
  /** For people: why this choice. */
  reason: string;
}

export interface DesiredState {
  /** Link id -> entry; null: the link has no usable interface, any existing entry must be down. */
  links: Map<number, LinkEntry | null>;
  policies: Map<number, DatapathAction>;
  /** DSCP -> policy id (mark mode). */
  dscp: Map<number, number>;
  /**
   * DSCP -> internet link id: the link new connections of a mark-mode class are bound to
   * (internet links are chosen before routing, not by the BPF program). A class whose policy has
   * no usable internet link is absent: its connections take the node's default route.
   */
  classes: Map<number, number>;
  choices: Map<string, PolicyChoice>;
  /** Problems a person should hear about (e.g. two policies claiming one DSCP). */
  warnings: string[];
}

export function usable(link: LinkInput): boolean {
  return link.up && link.ifindex !== null;
}

/**
 * The share of each SLA bound a link must stay under to take a policy back from a link behind
 * it in the preference: with a 50 ms RTT bound, a link that lost the policy at 51 ms wins it
 * back under 45 ms. The link carrying the policy keeps it up to the bound itself.
 */
export const SLA_MARGIN = 0.1;

/**
 * Whether the link's measurements are within the SLA's bounds, each shrunk by `margin` (a
 * share of the bound). Unknown measurements meet any SLA: a link is not judged before it is
 * measured.
 */
export function meetsSla(link: LinkInput, sla: Sla | undefined, margin = 0): boolean {
  if (!sla) return true;
  const within = (value: number | undefined, bound: number | undefined) => bound === undefined || value === undefined || value <= bound * (1 - margin);
  return within(link.rttMs, sla.maxRttMs) && within(link.lossPercent, sla.maxLossPercent) && within(link.jitterMs, sla.maxJitterMs);
}

/** For people: which of the SLA's bounds (shrunk by `margin`) the link breaks, e.g. `RTT 81 ms > 50 ms`. */
export function slaBreaches(link: LinkInput, sla: Sla | undefined, margin = 0): string[] {
  if (!sla) return [];
  const out: string[] = [];
  const check = (what: string, value: number | undefined, bound: number | undefined, unit: string) => {
    if (bound === undefined || value === undefined) return;
    const limit = bound * (1 - margin);
    if (value > limit) out.push(`${what} ${value}${unit} > ${round(limit)}${unit}${margin > 0 ? ` (${bound}${unit} less the ${margin * 100}% margin)` : ''}`);
  };
  check('RTT', link.rttMs, sla.maxRttMs, ' ms');
  check('loss', link.lossPercent, sla.maxLossPercent, '%');
  check('jitter', link.jitterMs, sla.maxJitterMs, ' ms');
  return out;
}

const round = (x: number) => Math.round(x * 1000) / 1000;

/** How many of the SLA's bounds (RTT, loss, jitter) the link's measurements break. */
export function slaMisses(link: LinkInput, sla: Sla | undefined): number {
  if (!sla) return 0;
  let n = 0;
  if (sla.maxRttMs !== undefined && link.rttMs !== undefined && link.rttMs > sla.maxRttMs) n++;
  if (sla.maxLossPercent !== undefined && link.lossPercent !== undefined && link.lossPercent > sla.maxLossPercent) n++;
  if (sla.maxJitterMs !== undefined && link.jitterMs !== undefined && link.jitterMs > sla.maxJitterMs) n++;
  return n;
}

/**
 * When no usable link meets the SLA: the usable link that breaks the fewest of its bounds, the
 * earlier in the preference on a tie. Not "lowest RTT/loss": two links that both miss the SLA
 * would swap places on every wobble of their measurements, and each swap moves every session.
 */
function bestAvailable(prefs: readonly LinkInput[], sla: Sla | undefined): LinkInput | undefined {
  let best: LinkInput | undefined;
  let bestMisses = Infinity;
  for (const l of prefs) {
    if (!usable(l)) continue;
    const m = slaMisses(l, sla);
    if (m < bestMisses) {
      best = l;
      bestMisses = m;
    }
  }
  return best;
}

/**
 * Remembers each policy's choice between calls. A choice depends only on the policy (its spec,
 * id and current link) and on the links; while the links are as they were, a policy that did
 * not change keeps its choice, so taking in a burst of new policies costs what is new, not a
 * fresh choice (and its reason text) for each of thousands.
 */
export class ChoiceMemo {
  private linksKey = '';
  private readonly byName = new Map<string, { spec: WanPolicySpec; id: number | null; current: string | undefined; choice: PolicyChoice }>();

  choose(p: PolicyInput, links: ReadonlyMap<string, LinkInput>, linksKey: string): PolicyChoice {
    if (linksKey !== this.linksKey) {
      this.byName.clear();
      this.linksKey = linksKey;
    }
    const known = this.byName.get(p.name);
    if (known && known.spec === p.spec && known.id === p.id && known.current === p.current) return known.choice;
    const choice = choose(p, links);
    this.byName.set(p.name, { spec: p.spec, id: p.id, current: p.current, choice });
    return choice;
  }

  /** Forget policies no longer given (called with the names of the last call). */
  keepOnly(names: Pick<ReadonlySet<string>, 'has'>): void {
    for (const name of this.byName.keys()) if (!names.has(name)) this.byName.delete(name);
  }
}

/** Everything about the links a choice depends on, as one string. */
function linksKeyOf(links: readonly LinkInput[]): string {
  return links.map((l) => `${l.id} ${l.name} ${l.ifindex} ${l.up} ${l.rttMs} ${l.lossPercent} ${l.jitterMs} ${l.nextHop4} ${l.nextHop6} ${l.internet}`).join('\n');
}

export function desiredState(links: readonly LinkInput[], policies: readonly PolicyInput[], memo?: ChoiceMemo): DesiredState {
  const out: DesiredState = { links: new Map(), policies: new Map(), dscp: new Map(), classes: new Map(), choices: new Map(), warnings: [] };
  const byName = new Map<string, LinkInput>();
  for (const l of links) {
    byName.set(l.name, l);
    out.links.set(l.id, l.ifindex === null ? null : linkEntry(l));
  }
  const linksKey = memo ? linksKeyOf(links) : '';
  const sorted = [...policies].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const p of sorted) {
    const choice = memo ? memo.choose(p, byName, linksKey) : choose(p, byName);
    out.choices.set(p.name, choice);
    if (p.id === null || !choice.action) continue;
    out.policies.set(p.id, choice.action);
    const match = p.spec.match;
    if ('dscp' in match) {
      const owner = out.dscp.get(match.dscp);
      if (owner === undefined) {
        out.dscp.set(match.dscp, p.id);
        const link = choice.link !== undefined ? byName.get(choice.link) : undefined;
        if (link?.internet) out.classes.set(match.dscp, link.id);
      } else out.warnings.push(`policy ${p.name} matches DSCP ${match.dscp}, already taken by an earlier policy (by name): ignored`);
    }
  }
  return out;
}

function linkEntry(l: LinkInput): LinkEntry {
  const e: LinkEntry = { ifindex: l.ifindex!, up: l.up };
  if (l.internet) e.internet = true;
  if (l.nextHop4 !== undefined) e.nextHop4 = l.nextHop4;
  if (l.nextHop6 !== undefined) e.nextHop6 = l.nextHop6;
  return e;
}

function choose(p: PolicyInput, links: ReadonlyMap<string, LinkInput>): PolicyChoice {
  const { mode, sla } = p.spec.action;
  const dscp = mode === 'redirect' ? undefined : p.spec.action.dscp;
  const base = { id: p.id, ...(dscp !== undefined ? { dscp } : {}) };
  if (p.id === null) return { ...base, reason: 'no datapath id could be assigned (all ids in use)' };
  if (mode === 'mark') {
    if (dscp === undefined) return { ...base, reason: 'mark mode without a dscp: nothing to do' };
    return { ...base, action: { dscp }, reason: `marks DSCP ${dscp}` };
  }
  const prefs = p.spec.action.links.map((n) => links.get(n)).filter((l): l is LinkInput => l !== undefined);
  const withDscp = (a: DatapathAction): DatapathAction => (dscp !== undefined ? { ...a, dscp } : a);
  const at = p.current === undefined ? -1 : prefs.findIndex((l) => l.name === p.current);
  const marginOf = (i: number) => (i < at ? SLA_MARGIN : 0);
  const goodAt = prefs.findIndex((l, i) => usable(l) && meetsSla(l, sla, marginOf(i)));
  // Why each link ahead of the choice was passed over: down, or the SLA bounds it breaks.
  const passed = (upTo: number) =>
    prefs
      .slice(0, upTo)
      .map((l, i) => `${l.name}: ${usable(l) ? slaBreaches(l, sla, marginOf(i)).join(', ') : 'not usable'}`)
      .join('; ');
  if (goodAt >= 0) {
    const good = prefs[goodAt]!;
    const reason = goodAt === 0 ? `first usable link of its preference: ${good.name}` : `${good.name}, first of its preference that is usable and meets its SLA (${passed(goodAt)})`;
    return { ...base, action: withDscp({ redirectLink: good.id }), link: good.name, slaMet: true, reason };
  }
  const degraded = bestAvailable(prefs, sla);
  if (degraded) {
    return { ...base, action: withDscp({ redirectLink: degraded.id }), link: degraded.name, slaMet: false, reason: `no link meets the SLA (${passed(prefs.length)}); best usable: ${degraded.name}` };
  }
  const first = prefs[0];
  if (first) {
    return { ...base, action: withDscp({ redirectLink: first.id }), reason: `no preferred link is usable: packets pass on their original path (via down link ${first.name})` };
  }
  if (dscp !== undefined) return { ...base, action: { dscp }, reason: 'no preferred link is configured: marks only' };
  return { ...base, reason: 'none of its links is configured on this node' };
}

// ---- plan ------------------------------------------------------------------------------

export type Change =
  | { op: 'set-link'; id: number; entry: LinkEntry }
  | { op: 'set-policy'; id: number; action: DatapathAction }
  | { op: 'set-dscp'; dscp: number; policyId: number | null }
  | { op: 'delete-policy'; id: number };

/** The datapath as read now. Without policies/dscp those tables are left alone (sources not synced). */
export interface ActualState {
  links: ReadonlyMap<number, LinkEntry>;
  policies?: ReadonlyMap<number, DatapathAction>;
  dscp?: ReadonlyMap<number, number>;
}

/** Writes that make `actual` equal `desired`, in a safe order: links, policies, DSCP, deletions. */
export function planChanges(desired: DesiredState, actual: ActualState): Change[] {
  const out: Change[] = [];
  for (const [id, entry] of desired.links) {
    const have = actual.links.get(id);
    if (entry === null) {
      if (have?.up) out.push({ op: 'set-link', id, entry: { ...have, up: false } });
    } else if (!sameLink(have, entry)) {
      out.push({ op: 'set-link', id, entry });
    }
  }
  // Slots no configured link owns (a link removed from the config): never leave one up.
  for (const [id, have] of actual.links) {
    if (!desired.links.has(id) && have.up) out.push({ op: 'set-link', id, entry: { ...have, up: false } });
  }
  if (actual.policies) {
    for (const [id, action] of desired.policies) {
      if (!sameAction(actual.policies.get(id), action)) out.push({ op: 'set-policy', id, action });
    }
  }
  if (actual.dscp) {
    for (const [dscp, id] of desired.dscp) if (actual.dscp.get(dscp) !== id) out.push({ op: 'set-dscp', dscp, policyId: id });
    for (const dscp of actual.dscp.keys()) if (!desired.dscp.has(dscp)) out.push({ op: 'set-dscp', dscp, policyId: null });
  }
  if (actual.policies) {
    for (const id of actual.policies.keys()) if (!desired.policies.has(id)) out.push({ op: 'delete-policy', id });
  }
  return out;
}

export function sameLink(a: LinkEntry | undefined, b: LinkEntry): boolean {
  return a !== undefined && a.ifindex === b.ifindex && a.up === b.up && a.nextHop4 === b.nextHop4 && a.nextHop6 === b.nextHop6 && !a.internet === !b.internet;
}

export function sameAction(a: DatapathAction | undefined, b: DatapathAction): boolean {
  return a !== undefined && a.redirectLink === b.redirectLink && a.dscp === b.dscp;
}

/** Same entries for every table: nothing to write if `b` was applied. */
export function sameDesired(a: DesiredState, b: DesiredState): boolean {
  if (a.links.size !== b.links.size || a.policies.size !== b.policies.size || a.dscp.size !== b.dscp.size || a.classes.size !== b.classes.size) return false;
  for (const [id, e] of a.links) {
    const o = b.links.get(id);
    if (o === undefined || (e === null ? o !== null : o === null || !sameLink(o, e))) return false;
  }
  for (const [id, act] of a.policies) if (!sameAction(b.policies.get(id), act)) return false;
  for (const [dscp, id] of a.dscp) if (b.dscp.get(dscp) !== id) return false;
  for (const [dscp, id] of a.classes) if (b.classes.get(dscp) !== id) return false;
  return true;
}

/**
 * The links the datapath redirected some policy's traffic to in `actual` and, once `desired` is
 * written, no longer redirects that policy's traffic to: the link goes down, or the policy moves
 * elsewhere (also a link that was up and is now down with no policy on it). Their neighbour
 * entries may hold packets redirected before the write. Returns each link's id and the ifindex
 * the datapath had for it.
 */
export function linksLeft(actual: ActualState, desired: DesiredState): { id: number; ifindex: number }[] {
  const left = new Map<number, number>();
  for (const [id, have] of actual.links) {
    if (!have.up) continue;
    const want = desired.links.get(id);
    if (!want || !want.up || want.ifindex !== have.ifindex) left.set(id, have.ifindex);
  }
  for (const [pid, had] of actual.policies ?? []) {
    const link = had.redirectLink;
    if (link === undefined || left.has(link)) continue;
    const have = actual.links.get(link);
    if (have?.up && desired.policies.get(pid)?.redirectLink !== link) left.set(link, have.ifindex);
  }
  return [...left].map(([id, ifindex]) => ({ id, ifindex }));
}

/** Which table a change writes: the label of the write-error metric. */
export type Table = 'links' | 'policies' | 'dscp' | 'flows' | 'classes' | 'neighbours';

export function tableOf(c: Change): Table {
  return c.op === 'set-link' ? 'links' : c.op === 'set-dscp' ? 'dscp' : 'policies';
}

/** Apply `plan` in order. A failed write is reported and the rest still applied; returns the failures. */
export function applyChanges(dp: DatapathPort, plan: readonly Change[], onError: (change: Change, err: Error) => void): number {
  let failed = 0;
  for (const c of plan) {
    try {
      if (c.op === 'set-link') dp.setLink(c.id, c.entry);
      else if (c.op === 'set-policy') dp.setPolicy(c.id, c.action);
      else if (c.op === 'set-dscp') dp.setDscpPolicy(c.dscp, c.policyId);
      else dp.deletePolicy(c.id);
    } catch (err) {
      failed++;
      onError(c, err as Error);
    }
  }
  return failed;
}
