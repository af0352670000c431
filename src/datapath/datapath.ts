/**
 * Datapath: the typed facade over the steering program's maps. The only module that knows
 * about BPF; everything above it speaks links, policies, DSCP values and flows.
 *
 *   const dp = Datapath.open({ pinDir: '/sys/fs/bpf/wansteer' });  // loads, or adopts pins
 *   dp.attach('wan0'); dp.attach('wan1');
 *   dp.setLink(1, { ifindex: dp.ifindex('wan1'), up: true, nextHop: '192.0.2.1' });
 *   dp.setPolicy(7, { redirectLink: 1, dscp: 46 });
 *   dp.upsertFlow({ protocol: 'tcp', src: '10.0.0.5', sport: 40000, dst: '198.51.100.9', dport: 443 }, 7);
 *
 * Failover is one write per policy: setPolicy(7, { redirectLink: 2 }) moves every flow of
 * policy 7 at once, because flows point at policies, not links (the engine does this when a
 * link's health changes). setLinkUp(1, false) is the coarser switch: the program then passes the
 * link's flows to the routed path, counted as link_down.
 */
import { readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import * as native from '../../native/libbpf.js';
import { DSCP_VALUES, FAMILY_IPV4, FAMILY_IPV6, Layout, MAX_LINKS, MAX_POLICIES, MapName, MetaMapName, ProgramName, Reasons, type Reason } from './abi.js';
import type { Family } from './addr.js';
import { attachEgress, detachEgress, detectFraming, interfaceIndex, type Attachment, type LinkFraming } from './attach.js';
import {
  checkDscp,
  checkLastSeen,
  checkLinkId,
  checkPolicyId,
  decodeFlowKey,
  decodeFlowValue,
  decodeLink,
  decodePolicy,
  encodeFlowKey,
  encodeFlowValue,
  encodeLink,
  encodePolicy,
  type FlowKey,
  type LinkEntry,
  type PolicyAction,
  writeU32LE,
} from './codec.js';
import { MapType, type BpfMap } from './bpf-map.js';
import { invalid } from './errors.js';
import { FlowCensus } from './flow-census.js';
import { loadDatapath, type Loaded, type LoadOptions } from './loader.js';
import type { MigrationReport } from './migration.js';
import { openNeighbourTable, type NeighbourScope, type NeighbourTable } from './neighbours.js';
import {
  flowPasses,
  pageScan,
  type Counter,
  type Counters,
  type DatapathPort,
  type FlowEntry,
  type FlowFilter,
  type FlowPage,
  type FlowPageRequest,
  type FlowTableFill,
} from './port.js';

/** The monotonic clock bpf_ktime_get_ns() reads, from user space. */
export function monotonicNs(): bigint {
  return process.hrtime.bigint();
}

/** upsertFlows writes this many flows or fewer one by one: cheaper than a batch below four. */
const SINGLE_WRITES_UP_TO = 3;
/** Flow entries per batched syscall (upsertFlows) and per chunk of a table walk. */
export const FLOW_CHUNK = 65_536;
/**
 * An LRU hash keeps up to 128 free nodes per CPU and evicts up to 128 at a time to refill them
 * (kernel/bpf/bpf_lru_list.c, LOCAL_FREE_TARGET): how far short of max_entries it may evict.
 */
const LRU_FREE_AHEAD = 128;
/** Entries one lookup of a page asks for, at least and at most. */
const BATCH_MIN = 16;
const BATCH_MAX = 4_096;

const KERNEL_CURSOR = /^k([46])\.([0-9]{1,10})\.([0-9]{1,5})$/;

function kernelCursor(family: Family, bucket: number, skip: number): string {
  return `k${family}.${bucket}.${skip}`;
}

function parseKernelCursor(cursor: string | undefined): { family: Family; bucket: number; skip: number } {
  if (cursor === undefined) return { family: FAMILY_IPV4, bucket: 0, skip: 0 };
  const m = KERNEL_CURSOR.exec(cursor);
  const bucket = Number(m?.[2]);
  if (!m || bucket > 0xffff_ffff) throw invalid('flow cursor', `${JSON.stringify(cursor.slice(0, 40))} is not a cursor this datapath hands out`);
  return { family: m[1] === '4' ? FAMILY_IPV4 : FAMILY_IPV6, bucket, skip: Number(m[3]) };
}

/** One family's share of a batch: packed keys and values, `count` of them filled. */
interface FlowBatch {
  keySize: number;
  keys: Buffer;
  values: Buffer;
  count: number;
}

function flowBatch(keySize: number, capacity: number, valueTemplate: Buffer): FlowBatch {
  return {
    keySize,
    keys: Buffer.allocUnsafe(capacity * keySize),
    values: Buffer.allocUnsafe(capacity * valueTemplate.length).fill(valueTemplate),
    count: 0,
  };
}

export class Datapath implements DatapathPort {
  private readonly attachments = new Map<string, Attachment>();
  // Scratch buffers for single-entry calls: one allocation per process, not per call.
  private readonly key4Buf = Buffer.alloc(Layout.flow4Key.size);
  private readonly key6Buf = Buffer.alloc(Layout.flow6Key.size);
  /**
   * Bytes of a flow value in the loaded tables: Layout.flowVal.size, or more for an object of a
   * later layout whose value has fields appended (which this agent leaves at zero).
   */
  private readonly flowValueSize: number;
  private readonly valBuf: Buffer;
  /** valBuf's last_seen_ns as one host-order u64: a caller's time goes in with one store. */
  private readonly valLastSeen: BigUint64Array;
  /** The single flow writes, one per family, from key4Buf/key6Buf and valBuf. */
  private readonly writeFlow4: (flags: number, stamp: boolean) => void;
  private readonly writeFlow6: (flags: number, stamp: boolean) => void;
  private readonly census: Record<Family, FlowCensus>;
  private readonly u32 = Buffer.alloc(4);
  private readonly policyBuf = Buffer.alloc(Layout.policy.size);
  private readonly linkBuf = Buffer.alloc(Layout.link.size);
  /** Opened at the first flush: an agent whose links never fail never needs it. */
  private neighbours: NeighbourTable | undefined;
  private closed = false;

  private constructor(private readonly d: Loaded) {
    this.flowValueSize = d.maps.flows4.valueSize;
    // Its own ArrayBuffer, so that the u64 view below is 8-aligned.
    const val = new ArrayBuffer(this.flowValueSize);
    this.valBuf = Buffer.from(val);
    this.valLastSeen = new BigUint64Array(val, Layout.flowVal.lastSeenNs, 1);
    this.writeFlow4 = d.maps.flows4.boundUpdate(this.key4Buf, this.valBuf, Layout.flowVal.lastSeenNs);
    this.writeFlow6 = d.maps.flows6.boundUpdate(this.key6Buf, this.valBuf, Layout.flowVal.lastSeenNs);
    const census = (m: BpfMap) => new FlowCensus(m.maxEntries, m.type === MapType.lruHash ? LRU_FREE_AHEAD * (m.cpus + 1) : 0);
    this.census = { [FAMILY_IPV4]: census(d.maps.flows4), [FAMILY_IPV6]: census(d.maps.flows6) };
  }

  /** Load the program and maps, or adopt the ones pinned under `pinDir` by an earlier agent. */
  static open(opts: LoadOptions = {}): Datapath {
    return new Datapath(loadDatapath(opts));
  }

  /** True when this process found pinned maps and took them over (restart, upgrade). */
  get adopted(): boolean {
    return this.d.adopted;
  }
  get pinDir(): string {
    return this.d.pinDir;
  }
  get flowTableSize(): number {
    return this.d.flowTableSize;
  }
  /** The map layout the pins hold (steer_abi.h WS_LAYOUT_VERSION of the loaded object). */
  get layoutVersion(): number {
    return this.d.layoutVersion;
  }
  /** What the start migrated (another table size, another layout), or null. */
  get migration(): MigrationReport | null {
    return this.d.migration;
  }
  /** Program fds, for BPF_PROG_TEST_RUN and tools. */
  get programFds(): { eth: number; l3: number } {
    return { ...this.d.programs };
  }

  // ---- interfaces ----------------------------------------------------------------------

  ifindex(ifname: string): number {
    return interfaceIndex(ifname);
  }

  /**
   * Put the program on `ifname`'s egress. Ethernet or raw-IP framing is detected unless given.
   * Re-attaching (an agent restart) replaces our filter in place.
   */
  attach(ifname: string, opts: { framing?: LinkFraming; priority?: number } = {}): Attachment {
    const framing = opts.framing ?? detectFraming(ifname);
    const fd = framing === 'eth' ? this.d.programs.eth : this.d.programs.l3;
    const a = attachEgress(ifname, fd, framing, opts.priority);
    const prev = this.attachments.get(ifname);
    this.attachments.set(ifname, { ...a, createdHook: a.createdHook || (prev?.createdHook ?? false) });
    return a;
  }

  /** Take our filter off `ifname` (and the clsact qdisc, if this process created it). */
  detach(ifname: string, opts: { priority?: number } = {}): boolean {
    const a = this.attachments.get(ifname);
    this.attachments.delete(ifname);
    return detachEgress(ifname, opts.priority, a?.createdHook ?? false);
  }

  get attached(): Attachment[] {
    return [...this.attachments.values()];
  }

  // ---- links -----------------------------------------------------------------------------

  setLink(id: number, link: LinkEntry): void {
    checkLinkId(id);
    encodeLink(link, this.linkBuf);
    this.d.maps.links.update(this.u32key(id), this.linkBuf);
  }

  getLink(id: number): LinkEntry | null {
    checkLinkId(id);
    const b = Buffer.alloc(Layout.link.size);
    this.d.maps.links.lookup(this.u32key(id), b);
    return decodeLink(b);
  }

  /** Mark a link up or down: one write, and every policy using it falls back or returns. */
  setLinkUp(id: number, up: boolean): void {
    const link = this.getLink(id);
    if (!link) throw invalid(`link ${id}`, 'no such link: set it first');
    this.setLink(id, { ...link, up });
  }

  deleteLink(id: number): void {
    checkLinkId(id);
    this.linkBuf.fill(0);
    this.d.maps.links.update(this.u32key(id), this.linkBuf);
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

  /**
   * Delete the neighbour entries of interface `ifindex` in `scope` (neighbours.ts), IPv4 and
   * IPv6; how many were deleted. Call it right after the write that moves traffic off the link:
   * packets the program redirected there before that write and that wait on an unresolved entry
   * are freed, so their senders resend them on the new path now rather than in 3 s.
   */
  flushNeighbours(ifindex: number, scope: NeighbourScope = 'unresolved'): number {
    this.neighbours ??= openNeighbourTable();
    return this.neighbours.flush(ifindex, scope);
  }

  // ---- policies --------------------------------------------------------------------------

  setPolicy(id: number, action: PolicyAction): void {
    checkPolicyId(id);
    encodePolicy(action, this.policyBuf);
    this.d.maps.policies.update(this.u32key(id), this.policyBuf);
  }

  getPolicy(id: number): PolicyAction | null {
    checkPolicyId(id);
    const b = Buffer.alloc(Layout.policy.size);
    this.d.maps.policies.lookup(this.u32key(id), b);
    return decodePolicy(b);
  }

  /** Empty the slot: flows that point here pass untouched (reason no_policy). */
  deletePolicy(id: number): void {
    checkPolicyId(id);
    this.policyBuf.fill(0);
    this.d.maps.policies.update(this.u32key(id), this.policyBuf);
  }

  listPolicies(): Map<number, PolicyAction> {
    const out = new Map<number, PolicyAction>();
    this.d.maps.policies.forEachChunk((keys, values, n) => {
      for (let i = 0; i < n; i++) {
        const p = decodePolicy(values.subarray(i * Layout.policy.size, (i + 1) * Layout.policy.size));
        if (p) out.set(keys.readUInt32LE(i * 4), p);
      }
    }, MAX_POLICIES);
    return out;
  }

  // ---- DSCP (mark mode) ------------------------------------------------------------------

  /** Packets arriving with `dscp` (and no flow entry) take policy `policyId`; null clears it. */
  setDscpPolicy(dscp: number, policyId: number | null): void {
    checkDscp(dscp);
    if (policyId !== null) checkPolicyId(policyId);
    const v = Buffer.alloc(4);
    v.writeUInt32LE(policyId ?? 0);
    this.d.maps.dscp.update(this.u32key(dscp), v);
  }

  listDscpPolicies(): Map<number, number> {
    const out = new Map<number, number>();
    const v = Buffer.alloc(4);
    for (let dscp = 0; dscp < DSCP_VALUES; dscp++) {
      this.d.maps.dscp.lookup(this.u32key(dscp), v);
      const id = v.readUInt32LE(0);
      if (id) out.set(dscp, id);
    }
    return out;
  }

  // ---- flows ----------------------------------------------------------------------------
  // One table per family (ws_flows4, ws_flows6): a key goes to the table of its addresses.

  /** Steer one flow (its egress 5-tuple) by policy `policyId`. */
  upsertFlow(key: FlowKey, policyId: number, now?: bigint): void {
    // The agent writes flows one at a time as sessions are reported: every step here is paid
    // per session, beside a syscall of ~1 µs (bench/flow-writes.ts). So nothing is allocated:
    // the key and value are written in place into buffers the native write holds (policy id,
    // zero flags), and the time is stamped there by the write itself unless a caller gave one
    // (checked, then one u64 store).
    checkPolicyId(policyId);
    const stamp = now === undefined;
    if (!stamp) checkLastSeen(now);
    const family = encodeFlowKey(key, this.key4Buf, 0, this.key6Buf, 0);
    writeU32LE(this.valBuf, Layout.flowVal.policyId, policyId);
    writeU32LE(this.valBuf, Layout.flowVal.flags, 0);
    if (!stamp) this.valLastSeen[0] = now;
    if (family === FAMILY_IPV4) this.writeFlow4(native.BPF_ANY, stamp);
    else this.writeFlow6(native.BPF_ANY, stamp);
    this.census[family].written(1);
  }

  /**
   * Steer many flows in batched syscalls (up to three, one write each). Everything is
   * validated before anything is written, so a bad entry rejects the whole call and the table
   * is left as it was.
   */
  upsertFlows(entries: ReadonlyArray<{ key: FlowKey; policyId: number }>, now?: bigint): void {
    // A few flows (a single report makes one) are single writes: below four, the batch buffers
    // allocated here and the kernel's set-up of a batch cost more per flow than a write each
    // (a batch of one cost 2.5 times a single write; measured on the EPYC VM, 2026-12-02).
    if (entries.length <= SINGLE_WRITES_UP_TO) {
      if (entries.length > 1) {
        for (const e of entries) {
          checkPolicyId(e.policyId);
          encodeFlowKey(e.key, this.key4Buf, 0, this.key6Buf, 0);
        }
      }
      for (const e of entries) this.upsertFlow(e.key, e.policyId, now);
      return;
    }
    now ??= monotonicNs();
    const V = this.flowValueSize;
    // Every value shares last-seen: write one, repeat it across the batch, then set policy ids.
    const template = Buffer.alloc(V);
    encodeFlowValue(1, now, template);
    // One buffer pair per family for the whole call, IPv6's only once an IPv6 flow shows up:
    // big buffers are external memory to V8, and room for IPv6 keys next to every 64k IPv4
    // ones made it collect garbage in the middle of a batch.
    const v4 = flowBatch(Layout.flow4Key.size, entries.length, template);
    let v6: FlowBatch | null = null;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      checkPolicyId(e.policyId);
      let b = v4;
      if (encodeFlowKey(e.key, v4.keys, v4.count * v4.keySize, this.key6Buf, 0) !== FAMILY_IPV4) {
        b = v6 ??= flowBatch(Layout.flow6Key.size, entries.length - i, template);
        b.keys.set(this.key6Buf, b.count * b.keySize);
      }
      writeU32LE(b.values, b.count * V + Layout.flowVal.policyId, e.policyId);
      b.count++;
    }
    // Everything was validated above: a bad entry has thrown before anything was written.
    for (const b of [v4, v6]) {
      if (!b) continue;
      const map = this.flowMap(b.keySize);
      for (let at = 0; at < b.count; at += FLOW_CHUNK) {
        map.updateBatch(b.keys.subarray(at * b.keySize), b.values.subarray(at * V), Math.min(FLOW_CHUNK, b.count - at));
      }
      this.censusOf(map).written(b.count);
    }
  }

  /** The flow's entry, or null when it is not steered. */
  getFlow(key: FlowKey): { policyId: number; lastSeenNs: bigint } | null {
    const [map, k] = this.flowKey(key);
    return map.lookup(k, this.valBuf) ? decodeFlowValue(this.valBuf) : null;
  }

  deleteFlow(key: FlowKey): boolean {
    const [map, k] = this.flowKey(key);
    const gone = map.delete(k);
    if (gone) this.censusOf(map).deletes(1);
    return gone;
  }

  deleteFlows(keys: ReadonlyArray<FlowKey>): number {
    const b4 = Buffer.alloc(keys.length * Layout.flow4Key.size);
    const b6 = Buffer.alloc(keys.length * Layout.flow6Key.size);
    let n4 = 0;
    let n6 = 0;
    for (const k of keys) {
      if (encodeFlowKey(k, b4, n4 * Layout.flow4Key.size, b6, n6 * Layout.flow6Key.size) === FAMILY_IPV4) n4++;
      else n6++;
    }
    const d4 = n4 ? this.d.maps.flows4.deleteBatch(b4, n4) : 0;
    const d6 = n6 ? this.d.maps.flows6.deleteBatch(b6, n6) : 0;
    this.census[FAMILY_IPV4].deletes(d4);
    this.census[FAMILY_IPV6].deletes(d6);
    return d4 + d6;
  }

  /** Every steered flow, optionally only those of one policy. */
  listFlows(filter: FlowFilter = {}): FlowEntry[] {
    const out: FlowEntry[] = [];
    const V = this.flowValueSize;
    for (const [family, map] of this.flowMaps()) {
      let seen = 0;
      map.forEachChunk((keys, values, n) => {
        seen += n;
        for (let i = 0; i < n; i++) {
          const v = decodeFlowValue(values, i * V);
          if (!flowPasses(filter, v.policyId)) continue;
          out.push({ ...decodeFlowKey(family, keys, i * map.keySize), ...v });
        }
      }, FLOW_CHUNK);
      this.census[family].recount(seen);
    }
    return out;
  }

  /**
   * A page of flows: the IPv4 table, then the IPv6 one, each walked from a bucket in batched
   * lookups that stop as soon as the page is full or its scan budget spent. The cursor
   * `k<family>.<bucket>.<skip>` is where the next page starts: `skip` entries into the batch
   * that begins at `bucket` (a batch holds whole buckets, a page may end inside one).
   */
  pageFlows(request: FlowPageRequest): FlowPage {
    const { limit, policyIds } = request;
    const scanBudget = request.scan ?? pageScan(limit);
    const start = parseKernelCursor(request.after);
    const V = Layout.flowVal.size;
    const items: FlowEntry[] = [];
    let scanned = 0;
    const maps = this.flowMaps();
    for (let m = maps.findIndex(([family]) => family === start.family); m < maps.length; m++) {
      const [family, map] = maps[m]!;
      let bucket = family === start.family ? start.bucket : 0;
      let skip = family === start.family ? start.skip : 0;
      for (;;) {
        // Unfiltered, every entry walked is one returned; filtered, any of the budget may be needed.
        const need = policyIds === undefined ? limit - items.length : scanBudget - scanned;
        const want = skip + Math.min(BATCH_MAX, Math.max(BATCH_MIN, need));
        const batch = map.lookupBatchAt(bucket, want);
        for (let i = skip; i < batch.count; i++) {
          scanned++;
          const v = decodeFlowValue(batch.values, i * V);
          if (policyIds === undefined || policyIds.has(v.policyId)) items.push({ ...decodeFlowKey(family, batch.keys, i * map.keySize), ...v });
          if (items.length < limit && scanned < scanBudget) continue;
          // Full (or out of budget): the next page starts after entry i.
          if (i + 1 < batch.count) return { items, next: kernelCursor(family, bucket, i + 1) };
          if (batch.next !== null) return { items, next: kernelCursor(family, batch.next, 0) };
          return m + 1 < maps.length ? { items, next: kernelCursor(maps[m + 1]![0], 0, 0) } : { items };
        }
        if (batch.next === null) break;
        bucket = batch.next;
        skip = 0;
      }
    }
    return { items };
  }

  /**
   * Flow entries per policy id, read straight from the values in batched walks: no key is
   * decoded and nothing is allocated per entry, so a metrics scrape stays cheap.
   */
  countFlowsByPolicy(): Map<number, number> {
    const counts = new Map<number, number>();
    const V = this.flowValueSize;
    for (const [family, map] of this.flowMaps()) {
      let seen = 0;
      map.forEachChunk((_k, values, n) => {
        seen += n;
        for (let i = 0; i < n; i++) {
          const id = values.readUInt32LE(i * V + Layout.flowVal.policyId);
          counts.set(id, (counts.get(id) ?? 0) + 1);
        }
      }, FLOW_CHUNK);
      this.census[family].recount(seen);
    }
    return counts;
  }

  countFlows(): number {
    let total = 0;
    for (const [family, map] of this.flowMaps()) {
      let seen = 0;
      map.forEachChunk((_k, _v, n) => {
        seen += n;
      }, FLOW_CHUNK);
      this.census[family].recount(seen);
      total += seen;
    }
    return total;
  }

  /**
   * Each flow table's fill and the flows its LRU evicted (flow-census.ts), as of the last walk
   * of the tables; walked now when that is older than `maxAgeMs`. Walks happen anyway (ageing,
   * scrapes), so a caller that can live with a figure a few seconds old costs nothing.
   */
  flowTables(maxAgeMs = 0): FlowTableFill[] {
    if (this.flowMaps().some(([family]) => Date.now() - this.census[family].countedAt > maxAgeMs)) this.countFlows();
    return this.flowMaps().map(([family]) => {
      const c = this.census[family];
      return { family, entries: c.entries, maxEntries: c.maxEntries, evicted: c.evicted };
    });
  }

  /**
   * Remove flows not seen for `maxIdleNs`. Returns how many were removed. The datapath
   * refreshes last-seen at most once a second per flow, so idle times are accurate to ~1 s.
   */
  ageFlows(maxIdleNs: bigint, now = monotonicNs()): number {
    const V = this.flowValueSize;
    let removed = 0;
    for (const [family, map] of this.flowMaps()) {
      const K = map.keySize;
      const stale: Buffer[] = [];
      let seen = 0;
      map.forEachChunk((keys, values, n) => {
        seen += n;
        for (let i = 0; i < n; i++) {
          const seen = values.readBigUInt64LE(i * V + Layout.flowVal.lastSeenNs);
          if (now > seen && now - seen > maxIdleNs) stale.push(Buffer.from(keys.subarray(i * K, (i + 1) * K)));
        }
      }, FLOW_CHUNK);
      this.census[family].recount(seen);
      const gone = stale.length > 0 ? map.deleteBatch(Buffer.concat(stale), stale.length) : 0;
      this.census[family].deletes(gone);
      removed += gone;
    }
    return removed;
  }

  /** Encode `key` into the scratch buffer of its family: that family's table, and the key bytes. */
  private flowKey(key: FlowKey): [BpfMap, Buffer] {
    return encodeFlowKey(key, this.key4Buf, 0, this.key6Buf, 0) === FAMILY_IPV4
      ? [this.d.maps.flows4, this.key4Buf]
      : [this.d.maps.flows6, this.key6Buf];
  }

  private flowMap(keySize: number): BpfMap {
    return keySize === Layout.flow4Key.size ? this.d.maps.flows4 : this.d.maps.flows6;
  }

  private censusOf(map: BpfMap): FlowCensus {
    return this.census[map === this.d.maps.flows4 ? FAMILY_IPV4 : FAMILY_IPV6];
  }

  private flowMaps(): [Family, BpfMap][] {
    return [
      [FAMILY_IPV4, this.d.maps.flows4],
      [FAMILY_IPV6, this.d.maps.flows6],
    ];
  }

  // ---- counters --------------------------------------------------------------------------

  /** Sum the per-CPU counters now (one batched read per table). */
  counters(): Counters {
    const reasons = {} as Record<Reason, Counter>;
    for (const r of Reasons) reasons[r] = { packets: 0n, bytes: 0n };
    const read = (map: 'linkStats' | 'policyStats' | 'reasons', visit: (id: number, c: Counter) => void) => {
      const m = this.d.maps[map];
      m.forEachChunk((keys, values, n) => {
        for (let i = 0; i < n; i++) {
          const c = m.sumPercpuCounter(values, i * m.valueBytes);
          if (c.packets || c.bytes) visit(keys.readUInt32LE(i * 4), c);
        }
      }, m.maxEntries);
    };
    const links = new Map<number, Counter>();
    const policies = new Map<number, Counter>();
    read('linkStats', (id, c) => links.set(id, c));
    read('policyStats', (id, c) => policies.set(id, c));
    read('reasons', (id, c) => {
      const name = Reasons[id];
      if (name) reasons[name] = c;
    });
    return { links, policies, reasons };
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /**
   * Let go of the maps and programs in this process. Pins and tc filters stay: traffic keeps
   * flowing, and the next agent adopts them.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.neighbours?.close();
    native.objectClose(this.d.obj);
  }

  /**
   * Tear everything down: detach from the interfaces this process attached, remove the pins.
   * For uninstall and tests; an agent restart uses close().
   */
  destroy(): void {
    for (const ifname of [...this.attachments.keys()]) this.detach(ifname);
    removePins(this.d.pinDir);
    this.close();
  }

  private u32key(n: number): Buffer {
    this.u32.writeUInt32LE(n);
    return this.u32;
  }
}

/**
 * Remove every pin of ours under `pinDir` without loading anything (uninstall, test cleanup):
 * the maps, programs and stamp this agent knows, and any other `ws_` pin — one a newer agent
 * added (a map this one does not know), or a migration's staging pin.
 */
export function removePins(pinDir: string): void {
  let found: string[] = [];
  try {
    found = readdirSync(pinDir).filter((name) => name.startsWith('ws_'));
  } catch {
    /* no directory */
  }
  for (const name of new Set([...Object.values(MapName), MetaMapName, ...Object.values(ProgramName), ...found])) {
    try {
      unlinkSync(join(pinDir, name));
    } catch {
      /* not there */
    }
  }
}
