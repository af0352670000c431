/**
 * Synthetic flows in bulk, for tests and benchmarks that need a full table: flow n of a family
 * has its own source address (10.64.0.0 + n, fd99::n), all to one service port. Written in the
 * driver's process (dp-driver.ts `fillFlows`), so a million entries do not cross the pipe.
 */
import type { Datapath, FlowKey } from '../../src/datapath/index.js';

export interface FillFlows {
  /** Flow numbers first .. first + count - 1. */
  first?: number;
  count: number;
  family?: 4 | 6;
  /** Policy of flow n: policyIds[n % length]. */
  policyIds: number[];
  /** Last-seen stamp (monotonic ns) of every entry written; default now. */
  now?: bigint;
}

export function syntheticFlow(n: number, family: 4 | 6 = 4): FlowKey {
  if (family === 4) {
    const a = 0x0a400000 + n; // 10.64.0.0/10 holds 4M flows
    return { protocol: 'tcp', src: `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`, sport: 20000, dst: '10.98.0.1', dport: 443 };
  }
  return { protocol: 'tcp', src: `fd99::${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`, sport: 20000, dst: 'fd98::1', dport: 443 };
}

export function fillFlows(dp: Datapath, f: FillFlows): number {
  const first = f.first ?? 0;
  const BATCH = 65_536;
  for (let at = 0; at < f.count; at += BATCH) {
    const entries: { key: FlowKey; policyId: number }[] = [];
    for (let i = at; i < Math.min(f.count, at + BATCH); i++) {
      const n = first + i;
      entries.push({ key: syntheticFlow(n, f.family), policyId: f.policyIds[n % f.policyIds.length]! });
    }
    dp.upsertFlows(entries, f.now);
  }
  return f.count;
}
