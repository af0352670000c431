/**
 * Make a link's probes leave through that link, whatever the main routing table prefers: a
 * policy-routing rule that matches only the probe socket (its source address, UDP, its source
 * port) and sends it to a table of its own whose one route is out of the link.
 *
 *   ip rule  add pref 5700+id from 10.10.2.1 ipproto udp sport 41234 lookup 5700+id
 *   ip route replace default via <nextHop> dev wan1 onlink table 5700+id     (no next hop: dev wan1)
 *
 * Why this, and not the alternatives:
 * - Steering the probe's own flow with the datapath (a per-link "probe policy"): the datapath
 *   passes a flow of a link marked down on its original path — right for sessions (never
 *   black-holed), wrong for a probe, which would then test another link and bring the dead one
 *   back up. It would also need the program on whichever interface the main table picks.
 * - SO_BINDTODEVICE: not in Node's dgram (needs a native setsockopt), and a socket bound to a
 *   device still needs a route through that device for a target that is not on-link.
 * The rule matches only the probe's 5-tuple source: no other traffic is affected. A link with
 * several probe targets has a rule per probe socket, all at the link's pref and into its table.
 * Rules and routes are removed on stop; stale ones (a crashed agent) are cleared, by pref, when
 * the monitor starts.
 */
import { execFile } from 'node:child_process';
import { isIPv6 } from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const PROBE_TABLE_BASE = 5700;

export interface ProbeRoute {
  linkId: number;
  interface: string;
  /** The probe socket's source address and port. */
  local: string;
  sport: number;
  nextHop?: string;
  /**
   * An internet link's own routing table (the agent's internet routing keeps its route): the
   * probe then takes the very table, next hop and source address steered connections take, so
   * a link that cannot carry them is reported down. Absent: the probe table 5700 + link id.
   */
  table?: number;
}

function family(r: ProbeRoute): '-4' | '-6' {
  return isIPv6(r.local) ? '-6' : '-4';
}

/** The link's probe table route, then the rule for this probe socket. */
export async function installProbeRoute(r: ProbeRoute, ip = 'ip'): Promise<void> {
  if (r.table === undefined) await refreshProbeRoute(r, ip);
  await run(ip, [family(r), 'rule', 'add', ...ruleSelector(r)]);
}

/** Re-add the route (the kernel drops it when the interface goes away and comes back). */
export async function refreshProbeRoute(r: ProbeRoute, ip = 'ip'): Promise<void> {
  if (r.table !== undefined) return; // the internet link's table: its owner refreshes it
  const table = String(PROBE_TABLE_BASE + r.linkId);
  const via = r.nextHop ? ['via', r.nextHop] : [];
  await run(ip, [family(r), 'route', 'replace', 'default', ...via, 'dev', r.interface, ...(r.nextHop ? ['onlink'] : []), 'table', table]);
}

/** This probe socket's rule only (other targets of the link keep theirs). */
export async function removeProbeRoute(r: ProbeRoute, ip = 'ip'): Promise<void> {
  await run(ip, [family(r), 'rule', 'del', ...ruleSelector(r)]);
}

/** Every rule at the link's pref (there may be several after crashes) and its table, both families. */
export async function clearProbeRoutes(linkId: number, ip = 'ip'): Promise<void> {
  const table = String(PROBE_TABLE_BASE + linkId);
  for (const fam of ['-4', '-6']) {
    for (let i = 0; i < 64; i++) {
      try {
        await run(ip, [fam, 'rule', 'del', 'pref', table]);
      } catch {
        break;
      }
    }
    await run(ip, [fam, 'route', 'flush', 'table', table]).catch(() => {});
  }
}

function ruleSelector(r: ProbeRoute): string[] {
  const pref = String(PROBE_TABLE_BASE + r.linkId);
  return ['pref', pref, 'from', r.local, 'ipproto', 'udp', 'sport', String(r.sport), 'lookup', String(r.table ?? pref)];
}

/** One address as `ip -j addr show` lists it (the flags are present only when set). */
export interface AddrInfo {
  local?: string;
  tentative?: boolean;
  optimistic?: boolean;
  dadfailed?: boolean;
  deprecated?: boolean;
}

/**
 * A global address of `family` on an interface that a socket can bind (the probe's source), or
 * undefined. An IPv6 address still in duplicate address detection (tentative, ~1 s after it is
 * added or its interface comes up) or that failed it cannot be bound (EADDRNOTAVAIL): skipped,
 * so the monitor retries until DAD is done. Optimistic addresses (RFC 4429) can be bound.
 * A preferred address wins over a deprecated one.
 */
export async function interfaceAddress(ifname: string, v6: boolean, ip = 'ip'): Promise<string | undefined> {
  try {
    const { stdout } = await run(ip, ['-j', v6 ? '-6' : '-4', 'addr', 'show', 'dev', ifname, 'scope', 'global']);
    const list = JSON.parse(stdout || '[]') as { addr_info?: AddrInfo[] }[];
    return pickSourceAddress(list.flatMap((l) => l.addr_info ?? []));
  } catch {
    return undefined;
  }
}

/** The address to probe from among an interface's (exported for tests). */
export function pickSourceAddress(addresses: readonly AddrInfo[]): string | undefined {
  const usable = addresses.filter((a) => a.local !== undefined && !a.dadfailed && (!a.tentative || a.optimistic));
  return (usable.find((a) => !a.deprecated) ?? usable[0])?.local;
}
