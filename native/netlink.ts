/**
 * native/netlink.ts — rtnetlink, asked in-process with koffi, on a socket kept open:
 *
 * - what are an interface's flags now (RTM_GETLINK by name)? The link monitor polls carrier with
 *   it every 20 ms, so it must cost microseconds: two syscalls, buffers reused, no child process,
 *   no event-loop round trip.
 * - which neighbour entries does an interface have (RTM_GETNEIGH dump), and delete one
 *   (RTM_DELNEIGH): the datapath releases packets parked on a dead link's unresolved entries;
 *   what state is one entry in (RTM_GETNEIGH), and start resolving it (RTM_NEWNEIGH with
 *   NTF_USE, as a packet would): a link is not used before its next hop answers.
 *
 * The kernel answers these inside the send (a dump fills its next part inside each receive), so
 * the receives never wait: they are non-blocking, and an empty socket is an error, not a hang.
 *
 *   const nl = openRouteSocket();               // fd, or a negative errno
 *   linkFlags(nl, 'wan1')                       // IFF_* bits (IFF_UP, IFF_LOWER_UP, ...) or -errno (-ENODEV)
 *   listNeighbours(nl, 7)                       // [{ family, ifindex, state, flags, dst }] or -errno
 *   deleteNeighbour(nl, AF_INET, 7, dst)        // 0 or -errno (-ENOENT: already gone)
 *   neighbourState(nl, AF_INET, 7, dst)         // NUD_* bits, or -errno (-ENOENT: no entry)
 *   resolveNeighbour(nl, AF_INET, 7, dst)       // 0 or -errno: start resolving it (ARP/NDP) now
 *   closeRouteSocket(nl);
 *
 * The socket belongs to the network namespace of the process that opens it, like `ip`'s.
 * Layouts: linux/netlink.h (nlmsghdr), linux/rtnetlink.h (ifinfomsg, ndmsg, rtattr),
 * linux/if_link.h, linux/neighbour.h.
 */
import koffi from 'koffi';
import { AF_NETLINK, SOCK_RAW, SOCK_CLOEXEC, MSG_DONTWAIT, EAGAIN, EPROTO, lastErrno, sys } from './libc.js';


const NETLINK_ROUTE = 0;
const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const RTM_NEWNEIGH = 28;
const RTM_DELNEIGH = 29;
const RTM_GETNEIGH = 30;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_REQUEST = 1;
const NLM_F_ACK = 4;
const NLM_F_CREATE = 0x400;
const NLM_F_DUMP = 0x300;
const NTF_USE = 0x01;
const NDA_DST = 1;
const NDA_IFINDEX = 8;
const IFLA_IFNAME = 3;
const IFLA_EXT_MASK = 29;
const RTEXT_FILTER_SKIP_STATS = 1 << 3;

/** The flag bits the carrier watch reads (linux/if.h). */
export const IFF_UP = 0x1;
export const IFF_LOWER_UP = 0x10000;

/** Address families of neighbour entries (linux/socket.h). */
export const AF_INET = 2;
export const AF_INET6 = 10;

/** Neighbour entry states (linux/neighbour.h): NUD_NONE is 0. */
export const NUD_INCOMPLETE = 0x01;
export const NUD_REACHABLE = 0x02;
export const NUD_STALE = 0x04;
export const NUD_DELAY = 0x08;
export const NUD_PROBE = 0x10;
export const NUD_FAILED = 0x20;
export const NUD_NOARP = 0x40;
export const NUD_PERMANENT = 0x80;

/** Open a NETLINK_ROUTE socket; its fd, or a negative errno. */
export function openRouteSocket(): number {
  const fd = sys.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE) as number;
  return fd >= 0 ? fd : lastErrno();
}

export function closeRouteSocket(fd: number): void {
  sys.close(fd);
}

// One request buffer per name, built once; one reply buffer for all (stats are skipped, so a
// reply is a few hundred bytes).
const requests = new Map<string, Buffer>();
const reply = Buffer.alloc(16384);
let seq = 0;

function request(ifname: string): Buffer {
  let req = requests.get(ifname);
  if (req) return req;
  const name = Buffer.from(ifname + '\0', 'utf8');
  const nameAttr = 4 + name.length;
  const len = 16 + 16 + align4(nameAttr) + 8;
  req = Buffer.alloc(len);
  req.writeUInt32LE(len, 0); // nlmsghdr.nlmsg_len
  req.writeUInt16LE(RTM_GETLINK, 4);
  req.writeUInt16LE(NLM_F_REQUEST, 6);
  // ifinfomsg (16 bytes, family AF_UNSPEC, index 0: look up by name) stays zero
  let off = 32;
  req.writeUInt16LE(nameAttr, off);
  req.writeUInt16LE(IFLA_IFNAME, off + 2);
  name.copy(req, off + 4);
  off += align4(nameAttr);
  req.writeUInt16LE(8, off);
  req.writeUInt16LE(IFLA_EXT_MASK, off + 2);
  req.writeUInt32LE(RTEXT_FILTER_SKIP_STATS, off + 4);
  if (requests.size > 256) requests.clear();
  requests.set(ifname, req);
  return req;
}

/**
 * The interface's flags (ifinfomsg.ifi_flags: IFF_UP, IFF_LOWER_UP, ...), or a negative errno:
 * -ENODEV when there is no such interface in this namespace.
 */
export function linkFlags(fd: number, ifname: string): number {
  const req = request(ifname);
  req.writeUInt32LE(++seq >>> 0, 8);
  if ((sys.send(fd, req, req.length, 0) as number) < 0) return lastErrno();
  // Drop anything a timed-out earlier question left behind: answers carry their sequence.
  for (;;) {
    const n = sys.recv(fd, reply, reply.length, MSG_DONTWAIT) as number;
    if (n < 0) return -(koffi.errno() || EAGAIN);
    if (n < 16) return -EPROTO;
    if (reply.readUInt32LE(8) !== seq >>> 0) continue;
    const type = reply.readUInt16LE(4);
    if (type === NLMSG_ERROR) return n >= 20 ? reply.readInt32LE(16) || -EPROTO : -EPROTO;
    if (type !== RTM_NEWLINK || n < 32) return -EPROTO;
    return reply.readUInt32LE(24); // ifinfomsg.ifi_flags
  }
}

/** One neighbour entry as the kernel lists it. */
export interface NeighbourEntry {
  family: number;
  ifindex: number;
  /** NUD_* bits. */
  state: number;
  /** NTF_* bits. */
  flags: number;
  /** The neighbour's address: 4 bytes (AF_INET) or 16 (AF_INET6). */
  dst: Buffer;
}

// Dump parts are at most 32 KiB (the kernel sizes them by the largest receive buffer seen).
const dumpBuf = Buffer.alloc(32768);

/**
 * Every neighbour entry (ARP and NDP, not proxies) of interface `ifindex`, or a negative errno.
 * The kernel filters the dump by NDA_IFINDEX, so a busy LAN interface costs nothing here.
 */
export function listNeighbours(fd: number, ifindex: number): NeighbourEntry[] | number {
  const req = Buffer.alloc(16 + 12 + 8);
  const mySeq = ++seq >>> 0;
  req.writeUInt32LE(req.length, 0);
  req.writeUInt16LE(RTM_GETNEIGH, 4);
  req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
  req.writeUInt32LE(mySeq, 8);
  // ndmsg stays zero: family AF_UNSPEC dumps both tables; the attribute picks the interface.
  req.writeUInt16LE(8, 28);
  req.writeUInt16LE(NDA_IFINDEX, 30);
  req.writeUInt32LE(ifindex, 32);
  if ((sys.send(fd, req, req.length, 0) as number) < 0) return lastErrno();
  const out: NeighbourEntry[] = [];
  for (;;) {
    const n = sys.recv(fd, dumpBuf, dumpBuf.length, MSG_DONTWAIT) as number;
    if (n < 0) return -(koffi.errno() || EAGAIN);
    for (let off = 0; off + 16 <= n; ) {
      const len = dumpBuf.readUInt32LE(off);
      if (len < 16 || off + len > n) return -EPROTO;
      const type = dumpBuf.readUInt16LE(off + 4);
      if (dumpBuf.readUInt32LE(off + 8) === mySeq) {
        if (type === NLMSG_DONE) return out;
        if (type === NLMSG_ERROR) return len >= 20 ? dumpBuf.readInt32LE(off + 16) || -EPROTO : -EPROTO;
        if (type === RTM_NEWNEIGH && len >= 28) {
          const e = neighbourAt(dumpBuf, off, len);
          if (e && e.ifindex === ifindex) out.push(e);
        }
      }
      off += align4(len);
    }
  }
}

function neighbourAt(b: Buffer, off: number, len: number): NeighbourEntry | undefined {
  const family = b.readUInt8(off + 16);
  const ifindex = b.readInt32LE(off + 20);
  const state = b.readUInt16LE(off + 24);
  const flags = b.readUInt8(off + 26);
  for (let a = off + 28; a + 4 <= off + len; ) {
    const alen = b.readUInt16LE(a);
    if (alen < 4) return undefined;
    if (b.readUInt16LE(a + 2) === NDA_DST) return { family, ifindex, state, flags, dst: Buffer.from(b.subarray(a + 4, a + alen)) };
    a += align4(alen);
  }
  return undefined;
}

/** RTM_GETNEIGH / RTM_NEWNEIGH / RTM_DELNEIGH for one entry: ndmsg + NDA_DST. */
function neighbourRequest(type: number, flags: number, family: number, ifindex: number, dst: Buffer, ndmFlags = 0): Buffer {
  const attr = 4 + dst.length;
  const req = Buffer.alloc(16 + 12 + align4(attr));
  req.writeUInt32LE(req.length, 0);
  req.writeUInt16LE(type, 4);
  req.writeUInt16LE(NLM_F_REQUEST | flags, 6);
  req.writeUInt32LE(++seq >>> 0, 8);
  req.writeUInt8(family, 16);
  req.writeInt32LE(ifindex, 20);
  req.writeUInt8(ndmFlags, 26);
  req.writeUInt16LE(attr, 28);
  req.writeUInt16LE(NDA_DST, 30);
  dst.copy(req, 32);
  return req;
}

/** Send `req` and read the answer with its sequence number: its type and where it starts, or -errno. */
function ask(fd: number, req: Buffer): number {
  if ((sys.send(fd, req, req.length, 0) as number) < 0) return lastErrno();
  const mySeq = req.readUInt32LE(8);
  for (;;) {
    const n = sys.recv(fd, reply, reply.length, MSG_DONTWAIT) as number;
    if (n < 0) return -(koffi.errno() || EAGAIN);
    if (n < 20) return -EPROTO;
    if (reply.readUInt32LE(8) !== mySeq) continue;
    const type = reply.readUInt16LE(4);
    if (type === NLMSG_ERROR) return reply.readInt32LE(16); // 0: the ack
    return type === RTM_NEWNEIGH && n >= 28 ? reply.readUInt16LE(24) : -EPROTO; // ndmsg.ndm_state
  }
}

/**
 * Delete one neighbour entry: 0, or a negative errno (-ENOENT when there is none). Deleting an
 * unresolved entry frees the packets queued on it at once (the kernel reports each to its
 * sender as unreachable), instead of after its resolution times out.
 */
export function deleteNeighbour(fd: number, family: number, ifindex: number, dst: Buffer): number {
  return ask(fd, neighbourRequest(RTM_DELNEIGH, NLM_F_ACK, family, ifindex, dst));
}

/** One entry's NUD_* state (NUD_NONE is 0), or a negative errno: -ENOENT when there is none. */
export function neighbourState(fd: number, family: number, ifindex: number, dst: Buffer): number {
  return ask(fd, neighbourRequest(RTM_GETNEIGH, 0, family, ifindex, dst));
}

/**
 * Start resolving `dst` on the interface (creating the entry if needed), as the first packet to
 * it would, without a packet: 0, or a negative errno. An entry already resolving is left alone.
 */
export function resolveNeighbour(fd: number, family: number, ifindex: number, dst: Buffer): number {
  return ask(fd, neighbourRequest(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_ACK, family, ifindex, dst, NTF_USE));
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
