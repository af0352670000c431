/**
 * Carrier of an interface, read in-process over rtnetlink (native/netlink.ts): the link
 * monitor's 20 ms carrier poll. It lives with the datapath because only the datapath talks to
 * the native layer; the agent hands it to the link monitor, which knows only its shape.
 *
 *   const reader = openCarrierReader();
 *   reader.read('wan1')     // { up: false, why: 'no carrier' }; undefined if the kernel did not answer
 *   reader.close();
 */
import { closeRouteSocket, IFF_LOWER_UP, IFF_UP, linkFlags, openRouteSocket } from '../../native/netlink.js';
import { DatapathError, DatapathErrorCode } from './errors.js';

export interface CarrierReader {
  /** Carrier = administratively UP and LOWER_UP; a missing interface has none. */
  read(ifname: string): { up: boolean; why: string } | undefined;
  close(): void;
}

const ENODEV = 19;

/** Open the rtnetlink socket (in this process's network namespace). */
export function openCarrierReader(): CarrierReader {
  const fd = openRouteSocket();
  if (fd < 0) throw new DatapathError(DatapathErrorCode.NETLINK, 'open an rtnetlink socket', -fd);
  let open = true;
  return {
    read(ifname) {
      if (!open) return undefined;
      const flags = linkFlags(fd, ifname);
      if (flags === -ENODEV) return { up: false, why: 'interface not found' };
      if (flags < 0) return undefined;
      if (!(flags & IFF_UP)) return { up: false, why: 'interface administratively down' };
      if (!(flags & IFF_LOWER_UP)) return { up: false, why: 'no carrier' };
      return { up: true, why: 'carrier up' };
    },
    close() {
      if (open) closeRouteSocket(fd);
      open = false;
    },
  };
}
