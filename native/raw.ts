/**
 * native/raw.ts — a raw IP socket that sends whole packets the caller built (IP header
 * included), with a packet mark, in-process with koffi. Node has no raw sockets.
 *
 *   const fd = openRawSocket(4, 0x3f000000);   // IPPROTO_RAW (header included), SO_MARK set; or -errno
 *   sendRaw(fd, 4, packet, dstBytes)            // 0, or -errno
 *   closeRawSocket(fd);
 *
 * Needs CAP_NET_RAW (and CAP_NET_ADMIN for the mark). The socket belongs to the network
 * namespace of the process that opens it.
 */
import koffi from 'koffi';
import { AF_INET, AF_INET6, SOCK_RAW, SOCK_CLOEXEC, EINVAL, lastErrno, sys } from './libc.js';


const IPPROTO_RAW = 255;
const SOL_SOCKET = 1;
const SO_MARK = 36;

/** A raw socket for whole packets of `family`, marking what it sends with `mark`; its fd, or -errno. */
export function openRawSocket(family: 4 | 6, mark: number): number {
  const fd = sys.socket(family === 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW) as number;
  if (fd < 0) return lastErrno();
  const value = Buffer.alloc(4);
  value.writeUInt32LE(mark >>> 0);
  if ((sys.setsockopt(fd, SOL_SOCKET, SO_MARK, value, 4) as number) < 0) {
    const errno = koffi.errno() || EINVAL;
    sys.close(fd);
    return -errno;
  }
  return fd;
}

export function closeRawSocket(fd: number): void {
  sys.close(fd);
}

/** Send one packet (IP header first) to `dst` (4 or 16 address bytes). 0, or -errno. */
export function sendRaw(fd: number, family: 4 | 6, packet: Buffer, dst: Buffer): number {
  // sockaddr_in (16 bytes) or sockaddr_in6 (28): the family and the address; the port is unused.
  const addr = Buffer.alloc(family === 4 ? 16 : 28);
  addr.writeUInt16LE(family === 4 ? AF_INET : AF_INET6, 0);
  dst.copy(addr, family === 4 ? 4 : 8);
  const n = sys.sendto(fd, packet, packet.length, 0, addr, addr.length) as number;
  return n < 0 ? lastErrno() : 0;
}
