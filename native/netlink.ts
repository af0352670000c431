/**
 * native/netlink.ts — one rtnetlink question, asked in-process with koffi: what are an
 * interface's flags now (RTM_GETLINK by name)? The link monitor polls carrier with it every
 * 20 ms, so it must cost microseconds: two syscalls on one socket kept open, buffers reused, no
 * child process, no event-loop round trip. The reply is queued before send() returns (the
 * kernel answers RTM_GETLINK inside the send), so the receive never waits.
 *
 *   const nl = openRouteSocket();               // fd, or a negative errno
 *   linkFlags(nl, 'wan1')                       // IFF_* bits (IFF_UP, IFF_LOWER_UP, ...) or -errno (-ENODEV)
 *   closeRouteSocket(nl);
 *
 * The socket belongs to the network namespace of the process that opens it, like `ip`'s.
 * Layouts: linux/netlink.h (nlmsghdr), linux/rtnetlink.h (ifinfomsg, rtattr), linux/if_link.h.
 */
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
const fn = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  send: libc.func('long send(int fd, const void *buf, size_t len, int flags)'),
  recv: libc.func('long recv(int fd, void *buf, size_t len, int flags)'),
  close: libc.func('int close(int fd)'),
};

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 1;
const IFLA_IFNAME = 3;
const IFLA_EXT_MASK = 29;
const RTEXT_FILTER_SKIP_STATS = 1 << 3;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const EINVAL = 22;
const EPROTO = 71;

/** The flag bits the carrier watch reads (linux/if.h). */
export const IFF_UP = 0x1;
export const IFF_LOWER_UP = 0x10000;

/** Open a NETLINK_ROUTE socket; its fd, or a negative errno. */
export function openRouteSocket(): number {
  const fd = fn.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE) as number;
  return fd >= 0 ? fd : -(koffi.errno() || EINVAL);
}

export function closeRouteSocket(fd: number): void {
  fn.close(fd);
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
  if ((fn.send(fd, req, req.length, 0) as number) < 0) return -(koffi.errno() || EINVAL);
  // Drop anything a timed-out earlier question left behind: answers carry their sequence.
  for (;;) {
    const n = fn.recv(fd, reply, reply.length, MSG_DONTWAIT) as number;
    if (n < 0) return -(koffi.errno() || EAGAIN);
    if (n < 16) return -EPROTO;
    if (reply.readUInt32LE(8) !== seq >>> 0) continue;
    const type = reply.readUInt16LE(4);
    if (type === NLMSG_ERROR) return n >= 20 ? reply.readInt32LE(16) || -EPROTO : -EPROTO;
    if (type !== RTM_NEWLINK || n < 32) return -EPROTO;
    return reply.readUInt32LE(24); // ifinfomsg.ifi_flags
  }
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
