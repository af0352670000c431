/**
 * Internet links (docs/links.md, "Two kinds of WAN link"): each has its own address and the node
 * NATs, so a connection is bound to one link before the kernel routes its first packet, and the
 * kernel's own engines do the per-link work. This file is the pure half: what the agent asks of
 * the kernel, as text — the nftables table and the `ip` commands — from the config and the
 * current class → link choices. routing.ts applies it.
 *
 * The path of a connection, and who does what:
 *
 *   first packet ─► nft prerouting (forwarded: pods) / output (local sockets), mangle priority:
 *                     arrived on an internet link  -> bound to that link (replies leave by it)
 *                     DSCP of a class              -> bound to the class's link
 *                   bound = the link's mark in the packet and in its conntrack entry (connmark)
 *   later packets ─► mark restored from conntrack, both directions
 *   routing       ─► ip rule fwmark <link mark> -> the link's table: default via the link's next hop
 *   postrouting   ─► masquerade marked packets to the address of the link they leave by
 *   failover      ─► the class's rule points at another link; the dead link's conntrack entries
 *                    are deleted, and a packet of such a connection is answered with a TCP reset
 *                    (the forward/output reset chains), so applications reconnect at once
 *
 * The agent owns the mark bits of internet.markMask: link i's mark is (i + 1) in those bits,
 * and the other bits of a mark are kept as they were. All of them set (the mask itself) marks
 * the agent's own packets that conntrack must not see (the resets' pokes, poke.ts).
 */

/** The nftables table the agent owns (family inet: IPv4 and IPv6). */
export const NFT_TABLE = 'wansteer';

/** How long a reset connection's 4-tuple stays in the dead sets. */
const DEAD_SECONDS = 30;

/** `proto` of the agent's routes and rules, so they are told apart from anyone else's. */
export const RT_PROTO = 87;

export interface InternetLink {
  /** The link's index in config.links (its link id everywhere in the agent). */
  id: number;
  name: string;
  interface: string;
  table: number;
  mark: number;
  nextHop4?: string;
  nextHop6?: string;
}

export interface InternetLayout {
  links: InternetLink[];
  mask: number;
  /** The first of the agent's rule priorities; link i's rule is rulePriority + 1 + i. */
  rulePriority: number;
}

/** A configured link, as the agent's config describes it (links[]). */
export interface LinkDescription {
  readonly name: string;
  readonly interface: string;
  readonly addressing?: 'overlay' | 'internet';
  readonly table?: number;
  readonly nextHop4?: string;
  readonly nextHop6?: string;
}

/** The config's `internet` section. */
export interface InternetSettings {
  readonly tableBase: number;
  readonly rulePriority: number;
  readonly markMask: number;
}

/**
 * The internet links among `links` (link ids are their positions), with their tables and marks;
 * null when none is an internet link. Called with the config's links and internet section.
 */
export function internetLayout(links: readonly LinkDescription[], settings: InternetSettings): InternetLayout | null {
  const mask = settings.markMask >>> 0;
  const shift = Math.log2(mask & -mask);
  const out: InternetLink[] = [];
  links.forEach((l, id) => {
    if (l.addressing !== 'internet') return;
    const link: InternetLink = { id, name: l.name, interface: l.interface, table: l.table ?? settings.tableBase + id, mark: ((id + 1) << shift) >>> 0 };
    if (l.nextHop4 !== undefined) link.nextHop4 = l.nextHop4;
    if (l.nextHop6 !== undefined) link.nextHop6 = l.nextHop6;
    out.push(link);
  });
  return out.length > 0 ? { links: out, mask, rulePriority: settings.rulePriority } : null;
}

export const hex = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/** Set the link's bits of the mark, keep the others: `meta mark set meta mark & ~mask | link`. */
function setMark(what: 'meta' | 'ct', layout: InternetLayout, link: InternetLink): string {
  return `${what} mark set ${what} mark & ${hex(~layout.mask)} | ${hex(link.mark)}`;
}

/** The rules of the `classes` chain: each DSCP class bound to its link's chain. */
function classRules(layout: InternetLayout, classes: ReadonlyMap<number, number>): string[] {
  const ids = new Set(layout.links.map((l) => l.id));
  const out: string[] = [];
  for (const [dscp, linkId] of [...classes].sort((a, b) => a[0] - b[0])) {
    if (!ids.has(linkId) || !Number.isInteger(dscp) || dscp < 0 || dscp > 63) continue;
    // The comment carries the class as a number: nft lists DSCP values by name (af11, ef).
    out.push(`ip dscp ${dscp} goto bind_${linkId} comment "class ${dscp}"`, `ip6 dscp ${dscp} goto bind_${linkId} comment "class ${dscp}"`);
  }
  return out;
}

/**
 * The whole table, replacing whatever table of that name is there, in one transaction: no
 * packet sees half of it.
 */
export function rulesetScript(layout: InternetLayout, classes: ReadonlyMap<number, number>): string {
  const m = hex(layout.mask);
  const chain = (name: string, rules: string[], hook?: string) =>
    [`  chain ${name} {`, ...(hook ? [`    ${hook}`] : []), ...rules.map((r) => `    ${r}`), '  }'].join('\n');
  const chains: string[] = [];
  for (const l of layout.links) {
    chains.push(chain(`bind_${l.id}`, [`${setMark('meta', layout, l)} comment "${l.name}"`, setMark('ct', layout, l)]));
    chains.push(chain(`mark_${l.id}`, [`${setMark('meta', layout, l)} comment "${l.name}"`]));
  }
  const vmap = (entries: string[]) => `{ ${entries.join(', ')} }`;
  const restore = vmap(layout.links.map((l) => `${hex(l.mark)} : goto mark_${l.id}`));
  const arrival = vmap(layout.links.map((l) => `"${l.interface}" : goto bind_${l.id}`));
  const ifnames = `{ ${layout.links.map((l) => `"${l.interface}"`).join(', ')} }`;
  // A packet that opens no connection yet its conntrack entry is new: the entry was deleted on
  // failover. Its NAT binding is gone with it, so the connection cannot go on: reset it now.
  // The dead sets name such connections exactly (poke.ts), marked or not.
  const reset = [
    `ct state new meta mark & ${m} != 0 tcp flags & (syn | ack | rst) != syn reject with tcp reset`,
    'ct state new ip saddr . tcp sport . ip daddr . tcp dport @dead4 reject with tcp reset',
    'ct state new ip6 saddr . tcp sport . ip6 daddr . tcp dport @dead6 reject with tcp reset',
  ];
  const deadSet = (family: 4 | 6) => {
    const addr = family === 4 ? 'ipv4_addr' : 'ipv6_addr';
    return `  set dead${family} {\n    type ${addr} . inet_service . ${addr} . inet_service\n    flags timeout\n    timeout ${DEAD_SECONDS}s\n  }`;
  };
  chains.push(
    chain('restore', [`ct mark & ${m} vmap ${restore}`]),
    chain('classes', classRules(layout, classes)),
    chain('prerouting', [`ct mark & ${m} != 0 goto restore`, 'ct state != new return', `iifname vmap ${arrival}`, 'goto classes'], 'type filter hook prerouting priority mangle; policy accept;'),
    chain('output', [`ct mark & ${m} != 0 goto restore`, 'ct state != new return', 'goto classes'], 'type route hook output priority mangle; policy accept;'),
    chain('forward_reset', reset, 'type filter hook forward priority filter; policy accept;'),
    chain('output_reset', reset, 'type filter hook output priority filter; policy accept;'),
    chain('raw_output', [`meta mark ${m} notrack`], 'type filter hook output priority raw; policy accept;'),
    chain('postrouting', [`meta mark & ${m} != 0 oifname ${ifnames} masquerade`], 'type nat hook postrouting priority srcnat; policy accept;'),
  );
  return [
    `add table inet ${NFT_TABLE}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    `  comment "wansteer: internet links (docs/links.md); managed by the agent"`,
    deadSet(4),
    deadSet(6),
    ...chains,
    '}',
    '',
  ].join('\n');
}

/** Replace only the class rules (a policy moved, a link failed): one small transaction. */
export function classesScript(layout: InternetLayout, classes: ReadonlyMap<number, number>): string {
  return [`flush chain inet ${NFT_TABLE} classes`, ...classRules(layout, classes).map((r) => `add rule inet ${NFT_TABLE} classes ${r}`), ''].join('\n');
}

/** The class → link id map a `classes` chain holds (from `nft -j list chain`), to adopt it on restart. */
export function parseClasses(json: string): Map<number, number> {
  const out = new Map<number, number>();
  let doc: { nftables?: { rule?: { expr?: unknown[]; comment?: string } }[] };
  try {
    doc = JSON.parse(json) as typeof doc;
  } catch {
    return out;
  }
  for (const item of doc.nftables ?? []) {
    const rule = item.rule;
    if (!rule) continue;
    const dscp = /^class (\d+)$/.exec(rule.comment ?? '');
    const target = /"goto":\{"target":"bind_(\d+)"\}/.exec(JSON.stringify(rule.expr ?? []));
    if (dscp && target) out.set(Number(dscp[1]), Number(target[1]));
  }
  return out;
}

/**
 * The agent's policy rules, for `ip -4|-6 -batch`: marked traffic first looks in main without
 * main's default route (so local and connected destinations stay where they are), then in its
 * link's table.
 */
export function ruleLines(layout: InternetLayout): string[] {
  const m = hex(layout.mask);
  return [
    `rule add pref ${layout.rulePriority} not fwmark 0/${m} lookup main suppress_prefixlength 0 proto ${RT_PROTO}`,
    ...layout.links.map((l) => `rule add pref ${layout.rulePriority + 1 + l.id} fwmark ${hex(l.mark)}/${m} lookup ${l.table} proto ${RT_PROTO}`),
  ];
}

/** The priorities the agent's rules sit at. */
export function rulePriorities(layout: InternetLayout): number[] {
  return [layout.rulePriority, ...layout.links.map((l) => layout.rulePriority + 1 + l.id)];
}
