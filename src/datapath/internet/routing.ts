/**
 * The kernel side of internet links (layout.ts says what and why): routing tables and rules
 * through `ip`, the nftables table through libnftables in-process, conntrack over ctnetlink.
 *
 *   const routing = InternetRouting.install(layout, config, { log });   // checks, then installs or adopts
 *   routing.setClasses(new Map([[10, 1]]));     // DSCP 10 -> link 1, for new connections
 *   routing.resetConnections(1);                // link 1 died: its connections get a reset
 *   routing.refreshLink(1);                     // link 1 is back: its route into its table again
 *   routing.close();                            // the agent stops: everything stays in force
 *   InternetRouting.remove(layout);             // uninstall (wansteer cleanup): everything goes
 *
 * Everything is checked before anything is written: an interface without an address, a table or
 * rule priority someone else uses, nftables missing — each stops the start with an
 * InternetLinkError naming the field and the fix, and nothing is installed. A restarted agent
 * adopts what it finds (same rules, same table, the class rules as they were until the policies
 * arrive), so a restart moves no connection.
 */
import { silentLogger, type Logger } from '../../base/logger.js';
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { closeConntrackSocket, dumpConntrackByMark, flushConntrackByMark, openConntrackSocket } from '../../../native/conntrack.js';
import { closeRawSocket, openRawSocket, sendRaw } from '../../../native/raw.js';
import { closeNftContext, openNftContext, runNft, type NftContext } from '../../../native/nftables.js';
import { parseAddress } from '../addr.js';
import { describeErrno } from '../errors.js';
import { InternetErrorCode as Code, InternetLinkError } from './errors.js';
import { classesScript, hex, NFT_TABLE, parseClasses, RT_PROTO, ruleLines, rulePriorities, rulesetScript, type InternetLayout, type InternetLink } from './layout.js';
import { deadConnections, deadSetScript, fmt, pokePacket } from './poke.js';

type Family = 4 | 6;

/** One link's route into its table, per family it has an address in. */
interface LinkRoutes {
  link: InternetLink;
  /** `route replace …` lines per family (absent: no address of that family). */
  routes: Partial<Record<Family, string>>;
}


function ip(args: string[], input?: string): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input });
}

function ipJson<T>(args: string[]): T[] {
  return JSON.parse(ip(['-j', ...args]) || '[]') as T[];
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr || e.message || String(err)).trim().split('\n')[0]!;
}

interface RuleJson {
  priority: number;
  not?: null;
  fwmark?: string;
  fwmask?: string;
  table?: string;
  suppress_prefixlen?: number;
  protocol?: string;
}

interface RouteJson {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
}

export class InternetRouting {
  private classes = new Map<number, number>();
  private closed = false;
  /** Raw sockets for the resets' pokes, per family (-1: none; the resets then wait for the inside end to send). */
  private readonly raw: Record<4 | 6, number> = { 4: -1, 6: -1 };

  private constructor(
    private readonly layout: InternetLayout,
    private readonly nft: NftContext,
    private readonly conntrack: number,
    private readonly routes: Map<number, LinkRoutes>,
    private readonly log: Logger,
  ) {}

  /**
   * Everything install() checks, without writing anything: the agent asks this before it
   * touches the datapath, so a link it cannot set up stops it with nothing installed at all.
   */
  static check(layout: InternetLayout): void {
    const nft = openNftContext();
    if (!nft) throw nftablesMissing();
    closeNftContext(nft);
    const routes = layout.links.map(planLinkRoutes);
    checkRules(layout);
    for (const r of routes) checkTable(r);
  }

  /**
   * Check everything, then install (or adopt) the links' tables, rules and the nftables table.
   * Throws InternetLinkError before writing anything when a check fails.
   */
  static install(layout: InternetLayout, opts: { log?: Logger } = {}): InternetRouting {
    const log = opts.log ?? silentLogger;
    const nft = openNftContext();
    if (!nft) throw nftablesMissing();
    let conntrack = -1;
    try {
      const routes = new Map(layout.links.map((l) => [l.id, planLinkRoutes(l)]));
      checkRules(layout);
      for (const r of routes.values()) checkTable(r);
      conntrack = openConntrackSocket();
      if (conntrack < 0) {
        throw new InternetLinkError(Code.NFTABLES, 'links[].addressing', `cannot open a conntrack netlink socket: ${describeErrno(-conntrack)}`, 'run the agent with CAP_NET_ADMIN in the node\'s network namespace');
      }
      const routing = new InternetRouting(layout, nft, conntrack, routes, log);
      routing.apply();
      routing.openRawSockets();
      return routing;
    } catch (err) {
      if (conntrack >= 0) closeConntrackSocket(conntrack);
      closeNftContext(nft);
      throw err;
    }
  }

  /** Remove the agent's rules, routes and nftables table (uninstall). Missing pieces are fine. */
  static remove(layout: InternetLayout): void {
    const nft = openNftContext();
    if (nft) {
      runNft(nft, `delete table inet ${NFT_TABLE}\n`);
      closeNftContext(nft);
    }
    for (const fam of ['-4', '-6']) {
      for (const pref of rulePriorities(layout)) {
        for (const r of ipJson<RuleJson>([fam, 'rule', 'show', 'pref', String(pref)])) {
          if (r.protocol === String(RT_PROTO)) ip([fam, 'rule', 'del', 'pref', String(pref), 'proto', String(RT_PROTO)]);
        }
      }
      for (const l of layout.links) {
        try {
          ip([fam, 'route', 'flush', 'table', String(l.table), 'proto', String(RT_PROTO)]);
        } catch {
          /* table empty */
        }
      }
    }
  }

  private apply(): void {
    const fresh = !this.tableExists();
    try {
      this.installRoutes();
      this.installRules();
      this.classes = fresh ? new Map() : this.adoptedClasses();
      this.runNft(rulesetScript(this.layout, this.classes), 'install the nftables table');
      // Strict reverse-path filtering checks a reply against the table its mark selects.
      for (const l of this.layout.links) {
        try {
          writeFileSync(`/proc/sys/net/ipv4/conf/${l.interface}/src_valid_mark`, '1');
        } catch (err) {
          this.log.warn({ link: l.name, err }, 'could not set src_valid_mark: strict rp_filter may drop replies on this link');
        }
      }
    } catch (err) {
      // A first install that failed half-way leaves nothing; an adopted one is left as it ran.
      if (fresh) InternetRouting.remove(this.layout);
      throw err;
    }
    this.log.info(
      { links: this.layout.links.map((l) => ({ link: l.name, table: l.table, mark: hex(l.mark), families: Object.keys(this.routes.get(l.id)!.routes) })), adopted: !fresh, classes: this.classes.size },
      fresh ? 'internet links installed' : 'internet links adopted',
    );
  }

  private tableExists(): boolean {
    return runNft(this.nft, `list table inet ${NFT_TABLE}\n`).rc === 0;
  }

  /** The class rules a previous agent left, for links this config still has as internet links. */
  private adoptedClasses(): Map<number, number> {
    const listed = runNft(this.nft, `list chain inet ${NFT_TABLE} classes\n`, { json: true });
    const ids = new Set(this.layout.links.map((l) => l.id));
    const out = new Map<number, number>();
    for (const [dscp, link] of listed.rc === 0 ? parseClasses(listed.output) : []) if (ids.has(link)) out.set(dscp, link);
    return out;
  }

  private installRoutes(): void {
    for (const fam of [4, 6] as const) {
      const lines = [...this.routes.values()].flatMap((r) => (r.routes[fam] ? [r.routes[fam]!] : []));
      if (lines.length === 0) continue;
      try {
        ip([`-${fam}`, '-batch', '-'], lines.join('\n') + '\n');
      } catch (err) {
        throw new InternetLinkError(Code.ROUTING, 'links[]', `ip refused a route: ${stderrOf(err)}`, 'check the links\' next hops and interfaces');
      }
    }
  }

  /** Add each rule that is not there as wanted; a rule of ours that differs is replaced. */
  private installRules(): void {
    const wanted = ruleLines(this.layout);
    const prefs = rulePriorities(this.layout);
    for (const fam of [4, 6] as const) {
      const have = new Map<number, RuleJson[]>();
      for (const r of ipJson<RuleJson>([`-${fam}`, 'rule', 'show'])) {
        if (prefs.includes(r.priority)) have.set(r.priority, [...(have.get(r.priority) ?? []), r]);
      }
      const batch: string[] = [];
      prefs.forEach((pref, i) => {
        const existing = have.get(pref) ?? [];
        if (existing.length === 1 && sameRule(existing[0]!, wanted[i]!)) return;
        for (let k = 0; k < existing.length; k++) batch.push(`rule del pref ${pref} proto ${RT_PROTO}`);
        batch.push(wanted[i]!);
      });
      if (batch.length === 0) continue;
      try {
        ip([`-${fam}`, '-batch', '-'], batch.join('\n') + '\n');
      } catch (err) {
        throw new InternetLinkError(Code.ROUTING, 'internet.rulePriority', `ip refused a rule: ${stderrOf(err)}`, 'pick another internet.rulePriority');
      }
    }
  }

  private runNft(script: string, what: string): void {
    const r = runNft(this.nft, script);
    if (r.rc !== 0) {
      throw new InternetLinkError(Code.NFTABLES, 'links[].addressing', `nftables refused to ${what}: ${r.error.trim().split('\n')[0] ?? ''}`, 'check that the kernel has nf_tables, nf_nat and nf_conntrack (and the agent CAP_NET_ADMIN)');
    }
  }

  // ---- at run time -----------------------------------------------------------------------

  /** DSCP class -> internet link id for new connections: the whole set (a no-op when unchanged). */
  setClasses(classes: ReadonlyMap<number, number>): void {
    if (this.closed || sameClasses(classes, this.classes)) return;
    const r = runNft(this.nft, classesScript(this.layout, classes));
    if (r.rc !== 0) throw new Error(`nftables refused the class rules: ${r.error.trim()}`);
    this.classes = new Map(classes);
  }

  /** The class → link map in force. */
  classLinks(): ReadonlyMap<number, number> {
    return this.classes;
  }

  private openRawSockets(): void {
    for (const family of [4, 6] as const) {
      const fd = openRawSocket(family, this.layout.mask);
      if (fd >= 0) this.raw[family] = fd;
      else this.log.warn({ family, errno: describeErrno(-fd) }, 'no raw socket: connections of a dead link reset only when their inside end next sends');
    }
  }

  /**
   * Reset the connections bound to the link (its mark): they cannot move. Their conntrack
   * entries are deleted, their inside ends' 4-tuples go into the dead sets, and each inside end
   * is poked so it answers at once and takes the reset (poke.ts). Returns how many.
   */
  resetConnections(linkId: number): number {
    const link = this.layout.links.find((l) => l.id === linkId);
    if (!link || this.closed) return 0;
    const entries = dumpConntrackByMark(this.conntrack, link.mark, this.layout.mask);
    const rc = flushConntrackByMark(this.conntrack, link.mark, this.layout.mask);
    if (rc < 0) throw new Error(`conntrack flush of link ${link.name}: ${describeErrno(-rc)}`);
    if (typeof entries === 'number') {
      this.log.warn({ link: link.name, errno: describeErrno(-entries) }, 'could not list the connections of a dead link: they reset when they next send');
      return 0;
    }
    const local = localAddresses();
    const dead = deadConnections(entries, (a) => local.has(fmt(a)));
    const script = deadSetScript(dead);
    if (script) {
      const r = runNft(this.nft, script);
      if (r.rc !== 0) this.log.warn({ link: link.name, error: r.error.trim() }, 'could not name the dead connections for their reset');
    }
    for (const d of dead) {
      const fd = this.raw[d.family];
      if (fd >= 0) sendRaw(fd, d.family, pokePacket(d, randomInt(0, 2 ** 32)), d.inside.addr);
    }
    return entries.length;
  }

  /** Put the link's routes back into its table (gone when its interface went down or away). */
  refreshLink(linkId: number): void {
    const r = this.routes.get(linkId);
    if (!r || this.closed) return;
    for (const fam of [4, 6] as const) {
      if (r.routes[fam]) ip([`-${fam}`, ...r.routes[fam]!.split(' ')]);
    }
  }

  /** Let go of the sockets. The tables, rules and nftables table stay: the next agent adopts them. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of Object.values(this.raw)) if (fd >= 0) closeRawSocket(fd);
    closeConntrackSocket(this.conntrack);
    closeNftContext(this.nft);
  }
}

/** The node's own addresses, as fmt() writes them. */
function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      const parsed = parseAddress(a.address.split('%')[0]!);
      if (parsed) out.add(fmt(Buffer.from(parsed.family === 4 ? parsed.bytes.subarray(0, 4) : parsed.bytes)));
    }
  }
  return out;
}

function nftablesMissing(): InternetLinkError {
  return new InternetLinkError(Code.NFTABLES, 'links[].addressing', 'internet links need nftables, and libnftables.so.1 cannot be loaded', 'install nftables (Debian: apt-get install nftables), or make these links overlay links');
}

function sameClasses(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** Does an existing rule (ip -j) say what the wanted `rule add …` line says? */
function sameRule(have: RuleJson, line: string): boolean {
  const word = (w: string) => line.split(' ')[line.split(' ').indexOf(w) + 1];
  const [mark, mask] = (word('fwmark') ?? '').split('/');
  return (
    have.protocol === String(RT_PROTO) &&
    ('not' in have) === line.includes(' not ') &&
    BigInt(have.fwmark ?? '0') === BigInt(mark ?? '0') &&
    BigInt(have.fwmask ?? '0') === BigInt(mask ?? '0') &&
    have.table === word('lookup') &&
    (have.suppress_prefixlen ?? -1) === (line.includes('suppress_prefixlength') ? 0 : -1)
  );
}

/** Someone else's rule at one of our priorities stops the start. */
function checkRules(layout: InternetLayout): void {
  const prefs = new Set(rulePriorities(layout));
  for (const fam of ['-4', '-6']) {
    for (const r of ipJson<RuleJson>([fam, 'rule', 'show'])) {
      if (prefs.has(r.priority) && r.protocol !== String(RT_PROTO)) {
        throw new InternetLinkError(
          Code.RULE_TAKEN,
          'internet.rulePriority',
          `priority ${r.priority} already holds a rule the agent did not make (${fam === '-4' ? 'IPv4' : 'IPv6'}: lookup ${r.table ?? '?'})`,
          `pick an internet.rulePriority whose ${layout.links.length + 1} priorities from it are free (see \`ip rule\`)`,
        );
      }
    }
  }
}

/** A table holding routes the agent did not make stops the start. */
function checkTable(r: LinkRoutes): void {
  for (const fam of ['-4', '-6']) {
    let routes: RouteJson[] = [];
    try {
      routes = ipJson<RouteJson>([fam, 'route', 'show', 'table', String(r.link.table)]);
    } catch {
      /* no such table yet */
    }
    const foreign = routes.find((x) => x.protocol !== String(RT_PROTO));
    if (foreign) {
      throw new InternetLinkError(
        Code.TABLE_TAKEN,
        `links[${r.link.id}].table`,
        `routing table ${r.link.table} of link ${r.link.name} already holds a route the agent did not make (${foreign.dst}${foreign.dev ? ` dev ${foreign.dev}` : ''})`,
        'give the link a free table (links[].table) or move internet.tableBase',
      );
    }
  }
}

/** The interface must exist and have an address; each family with an address gets a default route. */
function planLinkRoutes(link: InternetLink): LinkRoutes {
  let info: { link_type?: string; addr_info?: { family: string; local: string; scope?: string }[] }[];
  try {
    info = ipJson(['addr', 'show', 'dev', link.interface]);
  } catch {
    throw new InternetLinkError(Code.NO_INTERFACE, `links[${link.id}].interface`, `interface ${link.interface} of link ${link.name} does not exist in the agent's network namespace`, 'name an existing interface (`ip link`), or start the agent once it exists');
  }
  const dev = info[0];
  const addresses = (dev?.addr_info ?? []).filter((a) => a.scope === 'global');
  const families = new Set(addresses.map((a) => (a.family === 'inet6' ? 6 : 4)));
  if (families.size === 0) {
    throw new InternetLinkError(Code.NO_ADDRESS, `links[${link.id}].interface`, `interface ${link.interface} of internet link ${link.name} has no global address to masquerade connections to`, 'give the interface its ISP address (DHCP, PPP or static), or make the link an overlay link');
  }
  const routes: LinkRoutes['routes'] = {};
  for (const fam of [...families].sort()) {
    const field = fam === 4 ? 'nextHop4' : 'nextHop6';
    const via = (fam === 4 ? link.nextHop4 : link.nextHop6) ?? mainGateway(link.interface, fam);
    if (!via && dev?.link_type === 'ether') {
      throw new InternetLinkError(Code.NO_NEXT_HOP, `links[${link.id}].${field}`, `internet link ${link.name} has an IPv${fam} address but no next hop, and the main table has no default route through ${link.interface}`, `give the ISP router's address in ${field}`);
    }
    routes[fam] = `route replace default ${via ? `via ${via} ` : ''}dev ${link.interface} table ${link.table} proto ${RT_PROTO}`;
  }
  return { link, routes };
}

/** The gateway of a default route through `ifname` in the main table (a DHCP client's), if any. */
function mainGateway(ifname: string, fam: Family): string | undefined {
  try {
    return ipJson<RouteJson>([`-${fam}`, 'route', 'show', 'default', 'dev', ifname]).find((r) => r.gateway)?.gateway;
  } catch {
    return undefined;
  }
}
