/**
 * MemoryDatapath: the datapath's tables kept in memory, with the same validation and the same
 * key normalisation as the kernel tables (it encodes through the same codec). For the agent's
 * --dry-run mode and for tests of the layers above that need no kernel. Packets never pass
 * through it, so its counters stay zero.
 */
import { FAMILY_IPV4, FAMILY_IPV6, Layout, Reasons, type Reason } from './abi.js';
import {
  checkDscp,
  checkLinkId,
  checkPolicyId,
  decodeFlowKey,
  encodeFlowKey,
  encodeLink,
  encodePolicy,
  type FlowKey,
  type LinkEntry,
  type PolicyAction,
} from './codec.js';
import { monotonicNs } from './datapath.js';
import type { Counter, Counters, FlowEntry } from './port.js';
import { invalid } from './errors.js';
import type { NeighbourScope } from './neighbours.js';
import { flowPasses, pageScan, type DatapathPort, type FlowFilter, type FlowPage, type FlowPageRequest, type FlowTableFill } from './port.js';

/** A flow's place in the write order: what pageFlows walks. `key` is gone once the flow is. */
interface Slot {
  readonly seq: number;
  key: string | undefined;
}

interface FlowRecord {
  policyId: number;
  lastSeenNs: bigint;
  slot: Slot;
}

const MEMORY_CURSOR = /^m\.([0-9]{1,15})$/;

export class MemoryDatapath implements DatapathPort {
  readonly adopted = false;
  /** The neighbour flushes asked for, in order (there is no neighbour table to flush here). */
  readonly neighbourFlushes: { ifindex: number; scope: NeighbourScope }[] = [];
  private readonly links = new Map<number, LinkEntry>();
  private readonly policies = new Map<number, PolicyAction>();
  private readonly dscp = new Map<number, number>();
  /** `family:hex of the encoded key` -> entry; insertion order doubles as LRU order. */
  private readonly flows = new Map<string, FlowRecord>();
  /**
   * Every flow's slot in the order written, sequence numbers rising: a page starts at the first
   * slot after its cursor's (a binary search) and walks on. A removed flow leaves an empty slot,
   * swept out once they are half the log.
   */
  private slots: Slot[] = [];
  private emptySlots = 0;
  private nextSeq = 1;
  private readonly key4 = Buffer.alloc(Layout.flow4Key.size);
  private readonly key6 = Buffer.alloc(Layout.flow6Key.size);
  private readonly scratch = Buffer.alloc(Layout.link.size);
  private readonly interfaces: Map<string, number>;
  /** Flows evicted to make room, IPv4 and IPv6. */
  private readonly evicted: [number, number] = [0, 0];

  constructor(
    readonly flowTableSize = 1 << 20,
    /** Interface names this fake host has, with their ifindex. */
    interfaces: Record<string, number> = {},
  ) {
    this.interfaces = new Map(Object.entries(interfaces));
  }

  ifindex(ifname: string): number {
    const i = this.interfaces.get(ifname);
    if (i === undefined) throw invalid(`interface ${ifname}`, `no interface named ${ifname}`);
    return i;
  }

  attach(ifname: string): { ifname: string; ifindex: number } {
    return { ifname, ifindex: this.ifindex(ifname) };
  }

  setLink(id: number, link: LinkEntry): void {
    checkLinkId(id);
    encodeLink(link, this.scratch); // validates
    this.links.set(id, { ...link });
  }

  setLinkUp(id: number, up: boolean): void {
    const l = this.links.get(id);
    if (!l) throw invalid(`link ${id}`, 'no such link: set it first');
    l.up = up;
  }

  listLinks(): Map<number, LinkEntry> {
    return new Map([...this.links].map(([k, v]) => [k, { ...v }]));
  }

  flushNeighbours(ifindex: number, scope: NeighbourScope): number {
    this.neighbourFlushes.push({ ifindex, scope });
    return 0;
  }

  setPolicy(id: number, action: PolicyAction): void {
    checkPolicyId(id);
    encodePolicy(action, Buffer.alloc(Layout.policy.size)); // validates
    this.policies.set(id, { ...action });
  }

  deletePolicy(id: number): void {
    checkPolicyId(id);
    this.policies.delete(id);
  }

  listPolicies(): Map<number, PolicyAction> {
    return new Map([...this.policies].map(([k, v]) => [k, { ...v }]));
  }

  setDscpPolicy(dscp: number, policyId: number | null): void {
    checkDscp(dscp);
    if (policyId === null) this.dscp.delete(dscp);
    else {
      checkPolicyId(policyId);
      this.dscp.set(dscp, policyId);
    }
  }

  listDscpPolicies(): Map<number, number> {
    return new Map(this.dscp);
  }

  private key(k: FlowKey): string {
    const family = encodeFlowKey(k, this.key4, 0, this.key6, 0);
    return `${family}:${(family === FAMILY_IPV4 ? this.key4 : this.key6).toString('hex')}`;
  }

  upsertFlow(key: FlowKey, policyId: number, now = monotonicNs()): void {
    checkPolicyId(policyId);
    this.write(this.key(key), policyId, now);
    this.evict();
  }

  upsertFlows(entries: ReadonlyArray<{ key: FlowKey; policyId: number }>, now = monotonicNs()): void {
    const encoded = entries.map((e) => {
      checkPolicyId(e.policyId);
      return this.key(e.key);
    }); // all validated before any write, as the kernel facade does
    encoded.forEach((k, i) => this.write(k, entries[i]!.policyId, now));
    this.evict();
  }

  getFlow(key: FlowKey): { policyId: number; lastSeenNs: bigint } | null {
    const v = this.flows.get(this.key(key));
    return v ? { policyId: v.policyId, lastSeenNs: v.lastSeenNs } : null;
  }

  deleteFlows(keys: ReadonlyArray<FlowKey>): number {
    let n = 0;
    for (const k of keys) if (this.remove(this.key(k))) n++;
    return n;
  }

  listFlows(filter: FlowFilter = {}): FlowEntry[] {
    const out: FlowEntry[] = [];
    for (const [k, v] of this.flows) {
      if (!flowPasses(filter, v.policyId)) continue;
      out.push(entryOf(k, v));
    }
    return out;
  }

  /** A page in write order; the cursor `m.<seq>` is the last slot walked. */
  pageFlows(request: FlowPageRequest): FlowPage {
    const { limit, policyIds } = request;
    const scanBudget = request.scan ?? pageScan(limit);
    let after = 0;
    if (request.after !== undefined) {
      const m = MEMORY_CURSOR.exec(request.after);
      if (!m) throw invalid('flow cursor', `${JSON.stringify(request.after.slice(0, 40))} is not a cursor this datapath hands out`);
      after = Number(m[1]);
    }
    const items: FlowEntry[] = [];
    let scanned = 0;
    for (let i = this.firstSlotAfter(after); i < this.slots.length; i++) {
      const slot = this.slots[i]!;
      scanned++;
      const record = slot.key === undefined ? undefined : this.flows.get(slot.key);
      if (record && (policyIds === undefined || policyIds.has(record.policyId))) items.push(entryOf(slot.key!, record));
      if (items.length < limit && scanned < scanBudget) continue;
      return i + 1 < this.slots.length ? { items, next: `m.${slot.seq}` } : { items };
    }
    return { items };
  }

  /** Index of the first slot whose seq is above `seq` (the log is in rising seq order). */
  private firstSlotAfter(seq: number): number {
    let lo = 0;
    let hi = this.slots.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.slots[mid]!.seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private write(k: string, policyId: number, now: bigint): void {
    this.remove(k);
    const slot: Slot = { seq: this.nextSeq++, key: k };
    this.slots.push(slot);
    this.flows.set(k, { policyId, lastSeenNs: now, slot });
  }

  private remove(k: string): boolean {
    const record = this.flows.get(k);
    if (!record) return false;
    this.flows.delete(k);
    record.slot.key = undefined;
    if (++this.emptySlots > 1024 && this.emptySlots * 2 > this.slots.length) {
      this.slots = this.slots.filter((s) => s.key !== undefined);
      this.emptySlots = 0;
    }
    return true;
  }

  /** An LRU table evicts its least recently written entries when full. */
  /** An LRU table evicts its least recently written entries when full (counted per family). */
  private evict(): void {
    while (this.flows.size > this.flowTableSize) {
      const k = this.flows.keys().next().value!;
      this.remove(k);
      this.evicted[k.startsWith('6:') ? 1 : 0]! += 1;
    }
  }

  countFlowsByPolicy(): Map<number, number> {
    const counts = new Map<number, number>();
    for (const v of this.flows.values()) counts.set(v.policyId, (counts.get(v.policyId) ?? 0) + 1);
    return counts;
  }

  countFlows(): number {
    return this.flows.size;
  }

  flowTables(): FlowTableFill[] {
    let v6 = 0;
    for (const k of this.flows.keys()) if (k.startsWith('6:')) v6++;
    return [
      { family: FAMILY_IPV4, entries: this.flows.size - v6, maxEntries: this.flowTableSize, evicted: this.evicted[0]! },
      { family: FAMILY_IPV6, entries: v6, maxEntries: this.flowTableSize, evicted: this.evicted[1]! },
    ];
  }

  ageFlows(maxIdleNs: bigint, now = monotonicNs()): number {
    let n = 0;
    for (const [k, v] of this.flows) {
      if (now > v.lastSeenNs && now - v.lastSeenNs > maxIdleNs) {
        this.remove(k);
        n++;
      }
    }
    return n;
  }

  counters(): Counters {
    const reasons = {} as Record<Reason, Counter>;
    for (const r of Reasons) reasons[r] = { packets: 0n, bytes: 0n };
    return { links: new Map(), policies: new Map(), reasons };
  }

  close(): void {}
}

function entryOf(key: string, record: FlowRecord): FlowEntry {
  const family = key.startsWith('6:') ? FAMILY_IPV6 : FAMILY_IPV4;
  return { ...decodeFlowKey(family, Buffer.from(key.slice(2), 'hex')), policyId: record.policyId, lastSeenNs: record.lastSeenNs };
}
