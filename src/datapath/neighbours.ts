/**
 * The neighbour entries of the WAN links, over the datapath's own rtnetlink socket
 * (native/netlink.ts): the steering engine releases packets parked on a link it just moved
 * traffic off.
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
 *   const n = openNeighbourTable();
 *   n.flush(ifindex, 'unresolved')   // INCOMPLETE, FAILED and NONE entries: the ones that queue
 *   n.flush(ifindex, 'all')          // also resolved ones (carrier lost); never PERMANENT or NOARP
 *   n.close();
 */
import {
  closeRouteSocket, deleteNeighbour, listNeighbours, type NeighbourEntry, NUD_FAILED, NUD_INCOMPLETE, NUD_NOARP, NUD_PERMANENT, openRouteSocket,
} from '../../native/netlink.js';
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

export interface NeighbourTable {
  /** Delete the link's entries in `scope`, IPv4 and IPv6; how many were deleted. */
  flush(ifindex: number, scope: NeighbourScope): number;
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
