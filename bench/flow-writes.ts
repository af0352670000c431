/**
 * Flow writes from TypeScript, held to what the kernel allows: each round writes the same flows
 * through the agent's Datapath (upsertFlow one by one, then upsertFlows in batches, encoding
 * included) and through bench/c/map_writes.c (bare bpf_map_update_elem and
 * bpf_map_update_batch on packed keys, same map type, size, key and value, same batch size),
 * each into a new table, timed in CPU time (user and system) of the writing process. Rounds
 * alternate which goes first; the ratio is the median of the rounds' ratios. Target: the agent
 * at >= 70 % of C both ways.
 *
 * For context, the single writes also as bare bpf_map_update_elem calls, keys packed beforehand:
 * through the koffi binding (native/libbpf.ts), which upsertFlow used until 2026-12-02, and
 * through the Node-API write it uses now (native/bound-update.ts, one key buffer rewritten per
 * call): what one call from Node costs before any encoding, so that the binding's share can be
 * told from the agent's.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BoundUpdate } from '../native/bound-update.js';
import * as native from '../native/libbpf.js';
import { Datapath, FLOW_CHUNK, type FlowKey } from '../src/datapath/index.js';
import { encodeFlowKey } from '../src/datapath/codec.js';
import { Layout } from '../src/datapath/abi.js';
import { MapType } from '../src/datapath/bpf-map.js';
import { type Figure, median } from './lib.js';

const SINGLES = 200_000;
/** SINGLES + BATCH stay under the table size: no round measures LRU eviction. */
const BATCH = 800_000;
const TABLE = 1 << 20;
const MIN_RATIO = 70;

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SOURCE = `${ROOT}bench/c/map_writes.c`;
const BINARY = `${ROOT}build/bench/map_writes`;

/** Flow i: TCP 10.(i>>16).(i>>8).i:(1024 + i % 60000) -> 198.51.100.1:443 (map_writes.c's flow_key). */
export function flowKey(i: number): FlowKey {
  return { protocol: 'tcp', src: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, sport: 1024 + (i % 60000), dst: '198.51.100.1', dport: 443 };
}

/** Build map_writes with the system's C compiler against libbpf, when missing or stale. */
function buildMapWrites(): string {
  const abi = `${ROOT}bpf/include/steer_abi.h`;
  const stale = !existsSync(BINARY) || [SOURCE, abi].some((f) => statSync(f).mtimeMs > statSync(BINARY).mtimeMs);
  if (stale) {
    mkdirSync(`${ROOT}build/bench`, { recursive: true });
    try {
      execFileSync('cc', ['-O2', '-Wall', '-Werror', '-I', `${ROOT}bpf/include`, '-o', BINARY, SOURCE, '-lbpf'], { stdio: 'pipe' });
    } catch (err) {
      const e = err as { stderr?: Buffer; message: string };
      throw new Error(`cannot build ${SOURCE} (needs gcc and libbpf-dev: scripts/setup.sh): ${e.stderr?.toString() || e.message}`);
    }
  }
  return BINARY;
}

/**
 * CPU ns (user and system, every thread: V8's collector threads are part of the cost) since
 * `start`. CPU time, not wall time: on a shared machine wall time mostly measures who else ran.
 */
function cpuNs(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) * 1000;
}

interface Round {
  singleNs: number;
  batchNs: number;
}

function cRound(bin: string): Round {
  const r = spawnSync(bin, [TABLE, SINGLES, BATCH, FLOW_CHUNK].map(String), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`map_writes failed (exit ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Round;
}

function agentRound(pinDir: string, singles: FlowKey[], batch: { key: FlowKey; policyId: number }[]): Round {
  const dp = Datapath.open({ pinDir, flowTableSize: TABLE });
  try {
    let t = process.cpuUsage();
    for (const key of singles) dp.upsertFlow(key, 1);
    const singleNs = cpuNs(t);
    t = process.cpuUsage();
    dp.upsertFlows(batch);
    return { singleNs, batchNs: cpuNs(t) };
  } finally {
    dp.destroy();
    rmSync(pinDir, { recursive: true, force: true });
  }
}

/**
 * The single writes as bare binding calls: keys packed and value set before the clock starts.
 * koffi takes each key's buffer; the bound write has one key buffer, each key copied into it.
 */
function bindingSingles(singles: FlowKey[], via: 'koffi' | 'bound'): number {
  const K = Layout.flow4Key.size;
  const packed = Buffer.alloc(singles.length * K);
  const spare6 = Buffer.alloc(Layout.flow6Key.size);
  singles.forEach((k, i) => encodeFlowKey(k, packed, i * K, spare6, 0));
  const keys = singles.map((_, i) => packed.subarray(i * K, (i + 1) * K));
  const value = Buffer.alloc(Layout.flowVal.size);
  value[Layout.flowVal.policyId] = 1;
  const fd = native.mapCreate(MapType.lruHash, 'ws_bench_flows', K, value.length, TABLE);
  if (fd < 0) throw new Error(`cannot create a flow table (errno ${-fd})`);
  try {
    const slot = Buffer.alloc(K);
    const bound = new BoundUpdate(slot, value);
    const t = process.cpuUsage();
    for (const k of keys) {
      let rc: number;
      if (via === 'koffi') rc = native.mapUpdate(fd, k, value);
      else {
        slot.set(k);
        rc = bound.run(fd);
      }
      if (rc < 0) throw new Error(`bpf_map_update_elem failed (errno ${-rc})`);
    }
    return cpuNs(t);
  } finally {
    native.closeFd(fd);
  }
}

export function measureFlowWrites(pinDir: string, rounds: number): Figure[] {
  const bin = buildMapWrites();
  const singles = Array.from({ length: SINGLES }, (_, i) => flowKey(i));
  const batch = Array.from({ length: BATCH }, (_, i) => ({ key: flowKey(SINGLES + i), policyId: 1 }));
  const c: Round[] = [];
  const ts: Round[] = [];
  const bare: number[] = [];
  const bareBound: number[] = [];
  for (let round = 0; round < rounds; round++) {
    if (round % 2 === 0) c.push(cRound(bin));
    ts.push(agentRound(`${pinDir}-w${round}`, singles, batch));
    bare.push(bindingSingles(singles, 'koffi'));
    bareBound.push(bindingSingles(singles, 'bound'));
    if (round % 2 === 1) c.push(cRound(bin));
  }
  const rate = (n: number, ns: number) => Math.round(n / (ns / 1e9));
  const pct = (key: keyof Round) => median(ts.map((t, i) => (100 * c[i]![key]) / t[key]));
  return [
    { name: 'flow writes, single: upsertFlow', value: median(ts.map((t) => rate(SINGLES, t.singleNs))), unit: 'entries/CPU-s' },
    { name: 'flow writes, single: C bpf_map_update_elem loop', value: median(c.map((t) => rate(SINGLES, t.singleNs))), unit: 'entries/CPU-s' },
    { name: 'flow writes, single: upsertFlow / C', value: pct('singleNs'), unit: '%', target: `>= ${MIN_RATIO}` },
    { name: 'flow writes, single: bare bpf_map_update_elem via koffi', value: median(bare.map((ns) => rate(SINGLES, ns))), unit: 'entries/CPU-s' },
    { name: 'flow writes, single: bare via koffi / C', value: median(bare.map((ns, i) => (100 * c[i]!.singleNs) / ns)), unit: '%' },
    { name: 'flow writes, single: bare bound write (Node-API)', value: median(bareBound.map((ns) => rate(SINGLES, ns))), unit: 'entries/CPU-s' },
    { name: 'flow writes, single: bare bound write / C', value: median(bareBound.map((ns, i) => (100 * c[i]!.singleNs) / ns)), unit: '%' },
    { name: 'flow writes, batched: upsertFlows (incl. encoding)', value: median(ts.map((t) => rate(BATCH, t.batchNs))), unit: 'entries/CPU-s' },
    { name: `flow writes, batched: C bpf_map_update_batch (${FLOW_CHUNK} per call)`, value: median(c.map((t) => rate(BATCH, t.batchNs))), unit: 'entries/CPU-s' },
    { name: 'flow writes, batched: upsertFlows / C', value: pct('batchNs'), unit: '%', target: `>= ${MIN_RATIO}` },
  ];
}
