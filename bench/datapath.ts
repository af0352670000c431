/**
 * Datapath benchmark (issues 2 and 18): what a packet costs the steering program, and what a
 * flow write costs the agent, each beside a yardstick measured in the same run, so that the
 * figures with targets are ratios that hold from one CPU (and one set of speculation
 * mitigations) to the next. The absolute figures stay in the table, with the machine.
 *
 * 1. Per packet (bench/per-packet.ts), with 1k and with 1M flow entries, `repeat` and `fresh`:
 *    the no-op tc program (bpf/noop.bpf.c) is the floor, and the reference (bpf/ref_lru.bpf.c)
 *    reads the 5-tuple and does one lookup in the steering program's own flow table. Target: a
 *    hit — redirect IPv4, redirect IPv6, set DSCP — costs at most 1.5 times the reference, both
 *    over the floor. For context, each hit also beside the reference plus the kernel call its
 *    action must make (bpf_redirect_neigh for a redirect, the 12-byte bpf_skb_store_bytes for a
 *    DSCP rewrite, fresh runs only): what is left is the program's own work.
 *    Fresh DSCP runs pay the rewrite every time; the same packet with its DSCP already right
 *    costs everything but the rewrite.
 * 2. Flow writes (bench/flow-writes.ts): upsertFlow and upsertFlows against bare
 *    bpf_map_update_elem / bpf_map_update_batch from C. Target: >= 70 % of C both ways.
 */
import { rmSync } from 'node:fs';
import * as native from '../native/libbpf.js';
import { Datapath, TC_ACT_OK, TC_ACT_REDIRECT } from '../src/datapath/index.js';
import { flowKey, measureFlowWrites } from './flow-writes.js';
import { type Figure, report, requireRoot } from './lib.js';
import { type Case, type Mode, figures, measure } from './per-packet.js';
import { ipv4Udp, ipv6Tcp } from './packets.js';

const ROUNDS: Record<Mode, number> = { repeat: 21, fresh: 25 };
const WRITE_ROUNDS = 7;
const MAX_RATIO = 1.5;
const DSCP = 46;

/** Programs of a compiled object in build/bpf/, its maps optionally the pinned ones named. */
function loadObject(file: string, programs: string[], pins: Record<string, string> = {}, maxEntries = 0) {
  const path = new URL(`../build/bpf/${file}`, import.meta.url).pathname;
  const obj = native.objectOpen(path);
  if (typeof obj === 'number') throw new Error(`cannot open ${path}: run make -C bpf`);
  for (const [map, pin] of Object.entries(pins)) {
    const m = native.findMap(obj, map);
    if (typeof m === 'number') throw new Error(`${file} has no map ${map}`);
    // libbpf reuses the pinned map when type, key, value and size match: it checks them.
    if (native.mapSetMaxEntries(m, maxEntries) < 0 || native.mapSetPinPath(m, pin) < 0) throw new Error(`cannot point ${map} at ${pin}`);
  }
  if (native.objectLoad(obj) < 0) throw new Error(`cannot load ${file}`);
  const fds = programs.map((name) => {
    const prog = native.findProgram(obj, name);
    if (typeof prog === 'number') throw new Error(`${file} has no program ${name}`);
    return native.programFd(prog);
  });
  return { fds, close: () => native.objectClose(obj) };
}

function main(): void {
  if (!requireRoot('datapath')) return;
  const pinDir = `/sys/fs/bpf/wst-bench-${process.pid}`;
  const dp = Datapath.open({ pinDir, flowTableSize: 1 << 20 });
  const flows = { ref_flows4: `${pinDir}/ws_flows4`, ref_flows6: `${pinDir}/ws_flows6` };
  const noop = loadObject('noop.bpf.o', ['ws_noop']);
  const ref = loadObject('ref_lru.bpf.o', ['ws_ref_lru4', 'ws_ref_lru6', 'ws_ref_redirect4', 'ws_ref_redirect6', 'ws_ref_dscp4'], flows, dp.flowTableSize);
  const out: Figure[] = [];
  try {
    const steer = dp.programFds.eth;
    dp.setLink(1, { ifindex: 1000, up: true, nextHop4: '192.0.2.1' });
    dp.setPolicy(1, { redirectLink: 1 });
    dp.setPolicy(2, { dscp: DSCP });
    const redirect4 = { src: '192.0.2.10', sport: 5000, dst: '198.51.100.1', dport: 53 };
    const dscp4 = { src: '192.0.2.11', sport: 5001, dst: '198.51.100.1', dport: 53 };
    const redirect6 = { src: 'fd00::10', sport: 5002, dst: 'fd00::1', dport: 443 };
    const writeMeasured = () => {
      dp.upsertFlow({ protocol: 'udp', ...redirect4 }, 1);
      dp.upsertFlow({ protocol: 'udp', ...dscp4 }, 2);
      dp.upsertFlow({ protocol: 'tcp', ...redirect6 }, 1);
    };
    const [noopFd] = noop.fds;
    const [ref4Fd, ref6Fd, refRedirect4Fd, refRedirect6Fd, refDscp4Fd] = ref.fds;
    const hit4 = ipv4Udp(redirect4);
    const hit6 = ipv6Tcp(redirect6);
    const hitDscp = ipv4Udp(dscp4);
    // The DSCP flow's packet already carrying the DSCP (the checksum does not matter here).
    const hitDscpSet = Buffer.from(hitDscp);
    hitDscpSet[15] = DSCP << 2;
    const dscpIs = (pkt: Buffer) => pkt[15] === DSCP << 2;
    const cases = (mode: Mode): Record<string, Case> => ({
      floor: { fd: noopFd!, packet: hit4, verdict: TC_ACT_OK },
      ref4: { fd: ref4Fd!, packet: hit4, verdict: TC_ACT_OK },
      ref6: { fd: ref6Fd!, packet: hit6, verdict: TC_ACT_OK },
      refRedirect4: { fd: refRedirect4Fd!, packet: hit4, verdict: TC_ACT_REDIRECT },
      refRedirect6: { fd: refRedirect6Fd!, packet: hit6, verdict: TC_ACT_REDIRECT },
      refDscp4: { fd: refDscp4Fd!, packet: hitDscp, verdict: TC_ACT_OK },
      miss: { fd: steer, packet: ipv4Udp({ src: '203.0.113.9', sport: 9, dst: '198.51.100.1', dport: 53 }), verdict: TC_ACT_OK },
      redirect4: { fd: steer, packet: hit4, verdict: TC_ACT_REDIRECT },
      redirect6: { fd: steer, packet: hit6, verdict: TC_ACT_REDIRECT },
      dscp: { fd: steer, packet: hitDscp, verdict: TC_ACT_OK, check: dscpIs },
      ...(mode === 'fresh' ? { dscpSet: { fd: steer, packet: hitDscpSet, verdict: TC_ACT_OK, check: dscpIs } } : {}),
    });
    const perPacket = (size: string) => {
      for (const mode of ['repeat', 'fresh'] as const) {
        const samples = measure(cases(mode), mode, ROUNDS[mode]);
        out.push(
          ...figures(samples, {
            label: `${size}, ${mode}`,
            floor: 'floor',
            context: [
              { name: 'reference, IPv4 LRU lookup', case: 'ref4' },
              { name: 'reference, IPv6 LRU lookup', case: 'ref6' },
              { name: 'reference + bpf_redirect_neigh, IPv4', case: 'refRedirect4' },
              { name: 'reference + bpf_redirect_neigh, IPv6', case: 'refRedirect6' },
              { name: 'reference + bpf_skb_store_bytes, IPv4', case: 'refDscp4' },
              { name: 'miss', case: 'miss' },
              ...(mode === 'fresh' ? [{ name: 'hit, DSCP already set', case: 'dscpSet' }] : []),
            ],
            compared: [
              { name: 'hit, redirect IPv4 UDP', case: 'redirect4', reference: 'ref4' },
              { name: 'hit, redirect IPv4 UDP', case: 'redirect4', reference: 'refRedirect4', referenceName: 'reference + redirect' },
              { name: 'hit, redirect IPv6 TCP', case: 'redirect6', reference: 'ref6' },
              { name: 'hit, redirect IPv6 TCP', case: 'redirect6', reference: 'refRedirect6', referenceName: 'reference + redirect' },
              { name: mode === 'fresh' ? 'hit, set DSCP (rewrite every run)' : 'hit, set DSCP', case: 'dscp', reference: 'ref4' },
              // Only fresh runs rewrite every time; a repeat run rewrites on its first run only.
              ...(mode === 'fresh'
                ? [{ name: 'hit, set DSCP (rewrite every run)', case: 'dscp', reference: 'refDscp4', referenceName: 'reference + rewrite' }]
                : []),
            ],
            maxRatio: MAX_RATIO,
          }),
        );
      }
    };

    // ~1k entries, then ~1M: the measured flows written last, so they are not the least
    // recently used ones an LRU fill evicts.
    dp.upsertFlows(Array.from({ length: 997 }, (_, i) => ({ key: flowKey(i), policyId: 1 })));
    writeMeasured();
    perPacket(`${Math.round(dp.countFlows() / 1000)}k flows`);
    dp.upsertFlows(Array.from({ length: (1 << 20) - 2000 }, (_, i) => ({ key: flowKey(i + 5_000_000), policyId: 1 })));
    writeMeasured();
    const large = dp.countFlows();
    perPacket(`${(large / 1e6).toFixed(2)}M flows`);
    out.push({ name: 'flow table entries in the large case', value: large, unit: 'entries' });
  } finally {
    ref.close();
    noop.close();
    dp.destroy();
    rmSync(pinDir, { recursive: true, force: true });
  }
  out.push(...measureFlowWrites(pinDir, WRITE_ROUNDS));
  report('datapath', out);
}

main();
