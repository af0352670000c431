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
import { monotonicNs, type Counter, type Counters, type FlowEntry } from './datapath.js';
import { invalid } from './errors.js';
import { flowPasses, type DatapathPort, type FlowFilter } from './port.js';

export class MemoryDatapath implements DatapathPort {
  readonly adopted = false;
  private readonly links = new Map<number, LinkEntry>();
  private readonly policies = new Map<number, PolicyAction>();
  private readonly dscp = new Map<number, number>();
  /** `family:hex of the encoded key` -> entry; insertion order doubles as LRU order. */
  private readonly flows = new Map<string, { policyId: number; lastSeenNs: bigint }>();
  private readonly key4 = Buffer.alloc(Layout.flow4Key.size);
  private readonly key6 = Buffer.alloc(Layout.flow6Key.size);
  private readonly scratch = Buffer.alloc(Layout.link.size);
  private readonly interfaces: Map<string, number>;

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
    const k = this.key(key);
    this.flows.delete(k);
    this.flows.set(k, { policyId, lastSeenNs: now });
    // An LRU table evicts its least recently written entries when full.
    while (this.flows.size > this.flowTableSize) this.flows.delete(this.flows.keys().next().value!);
  }

  upsertFlows(entries: ReadonlyArray<{ key: FlowKey; policyId: number }>, now = monotonicNs()): void {
    const encoded = entries.map((e) => {
      checkPolicyId(e.policyId);
      return this.key(e.key);
    }); // all validated before any write, as the kernel facade does
    encoded.forEach((k, i) => {
      this.flows.delete(k);
      this.flows.set(k, { policyId: entries[i]!.policyId, lastSeenNs: now });
    });
    while (this.flows.size > this.flowTableSize) this.flows.delete(this.flows.keys().next().value!);
  }

  getFlow(key: FlowKey): { policyId: number; lastSeenNs: bigint } | null {
    const v = this.flows.get(this.key(key));
    return v ? { ...v } : null;
  }

  deleteFlows(keys: ReadonlyArray<FlowKey>): number {
    let n = 0;
    for (const k of keys) if (this.flows.delete(this.key(k))) n++;
    return n;
  }

  listFlows(filter: FlowFilter = {}): FlowEntry[] {
    const out: FlowEntry[] = [];
    for (const [k, v] of this.flows) {
      if (!flowPasses(filter, v.policyId)) continue;
      const family = k.startsWith('6:') ? FAMILY_IPV6 : FAMILY_IPV4;
      out.push({ ...decodeFlowKey(family, Buffer.from(k.slice(2), 'hex')), ...v });
    }
    return out;
  }

  countFlowsByPolicy(): Map<number, number> {
    const counts = new Map<number, number>();
    for (const v of this.flows.values()) counts.set(v.policyId, (counts.get(v.policyId) ?? 0) + 1);
    return counts;
  }

  countFlows(): number {
    return this.flows.size;
  }

  ageFlows(maxIdleNs: bigint, now = monotonicNs()): number {
    let n = 0;
    for (const [k, v] of this.flows) {
      if (now > v.lastSeenNs && now - v.lastSeenNs > maxIdleNs) {
        this.flows.delete(k);
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
