/**
 * MemoryReplyDatapath: the reply-by-arrival tables in memory, validated and keyed through the
 * same codec as the kernel's, for the agent's --dry-run and for tests above the kernel. No
 * packet passes through it, so nothing is learned and the counters stay zero.
 */
import { FAMILY_IPV4, FAMILY_IPV6, Layout, Reasons, type Reason } from '../abi.js';
import { checkLinkId, decodeFlowKey, encodeFlowKey, encodeLink, type FlowKey, type LinkEntry } from '../codec.js';
import { monotonicNs } from '../datapath.js';
import type { Counter } from '../port.js';
import { invalid } from '../errors.js';
import type { ArrivalEntry, ReplyCounters, ReplyDatapathPort } from './port.js';

export class MemoryReplyDatapath implements ReplyDatapathPort {
  readonly adopted = false;
  private readonly links = new Map<number, LinkEntry>();
  private readonly arrivals = new Map<string, { linkId: number; lastSeenNs: bigint }>();
  private readonly key4 = Buffer.alloc(Layout.flow4Key.size);
  private readonly key6 = Buffer.alloc(Layout.flow6Key.size);
  private readonly interfaces: Map<string, number>;

  constructor(
    readonly arrivalTableSize = 1 << 16,
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
    if (link.internet) throw invalid(`link ${id}`, 'reply-by-arrival links are overlay links');
    encodeLink(link, Buffer.alloc(Layout.link.size)); // validates
    this.links.set(id, { ...link });
  }

  setLinkUp(id: number, up: boolean): void {
    const l = this.links.get(id);
    if (!l) throw invalid(`link ${id}`, 'no such link: set it first');
    l.up = up;
  }

  deleteLink(id: number): void {
    this.links.delete(id);
  }

  listLinks(): Map<number, LinkEntry> {
    return new Map([...this.links].map(([k, v]) => [k, { ...v }]));
  }

  private key(k: FlowKey): string {
    const family = encodeFlowKey(k, this.key4, 0, this.key6, 0);
    return `${family}:${(family === FAMILY_IPV4 ? this.key4 : this.key6).toString('hex')}`;
  }

  setArrival(key: FlowKey, linkId: number, now = monotonicNs()): void {
    checkLinkId(linkId);
    const k = this.key(key);
    this.arrivals.delete(k);
    this.arrivals.set(k, { linkId, lastSeenNs: now });
    while (this.arrivals.size > this.arrivalTableSize) this.arrivals.delete(this.arrivals.keys().next().value!);
  }

  getArrival(key: FlowKey): { linkId: number; lastSeenNs: bigint } | null {
    const v = this.arrivals.get(this.key(key));
    return v ? { ...v } : null;
  }

  listArrivals(limit = Number.POSITIVE_INFINITY): ArrivalEntry[] {
    const out: ArrivalEntry[] = [];
    for (const [k, v] of this.arrivals) {
      if (out.length >= limit) break;
      const family = k.startsWith('6:') ? FAMILY_IPV6 : FAMILY_IPV4;
      out.push({ ...decodeFlowKey(family, Buffer.from(k.slice(2), 'hex')), ...v });
    }
    return out;
  }

  countArrivals(): number {
    return this.arrivals.size;
  }

  ageFlows(maxIdleNs: bigint, now = monotonicNs()): number {
    let n = 0;
    for (const [k, v] of this.arrivals) {
      if (now > v.lastSeenNs && now - v.lastSeenNs > maxIdleNs) {
        this.arrivals.delete(k);
        n++;
      }
    }
    return n;
  }

  counters(): ReplyCounters {
    const reasons = {} as Record<Reason, Counter>;
    for (const r of Reasons) reasons[r] = { packets: 0n, bytes: 0n };
    return { arrived: new Map(), replied: new Map(), reasons };
  }

  close(): void {}
}
