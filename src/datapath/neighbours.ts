/**
 * The neighbour entries of the WAN links, over an rtnetlink socket of the datapath's own
 * (native/netlink.ts): the steering engine releases packets parked on a link it just moved
 * traffic off, and the link monitor does not call a link judged by carrier alone up before its
 * next hop answers.
 *
 * Why: the program redirects with bpf_redirect_neigh. A packet redirected to a link whose next
 * hop is not resolved waits in that neighbour entry's queue while the kernel asks (ARP/NDP):
 * 3 × 1 s by default (mcast_solicit × retrans_time) when nobody answers, as on a link that has
 * just lost its carrier. TCP does not retransmit a segment whose copy is still queued in the
 * host (TcpExtTCPSpuriousRtxHostQueues), so each session that had a segment there stalls for
 * those 3 s although its traffic has long moved to another link. Deleting the entry frees the
 * queue at once; the kernel tells each sender the packets were unreachable, and TCP resends them
 * on the path it now has.
 *
 * The same trap waits on the way back: a link whose carrier has just returned may have a next
 * hop that does not answer yet, and traffic moved there would wait on its unresolved entry.
 * Probed links prove their next hop by the probes' answers (they go through the same entry);
 * for a link judged by carrier alone, resolved() asks the kernel directly.
 *
 *   const n = openNeighbourTable();
 *   n.flush(ifindex, 'unresolved')   // INCOMPLETE, FAILED and NONE entries: the ones that queue
 *   n.flush(ifindex, 'all')          // also resolved ones (carrier lost); never PERMANENT or NOARP
 *   n.resolved('wan1', '192.0.2.1')  // true once it answers; false (resolution started) until then
 *   n.close();
 */
import {
  AF_INET, AF_INET6, closeRouteSocket, deleteNeighbour, listNeighbours, type NeighbourEntry, neighbourState, NUD_DELAY, NUD_FAILED, NUD_INCOMPLETE,
  NUD_NOARP, NUD_PERMANENT, NUD_PROBE, NUD_REACHABLE, NUD_STALE, openRouteSocket, resolveNeighbour,
} from '../../native/netlink.js';
import { FAMILY_IPV4 } from './abi.js';
import { parseAddress } from './addr.js';
import { interfaceIndex } from './attach.js';
import { check, DatapathError, DatapathErrorCode } from './errors.js';

/**
 * Which entries of a link to delete. `unresolved`: those that hold packets or will (INCOMPLETE,
 * FAILED, NONE), for a link still up. `all`: every entry but PERMANENT and NOARP ones, for a link
 * whose carrier is gone — what the kernel's own carrier-down flush does, but at once, not when
 * its link watch gets to it (up to a second later).
 */
export type NeighbourScope = 'unresolved' | 'all';

const ENOENT = 2;
const UNRESOLVED = NUD_INCOMPLETE | NUD_FAILED;
/** The kernel's NUD_VALID: it has a link-layer address to send to. */
const VALID = NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY;

export interface NeighbourTable {
  /** Delete the link's entries in `scope`, IPv4 and IPv6; how many were deleted. */
  flush(ifindex: number, scope: NeighbourScope): number;
  /**
   * Whether `address` is resolved on `ifname` (the kernel has its link-layer address). When it
   * is not and nothing is resolving it (no entry, or a failed one), resolution starts, as the
   * first packet to it would start it. Undefined when the kernel cannot tell (no such interface).
   */
  resolved(ifname: string, address: string): boolean | undefined;
  close(): void;
}

/** Open the rtnetlink socket (in this process's network namespace). */
export function openNeighbourTable(): NeighbourTable {
  const fd = check(openRouteSocket(), DatapathErrorCode.NETLINK, 'open an rtnetlink socket');
  let open = true;
  return {
    flush(ifindex, scope) {
      if (!open) throw new DatapathError(DatapathErrorCode.NETLINK, 'flush neighbours', 0, 'the neighbour table is closed');
      const entries = listNeighbours(fd, ifindex);
      if (typeof entries === 'number') check(entries, DatapathErrorCode.NETLINK, `list the neighbours of interface ${ifindex}`);
      let deleted = 0;
      for (const e of entries as NeighbourEntry[]) {
        if (!inScope(e.state, scope)) continue;
        const rc = deleteNeighbour(fd, e.family, e.ifindex, e.dst);
        if (rc === 0) deleted++;
        else if (rc !== -ENOENT) check(rc, DatapathErrorCode.NETLINK, `delete a neighbour of interface ${ifindex}`);
      }
      return deleted;
    },
    resolved(ifname, address) {
      const a = parseAddress(address);
      if (!open || !a) return undefined;
      let ifindex: number;
      try {
        ifindex = interfaceIndex(ifname);
      } catch {
        return undefined;
      }
      const family = a.family === FAMILY_IPV4 ? AF_INET : AF_INET6;
      const dst = Buffer.from(a.bytes.subarray(0, family === AF_INET ? 4 : 16));
      const state = neighbourState(fd, family, ifindex, dst);
      if (state > 0 && state & VALID) return true;
      if (state === -ENOENT || state === 0 || (state > 0 && state & NUD_FAILED)) resolveNeighbour(fd, family, ifindex, dst);
      else if (state < 0) return undefined;
      return false;
    },
    close() {
      if (open) closeRouteSocket(fd);
      open = false;
    },
  };
}

function inScope(state: number, scope: NeighbourScope): boolean {
  if (state & (NUD_PERMANENT | NUD_NOARP)) return false;
  return scope === 'all' || state === 0 || (state & UNRESOLVED) !== 0;
}
