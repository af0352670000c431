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
  schedGetcpu: libc.func('int sched_getcpu(void)'),
  // pid 0: the calling thread (a Linux thread's affinity is its own).
  schedGetaffinity: libc.func('int sched_getaffinity(int pid, size_t size, _Out_ uint8_t *mask)'),
  schedSetaffinity: libc.func('int sched_setaffinity(int pid, size_t size, const uint8_t *mask)'),
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

/** Bytes of a CPU mask: 1024 CPUs, glibc's cpu_set_t. */
const CPU_MASK_BYTES = 128;

/**
 * Runs `work` with the calling thread held on the CPU it is on, then gives the thread its old
 * affinity back. For work whose kernel side keeps per-CPU state that a move between CPUs would
 * split (an LRU map's per-CPU free lists, see datapath/migration.ts). When the affinity cannot
 * be read or set, `work` runs unpinned.
 */
export function onOneCpu<T>(work: () => T): T {
  const before = new Uint8Array(CPU_MASK_BYTES);
  const cpu = sys.schedGetcpu() as number;
  if (cpu < 0 || cpu >= CPU_MASK_BYTES * 8 || (sys.schedGetaffinity(0, CPU_MASK_BYTES, before) as number) !== 0) return work();
  const one = new Uint8Array(CPU_MASK_BYTES);
  one[cpu >> 3] = 1 << (cpu & 7);
  const pinned = (sys.schedSetaffinity(0, CPU_MASK_BYTES, one) as number) === 0;
  try {
    return work();
  } finally {
    if (pinned) sys.schedSetaffinity(0, CPU_MASK_BYTES, before);
  }
}

/** The errno of the last failed call, as a negative number (EINVAL when libc left none). */
export function lastErrno(): number {
  return -(koffi.errno() || EINVAL);
}
