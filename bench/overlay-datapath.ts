/**
 * The per-packet half of bench/overlay.ts, run by it inside the overlay lab's edge namespace
 * (where the pod's traffic is NATed and the conntrack entries live). Prints one JSON line:
 * { figures: Figure[] }.
 *
 * 1. BPF_PROG_TEST_RUN (`repeat` runs of one skb, median of ROUNDS, every case in every round),
 *    against the no-op and today's hit measured in the same rounds:
 *    the steering program on a hit and a miss, as shipped and as built without the
 *    conntrack read (a test run's skb has no conntrack entry, so both take the same path);
 *    the reply-by-arrival programs; and the road not taken, bpf_skb_ct_lookup, on a real NATed
 *    entry of this namespace.
 * 2. Real traffic, each run timed inside the program (bench/bpf/timed_steer.bpf.c), the no-op
 *    timed the same way as floor: UDP bursts from the pod (NATed at wan0) and from the edge itself (not NATed),
 *    each flow steered onto wan0 (one run per packet), through the steering program as shipped
 *    (reads the packet's conntrack entry) and as it was (without that read).
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import * as native from '../native/libbpf.js';
import { fromRoot } from '../src/config/paths.js';
import { attachEgress, detachEgress } from '../src/datapath/attach.js';
import { Datapath, ReplyDatapath, testRun } from '../src/datapath/index.js';
import type { Figure } from './lib.js';
import { median } from './lib.js';
import { ipv4Udp, ipv6Tcp } from './packets.js';
import { TimedSteer } from './timed-steer.js';

interface Args {
  /** Where bench/overlay.ts built the objects. */
  dir: string;
  podNs: string;
  /** The cloud's UDP sink. */
  sink: { v4: string; port: number };
  pod: string;
  wan0: string;
  pinBase: string;
}

const args = JSON.parse(process.argv[2]!) as Args;
const REPEAT = 1_000_000;
const ROUNDS = 7;
const BURST = 150_000;
const TRAFFIC_ROUNDS = 5;
const figures: Figure[] = [];
const fig = (name: string, value: number, unit = 'ns/pkt', target?: string) => figures.push({ name, value, unit, ...(target ? { target } : {}) });

function loadProgram(path: string, name: string): { obj: native.NativePtr; fd: number } {
  const obj = native.objectOpen(path);
  if (typeof obj === 'number' || native.objectLoad(obj) < 0) throw new Error(`cannot load ${path}`);
  const p = native.findProgram(obj, name);
  if (typeof p === 'number') throw new Error(`${path} has no ${name}`);
  return { obj, fd: native.programFd(p) };
}


/** A burst of small UDP datagrams from `ns` (null: this namespace, the edge), bound to src:sport. */
function burst(ns: string | null, src: string, sport: number, count = BURST): void {
  const code = `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(("${src}",${sport}))\nd=b"x"*64\na=("${args.sink.v4}",${args.sink.port})\nfor _ in range(${count}): s.sendto(d,a)\n`;
  const argv = ['python3', '-c', code];
  if (ns) execFileSync('nsenter', [`--net=/run/netns/${ns}`, '--', ...argv], { stdio: 'ignore' });
  else execFileSync(argv[0]!, argv.slice(1), { stdio: 'ignore' });
}

function main(): void {
  const noop = loadProgram(fromRoot('build/bpf/noop.bpf.o'), 'ws_noop');
  const now = Datapath.open({ pinDir: `${args.pinBase}-now` });
  const before = Datapath.open({ pinDir: `${args.pinBase}-before`, objectPath: join(args.dir, 'steer-before.bpf.o') });
  const reply = ReplyDatapath.open({ pinDir: `${args.pinBase}-reply` });
  const alt = native.objectOpen(join(args.dir, 'ct_lookup.bpf.o')) as native.NativePtr;
  try {
    if (native.objectLoad(alt) < 0) throw new Error('cannot load ct_lookup.bpf.o');
    const altFd = (n: string) => native.programFd(native.findProgram(alt, n) as native.NativePtr);

    // ---- 1. BPF_PROG_TEST_RUN ----------------------------------------------------------
    const hit4 = { src: '192.0.2.10', sport: 5000, dst: '198.51.100.1', dport: 53 };
    const hit6 = { src: 'fd00::10', sport: 5002, dst: 'fd00::1', dport: 443 };
    for (const dp of [now, before]) {
      dp.setLink(1, { ifindex: 1000, up: true, nextHop4: '192.0.2.1', nextHop6: 'fd00::1' });
      dp.setPolicy(1, { redirectLink: 1 });
      dp.upsertFlow({ protocol: 'udp', ...hit4 }, 1);
      dp.upsertFlow({ protocol: 'tcp', ...hit6 }, 1);
    }
    // reply-by-arrival: link 1 elsewhere (redirect), link 2 = lo (the test run's device: on_link)
    reply.setLink(1, { ifindex: 1000, up: true, nextHop4: '10.10.2.1' });
    reply.setLink(2, { ifindex: 1, up: true });
    const r = { src: '10.20.0.1', sport: 8000, dst: '10.10.1.1', dport: 40000 };
    const turned = { src: r.dst, sport: r.dport, dst: r.src, dport: r.sport };
    reply.setArrival({ protocol: 'udp', ...r }, 1);
    const fds = reply.programFds;

    // the road not taken: bpf_skb_ct_lookup of a real NATed entry (the pod's datagram, masqueraded)
    const flows = native.mapFd(native.findMap(alt, 'ws_bench_flows') as native.NativePtr);
    const key = Buffer.alloc(16);
    Buffer.from(args.pod.split('.').map(Number)).copy(key, 0);
    Buffer.from(args.sink.v4.split('.').map(Number)).copy(key, 4);
    key.writeUInt16BE(39000, 8);
    key.writeUInt16BE(args.sink.port, 10);
    key[12] = 17;
    native.mapUpdate(flows, key, Buffer.alloc(16, 1));
    burst(args.podNs, args.pod, 39000, 1); // the conntrack entry: pod:39000 -> sink, masqueraded to wan0's address
    const natPkt = ipv4Udp({ src: args.wan0, sport: 39000, dst: args.sink.v4, dport: args.sink.port });
    if (testRun(altFd('ws_bench_ct_lookup'), natPkt).verdict !== 7) throw new Error('bpf_skb_ct_lookup did not find the pod\'s NATed entry');

    // Every case in every round, rounds interleaved, so load on the machine hits them alike.
    const cases: Record<string, [number, Buffer]> = {
      floor: [noop.fd, ipv4Udp({ src: '192.0.2.9', sport: 9, dst: '198.51.100.1', dport: 53 })],
      today4: [before.programFds.eth, ipv4Udp(hit4)],
      today6: [before.programFds.eth, ipv6Tcp(hit6)],
      now4: [now.programFds.eth, ipv4Udp(hit4)],
      now6: [now.programFds.eth, ipv6Tcp(hit6)],
      miss: [now.programFds.eth, ipv4Udp({ src: '203.0.113.9', sport: 9, dst: '198.51.100.1', dport: 53 })],
      replyHit: [fds.replyEth, ipv4Udp(r)],
      replyMiss: [fds.replyEth, ipv4Udp({ ...r, dport: 40001 })],
      arrive: [fds.arriveEth, ipv4Udp(turned)],
      plain: [altFd('ws_bench_parse_lookup'), natPkt],
      ctHit: [altFd('ws_bench_ct_lookup'), natPkt],
      ctMiss: [altFd('ws_bench_ct_lookup'), ipv4Udp({ src: args.wan0, sport: 39999, dst: args.sink.v4, dport: args.sink.port })],
    };
    const runs: Record<string, number[]> = {};
    for (let round = 0; round < ROUNDS; round++) {
      if (round % 2 === 0) burst(args.podNs, args.pod, 39000, 1); // keep the UDP entry from timing out
      for (const [name, [fd, pkt]] of Object.entries(cases)) (runs[name] ??= []).push(testRun(fd, pkt, { repeat: REPEAT }).nsPerRun);
    }
    const t = (name: string) => median(runs[name]!);
    const floor = t('floor');
    const today4 = t('today4') - floor;
    fig('test run: no-op floor', floor);
    fig('test run: today\'s hit (the program without the conntrack read), redirect, IPv4 UDP, minus floor', today4);
    fig('test run: today\'s hit, IPv6 TCP, minus floor', t('today6') - floor);
    fig('test run: steer as shipped, hit, IPv4 UDP, over today\'s hit (no conntrack entry in a test run)', t('now4') - t('today4'), 'ns/pkt', '<= 30');
    fig('test run: steer as shipped, hit, IPv6 TCP, over today\'s hit', t('now6') - t('today6'), 'ns/pkt', '<= 30');
    fig('test run: steer as shipped, miss, minus floor', t('miss') - floor);
    fig('test run: reply egress, hit, redirect to the arrival link, minus floor', t('replyHit') - floor);
    fig('test run: reply egress, hit, over today\'s hit', t('replyHit') - t('today4'), 'ns/pkt', '<= 30');
    fig('test run: reply egress, miss (never arrived), minus floor', t('replyMiss') - floor);
    fig('test run: reply ingress, a known flow arriving on its link, minus floor', t('arrive') - floor);
    fig('test run: reply ingress, over today\'s hit', t('arrive') - t('today4'), 'ns/pkt', '<= 30');
    fig('test run: the alternative, bpf_skb_ct_lookup of a NATed entry + release, over the same program without it', t('ctHit') - t('plain'), 'ns/pkt', '<= 30');
    fig('test run: bpf_skb_ct_lookup that finds nothing, over the same program without it', t('ctMiss') - t('plain'));

    // ---- 2. real traffic, each run timed in the program ---------------------------------
    const wan0 = now.ifindex('wan0');
    const timed = { now: TimedSteer.load(join(args.dir, 'timed-now.bpf.o')), before: TimedSteer.load(join(args.dir, 'timed-before.bpf.o')) };
    try {
      for (const t of Object.values(timed)) {
        t.setLink(0, { ifindex: wan0, up: true });
        t.setPolicy(2, { redirectLink: 0 }); // on its own link: one run per packet
        t.upsertFlow({ protocol: 'udp', src: args.pod, sport: 39100, dst: args.sink.v4, dport: args.sink.port }, 2);
        t.upsertFlow({ protocol: 'udp', src: args.wan0, sport: 39200, dst: args.sink.v4, dport: args.sink.port }, 2);
      }
      const variants = [
        { name: 'no-op', fd: timed.now.noopFd, t: timed.now },
        { name: 'steer', fd: timed.now.egressFd, t: timed.now },
        { name: 'steer without the conntrack read', fd: timed.before.egressFd, t: timed.before },
      ];
      const sources = [
        { name: 'pod behind the masquerade', ns: args.podNs, src: args.pod, sport: 39100 },
        { name: 'edge, not NATed', ns: null, src: args.wan0, sport: 39200 },
      ];
      const samples = new Map<string, number[]>();
      const reads = new Map<string, number[]>();
      const steered = new Map<string, { hit: number; runs: number }>();
      for (let round = 0; round < TRAFFIC_ROUNDS; round++) {
        for (const v of variants) {
          attachEgress('wan0', v.fd, 'eth');
          for (const s of sources) {
            v.t.take();
            const hits = v.t.reason('on_link');
            burst(s.ns, s.src, s.sport);
            const t = v.t.take();
            const k = `${v.name}|${s.name}`;
            samples.set(k, [...(samples.get(k) ?? []), t.nsPerRun]);
            if (!Number.isNaN(t.readNs)) reads.set(k, [...(reads.get(k) ?? []), t.readNs]);
            const st = steered.get(k) ?? { hit: 0, runs: 0 };
            steered.set(k, { hit: st.hit + v.t.reason('on_link') - hits, runs: st.runs + t.runs });
          }
        }
      }
      detachEgress('wan0');
      const ns = (v: string, s: string) => median(samples.get(`${v}|${s}`)!);
      const [pod, edge] = sources.map((s) => s.name) as [string, string];
      // Whole runs of the build without the read only: the timed build's inner clocks inflate its own.
      fig(`traffic: today's hit (the program without the conntrack read), ${edge}, minus the no-op`, ns('steer without the conntrack read', edge) - ns('no-op', edge));
      fig(`traffic: today's program on the ${pod}: a miss, minus the no-op`, ns('steer without the conntrack read', pod) - ns('no-op', pod));
      fig('traffic: the no-op as timed (two clock reads)', ns('no-op', edge));
      // What a NATed hit adds to today's hit is the read: the rest of its path is the same code.
      const read = (s: string) => median(reads.get(`steer|${s}`)!);
      fig(`traffic: the conntrack read, NATed packet (${pod}), timed in the run: a NATed hit over today's hit`, read(pod), 'ns/pkt', '<= 30');
      fig(`traffic: the conntrack read, packet not NATed (${edge}), timed in the run`, read(edge), 'ns/pkt', '<= 30');
      for (const v of variants.slice(1)) {
        for (const src of [pod, edge]) {
          const st = steered.get(`${v.name}|${src}`)!;
          fig(`traffic: ${v.name}, ${src}: packets that hit their flow`, (100 * st.hit) / st.runs, '%');
        }
      }
    } finally {
      for (const t of Object.values(timed)) t.close();
    }
  } finally {
    for (const dp of [now, before]) dp.destroy();
    reply.destroy();
    native.objectClose(alt);
    native.objectClose(noop.obj);
    for (const s of ['now', 'before', 'reply']) rmSync(`${args.pinBase}-${s}`, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify({ figures }) + '\n');
}

main();
