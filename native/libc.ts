/**
 * native/libc.ts — the few libc socket calls the in-process netlink and raw-socket bindings share
 * (netlink.ts, conntrack.ts, raw.ts), bound once with koffi. Each returns what libc returns; the
 * caller reads koffi.errno() on failure and turns it into -errno.
 */
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

export const sys = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)'),
  send: libc.func('long send(int fd, const void *buf, size_t len, int flags)'),
  sendto: libc.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
  recv: libc.func('long recv(int fd, void *buf, size_t len, int flags)'),
  close: libc.func('int close(int fd)'),
};

export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const MSG_DONTWAIT = 0x40;
export const EAGAIN = 11;
export const EINVAL = 22;
export const EPROTO = 71;

/** The errno of the last failed call, as a negative number (EINVAL when libc left none). */
export function lastErrno(): number {
  return -(koffi.errno() || EINVAL);
}
