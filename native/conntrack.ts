/**
 * native/conntrack.ts — two conntrack questions over ctnetlink (NETLINK_NETFILTER), asked
 * in-process with koffi: how many connections carry a mark, and delete them all. One message
 * each, whatever the number of connections: the kernel filters by mark itself (ctnetlink's
 * flush and dump take CTA_MARK + CTA_MARK_MASK), so there is no dump-then-delete-one-by-one and
 * no `conntrack` process.
 *
 *   const ct = openConntrackSocket();           // fd, or a negative errno
 *   countConntrackByMark(ct, 0x02000000, 0x3f000000)   // entries (both families), or -errno
 *   dumpConntrackByMark(ct, 0x02000000, 0x3f000000)    // their tuples and status, or -errno
 *   flushConntrackByMark(ct, 0x02000000, 0x3f000000)   // 0, or -errno
 *   closeConntrackSocket(ct);
 *
 * The socket belongs to the network namespace of the process that opens it. Layouts:
 * linux/netlink.h (nlmsghdr), linux/netfilter/nfnetlink.h (nfgenmsg),
 * linux/netfilter/nfnetlink_conntrack.h (IPCTNL_MSG_*, CTA_*).
 */
import koffi from 'koffi';
import { AF_NETLINK, SOCK_RAW, SOCK_CLOEXEC, MSG_DONTWAIT, EAGAIN, EPROTO, lastErrno, sys } from './libc.js';


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
const CTA_TUPLE_ORIG = 1;
const CTA_TUPLE_REPLY = 2;
const CTA_STATUS = 3;
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_IP_V4_SRC = 1;
const CTA_IP_V4_DST = 2;
const CTA_IP_V6_SRC = 3;
const CTA_IP_V6_DST = 4;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;
const NLA_TYPE_MASK = 0x3fff;
const CTA_MARK = 8;
const CTA_MARK_MASK = 21;

/** Open a NETLINK_NETFILTER socket; its fd, or a negative errno. */
export function openConntrackSocket(): number {
  const fd = sys.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER) as number;
  return fd >= 0 ? fd : lastErrno();
}

export function closeConntrackSocket(fd: number): void {
  sys.close(fd);
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
  if ((sys.send(fd, req, req.length, 0) as number) < 0) return lastErrno();
  const want = req.readUInt32LE(8);
  // The flush runs inside send(): the acknowledgement is queued before it returns.
  for (;;) {
    const n = sys.recv(fd, reply, reply.length, MSG_DONTWAIT) as number;
    if (n < 0) return -(koffi.errno() || EAGAIN);
    if (n < 16) return -EPROTO;
    if (reply.readUInt32LE(8) !== want) continue; // an earlier question's leftover
    if (reply.readUInt16LE(4) !== NLMSG_ERROR || n < 20) return -EPROTO;
    return reply.readInt32LE(16);
  }
}

/** One direction of a connection: addresses as raw bytes (4 or 16), ports in host order. */
export interface ConntrackTuple {
  src: Buffer;
  dst: Buffer;
  sport: number;
  dport: number;
}

export interface ConntrackEntry {
  /** 4 or 6. */
  family: 4 | 6;
  /** IPPROTO_*. */
  proto: number;
  /** The first packet's direction, and the reply's (NAT shows as the difference). */
  orig: ConntrackTuple;
  reply: ConntrackTuple;
  /** IPS_* bits (linux/netfilter/nf_conntrack_common.h): IPS_SRC_NAT 1 << 4, IPS_DST_NAT 1 << 5. */
  status: number;
}

/** The attributes of a netlink attribute stream, by type (nested flag removed). */
function attrs(b: Buffer, start: number, end: number): Map<number, [number, number]> {
  const out = new Map<number, [number, number]>();
  for (let off = start; off + 4 <= end; ) {
    const len = b.readUInt16LE(off);
    if (len < 4 || off + len > end) break;
    out.set(b.readUInt16LE(off + 2) & NLA_TYPE_MASK, [off + 4, off + len]);
    off += (len + 3) & ~3;
  }
  return out;
}

function tuple(b: Buffer, [start, end]: [number, number], family: 4 | 6): ConntrackTuple | null {
  const t = attrs(b, start, end);
  const ip = t.get(CTA_TUPLE_IP);
  const proto = t.get(CTA_TUPLE_PROTO);
  if (!ip || !proto) return null;
  const a = attrs(b, ip[0], ip[1]);
  const src = a.get(family === 4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC);
  const dst = a.get(family === 4 ? CTA_IP_V4_DST : CTA_IP_V6_DST);
  if (!src || !dst) return null;
  const p = attrs(b, proto[0], proto[1]);
  const sport = p.get(CTA_PROTO_SRC_PORT);
  const dport = p.get(CTA_PROTO_DST_PORT);
  return {
    src: Buffer.from(b.subarray(src[0], src[1])),
    dst: Buffer.from(b.subarray(dst[0], dst[1])),
    sport: sport ? b.readUInt16BE(sport[0]) : 0,
    dport: dport ? b.readUInt16BE(dport[0]) : 0,
  };
}

function entry(b: Buffer, off: number, len: number): ConntrackEntry | null {
  const family = b[off + 16] === 10 ? 6 : 4; // nfgenmsg.nfgen_family: AF_INET6 = 10
  const a = attrs(b, off + 20, off + len);
  const orig = a.get(CTA_TUPLE_ORIG);
  const reply = a.get(CTA_TUPLE_REPLY);
  if (!orig || !reply) return null;
  const o = tuple(b, orig, family);
  const r = tuple(b, reply, family);
  const status = a.get(CTA_STATUS);
  const proto = attrs(b, ...attrs(b, orig[0], orig[1]).get(CTA_TUPLE_PROTO)!).get(CTA_PROTO_NUM);
  if (!o || !r || !proto) return null;
  return { family, proto: b[proto[0]]!, orig: o, reply: r, status: status ? b.readUInt32BE(status[0]) : 0 };
}

/** The connections whose mark & mask == mark (both families). Or a negative errno. */
export function dumpConntrackByMark(fd: number, mark: number, mask: number): ConntrackEntry[] | number {
  const out: ConntrackEntry[] = [];
  const rc = walkDump(fd, mark, mask, (off, len) => {
    const e = entry(reply, off, len);
    if (e) out.push(e);
  });
  return rc < 0 ? rc : out;
}

/** How many connections have mark & mask == mark (a filtered dump, counted). Or a negative errno. */
export function countConntrackByMark(fd: number, mark: number, mask: number): number {
  return walkDump(fd, mark, mask, () => {});
}

/** Run a filtered dump, calling `visit` with each entry's message offset and length; the count, or -errno. */
function walkDump(fd: number, mark: number, mask: number, visit: (off: number, len: number) => void): number {
  const req = request(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, mark, mask);
  if ((sys.send(fd, req, req.length, 0) as number) < 0) return lastErrno();
  const want = req.readUInt32LE(8);
  let count = 0;
  // The kernel fills the next part of a dump as each one is read, so a part is always queued.
  for (;;) {
    const n = sys.recv(fd, reply, reply.length, MSG_DONTWAIT) as number;
    if (n < 0) return -(koffi.errno() || EAGAIN);
    for (let off = 0; off + 16 <= n; ) {
      const len = reply.readUInt32LE(off);
      const type = reply.readUInt16LE(off + 4);
      const flags = reply.readUInt16LE(off + 6);
      if (len < 16 || off + len > n) return -EPROTO;
      if (reply.readUInt32LE(off + 8) === want) {
        if (type === NLMSG_DONE) return count;
        if (type === NLMSG_ERROR) return off + 20 <= n ? reply.readInt32LE(off + 16) || count : -EPROTO;
        if (type === ((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW)) {
          visit(off, len);
          count++;
        }
        if (!(flags & NLM_F_MULTI)) return count;
      }
      off += (len + 3) & ~3;
    }
  }
}
