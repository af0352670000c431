/**
 * An interface's link flags, read in-process over rtnetlink (native/netlink.ts): the facts the
 * link monitor's 20 ms carrier poll needs. It lives with the datapath because only the datapath
 * talks to the native layer; what the flags mean for a link (carrier or not, and why) is
 * links/carrier.ts's to say. The agent hands the reader to the link monitor at start.
 *
 *   const reader = openCarrierReader();
 *   reader.read('wan1')     // { present: true, adminUp: true, lowerUp: false }; undefined if the kernel did not answer
 *   reader.close();
 */
import { closeRouteSocket, IFF_LOWER_UP, IFF_UP, linkFlags, openRouteSocket } from '../../native/netlink.js';
import { DatapathError, DatapathErrorCode } from './errors.js';

/** An interface's flags as the kernel has them now; a missing interface is not present. */
export interface InterfaceFlags {
  present: boolean;
  /** IFF_UP: administratively up. */
  adminUp: boolean;
  /** IFF_LOWER_UP: the driver's carrier bit (RFC 2863 lower layer up). */
  lowerUp: boolean;
}

export interface CarrierReader {
  read(ifname: string): InterfaceFlags | undefined;
  close(): void;
}

const ENODEV = 19;
const MISSING: InterfaceFlags = { present: false, adminUp: false, lowerUp: false };

/** Open the rtnetlink socket (in this process's network namespace). */
export function openCarrierReader(): CarrierReader {
  const fd = openRouteSocket();
  if (fd < 0) throw new DatapathError(DatapathErrorCode.NETLINK, 'open an rtnetlink socket', -fd);
  let open = true;
  return {
    read(ifname) {
      if (!open) return undefined;
      const flags = linkFlags(fd, ifname);
      if (flags === -ENODEV) return MISSING;
      if (flags < 0) return undefined;
      return { present: true, adminUp: (flags & IFF_UP) !== 0, lowerUp: (flags & IFF_LOWER_UP) !== 0 };
    },
    close() {
      if (open) closeRouteSocket(fd);
      open = false;
    },
  };
}
