/**
 * native/conntrack.ts — two conntrack questions over ctnetlink (NETLINK_NETFILTER), asked
 * in-process with koffi: how many connections carry a mark, and delete them all. One message
 * each, whatever the number of connections: the kernel filters by mark itself (ctnetlink's
 * flush and dump take CTA_MARK + CTA_MARK_MASK), so there is no dump-then-delete-one-by-one and
 * no `conntrack` process.
 *
 *   const ct = openConntrackSocket();           // fd, or a negative errno
 *   countConntrackByMark(ct, 0x02000000, 0x3f000000)   // entries (both families), or -errno
 *   flushConntrackByMark(ct, 0x02000000, 0x3f000000)   // 0, or -errno
 *   closeConntrackSocket(ct);
 *
 * The socket belongs to the network namespace of the process that opens it. Layouts:
 * linux/netlink.h (nlmsghdr), linux/netfilter/nfnetlink.h (nfgenmsg),
 * linux/netfilter/nfnetlink_conntrack.h (IPCTNL_MSG_*, CTA_*).
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
const NETLINK_NETFILTER = 12;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_REQUEST = 0x1;
const NLM_F_MULTI = 0x2;
const NLM_F_ACK = 0x4;
const NLM_F_DUMP = 0x300;
const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_NEW = 0;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const CTA_MARK = 8;
const CTA_MARK_MASK = 21;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const EINVAL = 22;
const EPROTO = 71;

/** Open a NETLINK_NETFILTER socket; its fd, or a negative errno. */
export function openConntrackSocket(): number {
  const fd = fn.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER) as number;
  return fd >= 0 ? fd : -(koffi.errno() || EINVAL);
}

export function closeConntrackSocket(fd: number): void {
  fn.close(fd);
}

const reply = Buffer.alloc(65536);
let seq = 0;

/**
 * A ctnetlink request selecting every connection whose mark & mask == mark, in both address
 * families (nfgenmsg family AF_UNSPEC, version 0: the kernel applies no family filter).
 */
function request(type: number, flags: number, mark: number, mask: number): Buffer {
  const req = Buffer.alloc(16 + 4 + 8 + 8);
  req.writeUInt32LE(req.length, 0); // nlmsghdr.nlmsg_len
  req.writeUInt16LE((NFNL_SUBSYS_CTNETLINK << 8) | type, 4);
  req.writeUInt16LE(flags, 6);
  req.writeUInt32LE(++seq >>> 0, 8);
  // nfgenmsg at 16: family AF_UNSPEC, version NFNETLINK_V0, res_id 0 — all zero
  req.writeUInt16LE(8, 20);
  req.writeUInt16LE(CTA_MARK, 22);
  req.writeUInt32BE(mark >>> 0, 24);
  req.writeUInt16LE(8, 28);
  req.writeUInt16LE(CTA_MARK_MASK, 30);
  req.writeUInt32BE(mask >>> 0, 32);
  return req;
}

/** Delete every connection whose mark & mask == mark. 0, or a negative errno. */
export function flushConntrackByMark(fd: number, mark: number, mask: number): number {
  const req = request(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, mark, mask);
  if ((fn.send(fd, req, req.length, 0) as number) < 0) return -(koffi.errno() || EINVAL);
  const want = req.readUInt32LE(8);
  // The flush runs inside send(): the acknowledgement is queued before it returns.
  for (;;) {
    const n = fn.recv(fd, reply, reply.length, MSG_DONTWAIT) as number;
    if (n < 0) return -(koffi.errno() || EAGAIN);
    if (n < 16) return -EPROTO;
    if (reply.readUInt32LE(8) !== want) continue; // an earlier question's leftover
    if (reply.readUInt16LE(4) !== NLMSG_ERROR || n < 20) return -EPROTO;
    return reply.readInt32LE(16);
  }
}

/** How many connections have mark & mask == mark (a filtered dump, counted). Or a negative errno. */
export function countConntrackByMark(fd: number, mark: number, mask: number): number {
  const req = request(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, mark, mask);
  if ((fn.send(fd, req, req.length, 0) as number) < 0) return -(koffi.errno() || EINVAL);
  const want = req.readUInt32LE(8);
  let count = 0;
  // The kernel fills the next part of a dump as each one is read, so a part is always queued.
  for (;;) {
    const n = fn.recv(fd, reply, reply.length, MSG_DONTWAIT) as number;
    if (n < 0) return -(koffi.errno() || EAGAIN);
    for (let off = 0; off + 16 <= n; ) {
      const len = reply.readUInt32LE(off);
      const type = reply.readUInt16LE(off + 4);
      const flags = reply.readUInt16LE(off + 6);
      if (len < 16 || off + len > n) return -EPROTO;
      if (reply.readUInt32LE(off + 8) === want) {
        if (type === NLMSG_DONE) return count;
        if (type === NLMSG_ERROR) return off + 20 <= n ? reply.readInt32LE(off + 16) || count : -EPROTO;
        if (type === ((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW)) count++;
        if (!(flags & NLM_F_MULTI)) return count;
      }
      off += (len + 3) & ~3;
    }
  }
}
