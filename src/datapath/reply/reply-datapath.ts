/**
 * ReplyDatapath: the typed facade over the reply-by-arrival object (bpf/reply.bpf.c), for a
 * wansteer agent at the cloud end of overlay links. Ingress learns which link each flow
 * arrived on; egress sends the flow's replies back out of it. User space only names the links
 * and ages idle flows: there are no sessions and no policies at this end.
 *
 *   const dp = ReplyDatapath.open({ pinDir: '/sys/fs/bpf/wansteer' });
 *   dp.setLink(0, { ifindex: dp.ifindex('tun0'), up: true, nextHop4: '10.10.1.1' });
 *   dp.attach('tun0');                  // ingress and egress
 *   dp.ageFlows(300n * 1_000_000_000n); // what FlowAgeing does every so often
 */
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import * as native from '../../../native/libbpf.js';
import { FAMILY_IPV4, FAMILY_IPV6, Layout, MAX_LINKS, ReplyMapName, ReplyProgramName, Reasons, type Reason } from '../abi.js';
import type { Family } from '../addr.js';
import { attachEgress, attachIngress, detachEgress, detachIngress, detectFraming, interfaceIndex, type LinkFraming } from '../attach.js';
import type { BpfMap } from '../bpf-map.js';
import { checkLinkId, decodeFlowKey, decodeLink, encodeFlowKey, encodeLink, type FlowKey, type LinkEntry } from '../codec.js';
import { monotonicNs } from '../datapath.js';
import type { Counter } from '../port.js';
import { invalid } from '../errors.js';
import { loadReplyDatapath, type ReplyLoaded, type ReplyLoadOptions } from './loader.js';
import type { ArrivalEntry, ReplyCounters, ReplyDatapathPort } from './port.js';

const CHUNK = 65_536;

export interface ReplyAttachment {
  ifname: string;
  ifindex: number;
  framing: LinkFraming;
  /** This process created the clsact qdisc (and may remove it). */
  createdHook: boolean;
}

export class ReplyDatapath implements ReplyDatapathPort {
  private readonly attachments = new Map<string, ReplyAttachment>();
  private readonly key4 = Buffer.alloc(Layout.flow4Key.size);
  private readonly key6 = Buffer.alloc(Layout.flow6Key.size);
  private readonly value = Buffer.alloc(Layout.arrival.size);
  private readonly linkBuf = Buffer.alloc(Layout.link.size);
  private readonly u32a = Buffer.alloc(4);
  private readonly u32b = Buffer.alloc(4);
  private closed = false;

  private constructor(private readonly d: ReplyLoaded) {}

  /** Load the programs and maps, or adopt the ones pinned under `pinDir`. */
  static open(opts: ReplyLoadOptions = {}): ReplyDatapath {
    return new ReplyDatapath(loadReplyDatapath(opts));
  }

  get adopted(): boolean {
    return this.d.adopted;
  }
  get arrivalTableSize(): number {
    return this.d.arrivalTableSize;
  }
  get pinDir(): string {
    return this.d.pinDir;
  }
  /** Program fds, for BPF_PROG_TEST_RUN and the benchmarks. */
  get programFds(): ReplyLoaded['programs'] {
    return { ...this.d.programs };
  }

  ifindex(ifname: string): number {
    return interfaceIndex(ifname);
  }

  /** Both hooks of `ifname`; a restarted agent replaces its filters in place. */
  attach(ifname: string, opts: { framing?: LinkFraming } = {}): ReplyAttachment {
    const framing = opts.framing ?? detectFraming(ifname);
    const p = this.d.programs;
    const ingress = attachIngress(ifname, framing === 'eth' ? p.arriveEth : p.arriveL3, framing);
    const egress = attachEgress(ifname, framing === 'eth' ? p.replyEth : p.replyL3, framing);
    const prev = this.attachments.get(ifname);
    const a = { ifname, ifindex: egress.ifindex, framing, createdHook: ingress.createdHook || egress.createdHook || (prev?.createdHook ?? false) };
    this.attachments.set(ifname, a);
    return a;
  }

  detach(ifname: string): boolean {
    const a = this.attachments.get(ifname);
    this.attachments.delete(ifname);
    const ingress = detachIngress(ifname);
    return detachEgress(ifname, undefined, a?.createdHook ?? false) || ingress;
  }

  // ---- links -----------------------------------------------------------------------------

  setLink(id: number, link: LinkEntry): void {
    checkLinkId(id);
    if (link.internet) throw invalid(`link ${id}`, 'reply-by-arrival links are overlay links');
    encodeLink(link, this.linkBuf);
    const before = this.getLink(id);
    this.d.maps.links.update(this.u32(this.u32a, id), this.linkBuf);
    this.d.maps.ifaces.update(this.u32(this.u32a, link.ifindex), this.u32(this.u32b, id));
    // The link moved to another interface: packets arriving on the old one are no longer its.
    if (before && before.ifindex !== link.ifindex) this.d.maps.ifaces.delete(this.u32(this.u32a, before.ifindex));
  }

  getLink(id: number): LinkEntry | null {
    checkLinkId(id);
    const b = Buffer.alloc(Layout.link.size);
    this.d.maps.links.lookup(this.u32(this.u32a, id), b);
    return decodeLink(b);
  }

  setLinkUp(id: number, up: boolean): void {
    const link = this.getLink(id);
    if (!link) throw invalid(`link ${id}`, 'no such link: set it first');
    encodeLink({ ...link, up }, this.linkBuf);
    this.d.maps.links.update(this.u32(this.u32a, id), this.linkBuf);
  }

  deleteLink(id: number): void {
    const before = this.getLink(id);
    this.linkBuf.fill(0);
    this.d.maps.links.update(this.u32(this.u32a, id), this.linkBuf);
    if (before) this.d.maps.ifaces.delete(this.u32(this.u32a, before.ifindex));
  }

  listLinks(): Map<number, LinkEntry> {
    const out = new Map<number, LinkEntry>();
    this.d.maps.links.forEachChunk((keys, values, n) => {
      for (let i = 0; i < n; i++) {
        const l = decodeLink(values.subarray(i * Layout.link.size, (i + 1) * Layout.link.size));
        if (l) out.set(keys.readUInt32LE(i * 4), l);
      }
    }, MAX_LINKS);
    return out;
  }

  // ---- arrivals ----------------------------------------------------------------------------

  setArrival(key: FlowKey, linkId: number, now = monotonicNs()): void {
    checkLinkId(linkId);
    const [map, k] = this.arrivalKey(key);
    this.value.fill(0);
    this.value.writeUInt32LE(linkId, Layout.arrival.linkId);
    this.value.writeBigUInt64LE(now, Layout.arrival.lastSeenNs);
    map.update(k, this.value);
  }

  getArrival(key: FlowKey): { linkId: number; lastSeenNs: bigint } | null {
    const [map, k] = this.arrivalKey(key);
    if (!map.lookup(k, this.value)) return null;
    return { linkId: this.value.readUInt32LE(Layout.arrival.linkId), lastSeenNs: this.value.readBigUInt64LE(Layout.arrival.lastSeenNs) };
  }

  listArrivals(limit = Number.POSITIVE_INFINITY): ArrivalEntry[] {
    const out: ArrivalEntry[] = [];
    const V = Layout.arrival.size;
    for (const [family, map] of this.arrivalMaps()) {
      if (out.length >= limit) break;
      map.forEachChunk((keys, values, n) => {
        for (let i = 0; i < n && out.length < limit; i++) {
          out.push({
            ...decodeFlowKey(family, keys, i * map.keySize),
            linkId: values.readUInt32LE(i * V + Layout.arrival.linkId),
            lastSeenNs: values.readBigUInt64LE(i * V + Layout.arrival.lastSeenNs),
          });
        }
      }, CHUNK);
    }
    return out;
  }

  countArrivals(): number {
    let total = 0;
    for (const [, map] of this.arrivalMaps()) map.forEachChunk((_k, _v, n) => (total += n), CHUNK);
    return total;
  }

  ageFlows(maxIdleNs: bigint, now = monotonicNs()): number {
    const V = Layout.arrival.size;
    let removed = 0;
    for (const [, map] of this.arrivalMaps()) {
      const K = map.keySize;
      const stale: Buffer[] = [];
      map.forEachChunk((keys, values, n) => {
        for (let i = 0; i < n; i++) {
          const seen = values.readBigUInt64LE(i * V + Layout.arrival.lastSeenNs);
          if (now > seen && now - seen > maxIdleNs) stale.push(Buffer.from(keys.subarray(i * K, (i + 1) * K)));
        }
      }, CHUNK);
      if (stale.length > 0) removed += map.deleteBatch(Buffer.concat(stale), stale.length);
    }
    return removed;
  }

  private arrivalKey(key: FlowKey): [BpfMap, Buffer] {
    return encodeFlowKey(key, this.key4, 0, this.key6, 0) === FAMILY_IPV4 ? [this.d.maps.arrivals4, this.key4] : [this.d.maps.arrivals6, this.key6];
  }

  private arrivalMaps(): [Family, BpfMap][] {
    return [
      [FAMILY_IPV4, this.d.maps.arrivals4],
      [FAMILY_IPV6, this.d.maps.arrivals6],
    ];
  }

  // ---- counters ----------------------------------------------------------------------------

  counters(): ReplyCounters {
    const reasons = {} as Record<Reason, Counter>;
    for (const r of Reasons) reasons[r] = { packets: 0n, bytes: 0n };
    const read = (m: BpfMap, visit: (id: number, c: Counter) => void) =>
      m.forEachChunk((keys, values, n) => {
        for (let i = 0; i < n; i++) {
          const c = m.sumPercpuCounter(values, i * m.valueBytes);
          if (c.packets || c.bytes) visit(keys.readUInt32LE(i * 4), c);
        }
      }, m.maxEntries);
    const arrived = new Map<number, Counter>();
    const replied = new Map<number, Counter>();
    read(this.d.maps.arrived, (id, c) => arrived.set(id, c));
    read(this.d.maps.replied, (id, c) => replied.set(id, c));
    read(this.d.maps.reasons, (id, c) => {
      const name = Reasons[id];
      if (name) reasons[name] = c;
    });
    return { arrived, replied, reasons };
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /** Let go in this process; pins and tc filters stay (traffic keeps following its arrivals). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    native.objectClose(this.d.obj);
  }

  /** Detach from what this process attached and remove the pins (uninstall, tests). */
  destroy(): void {
    for (const ifname of [...this.attachments.keys()]) this.detach(ifname);
    removeReplyPins(this.d.pinDir);
    this.close();
  }

  private u32(buf: Buffer, n: number): Buffer {
    buf.writeUInt32LE(n);
    return buf;
  }
}

/** Remove the reply-by-arrival pins under `pinDir` without loading anything. */
export function removeReplyPins(pinDir: string): void {
  for (const name of [...Object.values(ReplyMapName), ...Object.values(ReplyProgramName)]) {
    try {
      unlinkSync(join(pinDir, name));
    } catch {
      /* not there */
    }
  }
}
