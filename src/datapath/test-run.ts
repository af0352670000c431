/**
 * BPF_PROG_TEST_RUN from TypeScript: run a loaded program on a packet in the kernel and get the
 * verdict, the packet as the program left it, and the kernel-measured time per run. Used by
 * the packet-table tests and the benchmarks; harmless in production (no packet is sent).
 */
import * as native from '../../native/libbpf.js';
import { DatapathErrorCode, check } from './errors.js';

export interface TestRun {
  /** The program's return value: TC_ACT_OK (0), TC_ACT_REDIRECT (7), ... */
  verdict: number;
  /** The packet after the program ran. */
  packet: Buffer;
  /** Mean ns per run, as the kernel timed it. */
  nsPerRun: number;
}

/** Bytes of struct __sk_buff: the context a tc program gets. */
export const SKB_CTX_SIZE = 192;
const SKB_IFINDEX_OFFSET = 40;

/**
 * Run `progFd` on `packet` (which starts with an Ethernet header: the kernel builds the skb
 * from it) `repeat` times. `ifindex` sets skb->ifindex, i.e. which device the program thinks
 * the packet is leaving by.
 */
export function testRun(progFd: number, packet: Uint8Array, opts: { repeat?: number; ifindex?: number } = {}): TestRun {
  const out = Buffer.alloc(packet.length + 256);
  const r: native.TestRunResult = { retval: 0, durationNs: 0, dataSizeOut: 0, ctxSizeOut: 0 };
  let ctx: Buffer | null = null;
  if (opts.ifindex !== undefined) {
    ctx = Buffer.alloc(SKB_CTX_SIZE);
    ctx.writeUInt32LE(opts.ifindex, SKB_IFINDEX_OFFSET);
  }
  check(native.progTestRun(progFd, packet, out, opts.repeat ?? 1, r, ctx, null), DatapathErrorCode.TEST_RUN, 'BPF_PROG_TEST_RUN');
  return { verdict: r.retval, packet: out.subarray(0, r.dataSizeOut), nsPerRun: r.durationNs };
}
