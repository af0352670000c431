/**
 * The steering program with a clock around it (bench/bpf/timed_steer.bpf.c), loaded as it is —
 * no pins, nothing adopted — with the few table writes a benchmark needs, and its clock read
 * back: runs and nanoseconds summed over the CPUs.
 *
 *   const t = TimedSteer.load(objectPath);
 *   t.setLink(0, { ifindex, up: true }); t.setPolicy(2, { redirectLink: 0 }); t.upsertFlow(key, 2);
 *   attachEgress('wan0', t.egressFd, 'eth'); … traffic …; t.take()   // { runs, nsPerRun }, and zeroed
 */
import * as native from '../native/libbpf.js';
import { Layout, Reasons, type Reason } from '../src/datapath/abi.js';
import { BpfMap } from '../src/datapath/bpf-map.js';
import { encodeFlowKey, encodeFlowValue, encodeLink, encodePolicy, type FlowKey, type LinkEntry, type PolicyAction } from '../src/datapath/codec.js';

export class TimedSteer {
  private constructor(
    private readonly obj: native.NativePtr,
    private readonly maps: Record<'flows4' | 'policies' | 'links' | 'timer' | 'reasons', BpfMap>,
    /** ws_timed_egress and ws_timed_noop. */
    readonly egressFd: number,
    readonly noopFd: number,
  ) {}

  static load(path: string): TimedSteer {
    const obj = native.objectOpen(path);
    if (typeof obj === 'number' || native.objectLoad(obj) < 0) throw new Error(`cannot load ${path}`);
    const cpus = native.numPossibleCpus();
    const map = (name: string) => BpfMap.fromFd(name, native.mapFd(native.findMap(obj, name) as native.NativePtr), cpus);
    const prog = (name: string) => native.programFd(native.findProgram(obj, name) as native.NativePtr);
    const maps = { flows4: map('ws_flows4'), policies: map('ws_policies'), links: map('ws_links'), timer: map('ws_bench_timer'), reasons: map('ws_reasons') };
    return new TimedSteer(obj, maps, prog('ws_timed_egress'), prog('ws_timed_noop'));
  }

  setLink(id: number, link: LinkEntry): void {
    const v = Buffer.alloc(Layout.link.size);
    encodeLink(link, v);
    this.maps.links.update(u32(id), v);
  }

  setPolicy(id: number, action: PolicyAction): void {
    const v = Buffer.alloc(Layout.policy.size);
    encodePolicy(action, v);
    this.maps.policies.update(u32(id), v);
  }

  /** An IPv4 flow. */
  upsertFlow(key: FlowKey, policyId: number): void {
    const k = Buffer.alloc(Layout.flow4Key.size);
    encodeFlowKey(key, k, 0, Buffer.alloc(Layout.flow6Key.size), 0);
    const v = Buffer.alloc(Layout.flowVal.size);
    encodeFlowValue(policyId, process.hrtime.bigint(), v);
    this.maps.flows4.update(k, v);
  }

  /**
   * Since the last take, and zeroed for the next: runs and mean ns of each whole run, and the mean
   * ns of each conntrack read minus an empty region timed beside it in the same run (NaN when the
   * program has no read).
   */
  take(): { runs: number; nsPerRun: number; readNs: number } {
    const t = this.maps.timer;
    const [run, read, empty] = [0, 1, 2].map((slot) => {
      const value = Buffer.alloc(t.valueBytes);
      t.lookup(u32(slot), value);
      t.update(u32(slot), Buffer.alloc(t.valueBytes));
      const { packets, bytes } = t.sumPercpuCounter(value, 0);
      return { runs: Number(packets), ns: packets ? Number(bytes) / Number(packets) : Number.NaN };
    }) as [{ runs: number; ns: number }, { runs: number; ns: number }, { runs: number; ns: number }];
    return { runs: run.runs, nsPerRun: run.ns, readNs: read.ns - empty.ns };
  }

  /** Packets counted under `reason` so far (summed over the CPUs). */
  reason(reason: Reason): number {
    const m = this.maps.reasons;
    const value = Buffer.alloc(m.valueBytes);
    m.lookup(u32(Reasons.indexOf(reason)), value);
    return Number(m.sumPercpuCounter(value, 0).packets);
  }

  close(): void {
    native.objectClose(this.obj);
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
