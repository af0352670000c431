/**
 * Checks the schema cannot express: links are told apart by name and by interface, the default
 * link is one of them, next hops are addresses of the right family. Runs on a config the schema
 * already accepted.
 */
import { isIP } from 'node:net';
import type { ConfigProblem } from './errors.js';
import { linkTable, type AgentConfig, type ProbeConfig } from './schema.js';

/** Where the link monitor's probe rules and tables sit (src/links/probe-route.ts): pref and table 5700 + link index. */
const PROBE_BASE = 5700;
/** Tables the kernel keeps for itself: unspec, default, main, local. */
const RESERVED_TABLES = new Map([[0, 'unspec'], [253, 'default'], [254, 'main'], [255, 'local']]);

const REFLECTOR_FIX = 'give the IPv4 or IPv6 address of a host running `wansteer reflector` (TWAMP-light, UDP `probe.port`, 862 by default) reached over this link';

/** A probe names its reflectors by `target` or by `targets`, never both, and each is an address. */
function probeTargetProblems(probe: ProbeConfig, at: string): ConfigProblem[] {
  if (probe.target !== undefined && probe.targets !== undefined) {
    return [{ field: `${at}.targets`, problem: 'is given together with target', fix: 'list every reflector in targets and leave target out' }];
  }
  if (probe.target === undefined && probe.targets === undefined) {
    return [{ field: `${at}.target`, problem: 'is missing', fix: `${REFLECTOR_FIX}, or list up to four in targets` }];
  }
  const named = probe.targets ? probe.targets.map((t, i) => [`${at}.targets[${i}]`, t] as const) : [[`${at}.target`, probe.target!] as const];
  return named.filter(([, t]) => isIP(t) === 0).map(([field, t]) => ({ field, problem: `"${t}" is not an IP address`, fix: REFLECTOR_FIX }));
}

export function semanticProblems(config: AgentConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const names = new Map<string, number>();
  const interfaces = new Map<string, number>();
  config.links.forEach((link, i) => {
    const at = `links[${i}]`;
    const sameName = names.get(link.name);
    if (sameName !== undefined) {
      problems.push({ field: `${at}.name`, problem: `"${link.name}" is already the name of links[${sameName}]`, fix: 'give each link its own name' });
    } else names.set(link.name, i);
    const sameInterface = interfaces.get(link.interface);
    if (sameInterface !== undefined) {
      problems.push({
        field: `${at}.interface`,
        problem: `"${link.interface}" is already the interface of links[${sameInterface}]`,
        fix: 'list each WAN interface once (one link per interface)',
      });
    } else interfaces.set(link.interface, i);
    if (link.nextHop4 !== undefined && isIP(link.nextHop4) !== 4) {
      problems.push({ field: `${at}.nextHop4`, problem: `"${link.nextHop4}" is not an IPv4 address`, fix: 'give the IPv4 address of the next-hop router on this link, e.g. 192.0.2.1, or leave nextHop4 out' });
    }
    if (link.nextHop6 !== undefined && isIP(link.nextHop6) !== 6) {
      problems.push({ field: `${at}.nextHop6`, problem: `"${link.nextHop6}" is not an IPv6 address`, fix: 'give the IPv6 address of the next-hop router on this link, e.g. fe80::1 or 2001:db8::1, or leave nextHop6 out' });
    }
    if (link.probe) problems.push(...probeTargetProblems(link.probe, `${at}.probe`));
  });
  if (config.mode === 'reply-by-arrival') problems.push(...replyByArrivalProblems(config));
  else if (config.defaultLink === undefined) {
    problems.push({ field: 'defaultLink', problem: 'is missing', fix: `name the link unsteered traffic takes (the default route's): one of ${[...names.keys()].join(', ')}` });
  } else if (!names.has(config.defaultLink)) {
    problems.push({
      field: 'defaultLink',
      problem: `"${config.defaultLink}" is not the name of a link`,
      fix: `use one of the names in links: ${[...names.keys()].join(', ')}`,
    });
  }
  problems.push(...internetProblems(config));
  config.intake.allowedProxies.forEach((address, i) => {
    if (isIP(address) === 0) {
      problems.push({ field: `intake.allowedProxies[${i}]`, problem: `"${address}" is not an IP address`, fix: 'list the IPv4 or IPv6 addresses of node-level proxies (gateways)' });
    }
  });
  for (const key of ['http', 'grpc'] as const) {
    const address = config.listen[key];
    const port = address === undefined ? undefined : Number(address.slice(address.lastIndexOf(':') + 1));
    if (port !== undefined && (port < 1 || port > 65535)) {
      problems.push({ field: `listen.${key}`, problem: `port ${port} is out of range`, fix: 'use a port from 1 to 65535, e.g. 0.0.0.0:9440' });
    }
  }
  return problems;
}

/**
 * The cloud end of overlay links answers by arrival: it has no default link (a reply whose flow
 * never arrived is routed as ever), no internet links (their replies are the edge's conntrack's
 * business) and no session intake.
 */
function replyByArrivalProblems(config: AgentConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (config.defaultLink !== undefined) {
    problems.push({ field: 'defaultLink', problem: 'is given, but reply-by-arrival has no default link', fix: 'remove defaultLink: a reply whose flow has not arrived takes the routing table\'s path' });
  }
  config.links.forEach((link, i) => {
    if (link.addressing === 'internet') {
      problems.push({ field: `links[${i}].addressing`, problem: 'is internet, but reply-by-arrival answers over overlay links only', fix: 'remove addressing (overlay is the default): an internet link\'s replies are bound to its address by the edge\'s conntrack' });
    }
  });
  if (config.listen.grpc !== undefined) {
    problems.push({ field: 'listen.grpc', problem: 'is given, but reply-by-arrival takes no session reports', fix: 'remove listen.grpc' });
  }
  return problems;
}

/**
 * Internet links get a routing table each, `ip rule`s at internet.rulePriority.., and a mark in
 * internet.markMask: the tables and priorities must not clash with each other, the kernel's own
 * or the probe rules', and every internet link's mark must fit the mask.
 */
function internetProblems(config: AgentConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const { markMask, rulePriority } = config.internet;
  const shift = lowestBit(markMask);
  const contiguous = ((markMask >>> shift) & ((markMask >>> shift) + 1)) === 0;
  if (!contiguous) {
    problems.push({ field: 'internet.markMask', problem: `0x${markMask.toString(16)} is not one run of bits`, fix: 'give one contiguous run of mark bits no other software on the node uses, e.g. 0x3f000000' });
  }
  const marks = contiguous ? markMask >>> shift : 0;
  const tables = new Map<number, number>();
  config.links.forEach((link, i) => {
    const at = `links[${i}]`;
    if (link.addressing !== 'internet') {
      if (link.table !== undefined) problems.push({ field: `${at}.table`, problem: 'is given, but only internet links have a routing table of their own', fix: 'remove table, or set addressing: internet' });
      return;
    }
    const table = linkTable(config, i);
    const field = link.table !== undefined ? `${at}.table` : 'internet.tableBase';
    const reserved = RESERVED_TABLES.get(table);
    if (reserved) problems.push({ field, problem: `table ${table} of ${link.name} is the kernel's ${reserved} table`, fix: 'pick a table no one else uses, e.g. 3600 and up' });
    else if (table >= PROBE_BASE && table < PROBE_BASE + config.links.length) problems.push({ field, problem: `table ${table} of ${link.name} is a probe table (${PROBE_BASE} + link index)`, fix: `pick tables outside ${PROBE_BASE}..${PROBE_BASE + config.links.length - 1}` });
    const other = tables.get(table);
    if (other !== undefined) problems.push({ field, problem: `table ${table} of ${link.name} is also the table of links[${other}]`, fix: 'give each internet link its own table' });
    else tables.set(table, i);
    // The all-ones value of the mask is the agent's own (it marks packets conntrack must not see).
    if (contiguous && i + 1 >= marks) {
      problems.push({ field: 'internet.markMask', problem: `0x${markMask.toString(16)} holds ${marks - 1 === 1 ? 'a mark for 1 link' : `marks for ${marks - 1} links`}, but internet link ${link.name} is links[${i}]`, fix: 'widen the mask, or list internet links first' });
    }
  });
  const last = rulePriority + config.links.length;
  if (last >= 32766) problems.push({ field: 'internet.rulePriority', problem: `rules up to ${last} would reach the main table's rule (32766)`, fix: 'pick a lower priority, e.g. 9000' });
  if (rulePriority <= PROBE_BASE + config.links.length && last >= PROBE_BASE) {
    problems.push({ field: 'internet.rulePriority', problem: `rules ${rulePriority}..${last} overlap the probe rules (${PROBE_BASE} + link index)`, fix: 'pick a priority outside that range, e.g. 9000' });
  }
  return problems;
}

function lowestBit(n: number): number {
  let shift = 0;
  while (shift < 32 && ((n >>> shift) & 1) === 0) shift++;
  return shift;
}
