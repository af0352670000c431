// Proves the probe round trip against the real reflector on loopback: TWAMP-light packets in
// the RFC 5357 layout, RTT measured, loss declared at the timeout, suspect mode on silence;
// the probe's source address choice; and (root) each link's probe.port used on the wire.
import { createSocket } from 'node:dgram';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LinkConfig } from '../../src/config/schema.js';
import type { ProbeSample } from '../../src/links/health.js';
import { pickSourceAddress } from '../../src/links/probe-route.js';
import { Prober } from '../../src/links/prober.js';
import { startReflector, type Reflector } from '../../src/links/reflector.js';
import { decodeReflected, encodeSender, ntpDiffNs, ntpNow, PACKET_BYTES } from '../../src/links/twamp.js';
import { parseMonitorLine } from '../../src/links/carrier.js';
import { parseListen } from '../../src/cli/reflector.js';
import { CLOUD, IngressCounters, WanLab } from '../helpers/netns.js';
import { describePrivileged } from '../helpers/privilege.js';
import { MonitorDriver, spawnReflector } from './monitor-driver.js';

let reflector: Reflector | undefined;
let prober: Prober | undefined;
afterEach(async () => {
  prober?.stop();
  prober = undefined;
  await reflector?.close();
  reflector = undefined;
});

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('TWAMP-light', () => {
  it('the reflector answers in the RFC 5357 reflector layout, echoing the sender fields', async () => {
    reflector = await startReflector('127.0.0.1', 0);
    const sock = createSocket('udp4');
    const answer = new Promise<Buffer>((r) => sock.once('message', r));
    const ts = ntpNow();
    sock.send(encodeSender(77, ts), reflector.port, '127.0.0.1');
    const msg = await answer;
    sock.close();
    expect(msg.length).toBe(PACKET_BYTES);
    const r = decodeReflected(msg)!;
    expect(r).toMatchObject({ seq: 0, senderSeq: 77, senderTimestamp: ts });
    expect(ntpDiffNs(r.rxTimestamp, r.timestamp)).toBeGreaterThanOrEqual(0n);
    expect(msg.readUInt8(40)).toBe(255);
  });

  it('NTP timestamps round-trip to the nanosecond scale', () => {
    const a = ntpNow(1_700_000_000_000_000_000n);
    const b = ntpNow(1_700_000_000_250_000_000n);
    expect(Number(ntpDiffNs(a, b))).toBeCloseTo(250_000_000, -1);
  });
});

describe('Prober', () => {
  it('measures RTT against a live reflector and loses nothing', async () => {
    // The timeout is generous: on a loaded machine an answer may wait for the event loop, and
    // that is not a loss. How fast the round trip is belongs to the benchmarks.
    reflector = await startReflector('127.0.0.1', 0);
    const samples: ProbeSample[] = [];
    prober = new Prober({ local: '127.0.0.1', target: '127.0.0.1', port: reflector.port, intervalMs: 20, timeoutMs: 5000, onSample: (s) => samples.push(s) });
    await prober.start();
    prober.run();
    await expect.poll(() => samples.length, { timeout: 15_000 }).toBeGreaterThanOrEqual(8);
    expect(samples.every((s) => !s.lost && s.rttMs !== undefined && s.rttMs > 0 && s.rttMs < 5000)).toBe(true);
    expect(prober.stats).toMatchObject({ lost: 0 });
  });

  it('declares probes lost at the timeout, and samples faster while the target is silent', async () => {
    // A socket that takes the packets and never answers: a blackhole.
    const sink = createSocket('udp4');
    await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
    let received = 0;
    sink.on('message', () => received++);
    const samples: ProbeSample[] = [];
    prober = new Prober({ local: '127.0.0.1', target: '127.0.0.1', port: sink.address().port, intervalMs: 100, timeoutMs: 150, onSample: (s) => samples.push(s) });
    await prober.start();
    prober.run();
    // Waited for, not timed: a loaded machine only takes longer. What shows suspect mode is each
    // probe's weight (1 at the normal pace, 1/5 in suspect mode), not how many fit in a window.
    await expect.poll(() => Math.min(received, samples.length), { timeout: 15_000 }).toBeGreaterThan(12);
    prober.stop();
    sink.close();
    expect(samples.every((s) => s.lost)).toBe(true);
    // Probes 0 and 1 went at the normal pace (0 ms, 100 ms); from the first timeout on, every 20 ms.
    expect(samples.slice(0, 2)).toEqual([{ seq: 0, lost: true, weight: 1 }, { seq: 1, lost: true, weight: 1 }]);
    expect(samples.slice(2).every((s) => s.lost && s.weight === 0.2)).toBe(true);
  });
});

describe('Prober on its owner\'s tick', () => {
  it('sends normal probes only on ticks, never sooner than the interval', async () => {
    // Proves the monitor's shared wake-up: no timer of the prober's own between probes. Suspect
    // mode is off (a late answer on a loaded machine would start it, and it has its own timer).
    reflector = await startReflector('127.0.0.1', 0);
    const samples: ProbeSample[] = [];
    prober = new Prober({ local: '127.0.0.1', target: '127.0.0.1', port: reflector.port, intervalMs: 60, timeoutMs: 5000, tickMs: 20, onSample: (s) => samples.push(s) });
    prober.suspectMode = false;
    await prober.start();
    prober.run();
    await wait(200);
    expect(prober.stats.sent).toBe(1); // the first at run(); then nothing without ticks
    const p = prober;
    const sentAt: number[] = [];
    let outsideTicks = 0;
    let seen = p.stats.sent;
    const ticks = setInterval(() => {
      if (p.stats.sent !== seen) outsideTicks++; // sent between ticks: a timer of its own
      p.tick();
      if (p.stats.sent !== seen) sentAt.push(performance.now());
      seen = p.stats.sent;
    }, 20);
    try {
      await expect.poll(() => sentAt.length, { timeout: 20_000 }).toBeGreaterThanOrEqual(10);
    } finally {
      clearInterval(ticks);
    }
    expect(outsideTicks).toBe(0);
    // One probe a tick at most, and each at most half a tick before it is due: ten probes span
    // at least nine intervals less nine half-ticks (late ticks only make it longer).
    expect(sentAt[9]! - sentAt[0]!).toBeGreaterThanOrEqual(9 * 60 - 9 * 10);
    await expect.poll(() => samples.length, { timeout: 15_000 }).toBeGreaterThanOrEqual(10);
    expect(samples.every((s) => !s.lost)).toBe(true);
  });

  it('still samples fast on its own timer while the target is silent', async () => {
    // Proves suspect mode does not wait for ticks: nobody ticks here, so without its own timer
    // the prober would send nothing after its first probe.
    const sink = createSocket('udp4');
    await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
    let received = 0;
    sink.on('message', () => received++);
    prober = new Prober({ local: '127.0.0.1', target: '127.0.0.1', port: sink.address().port, intervalMs: 100, timeoutMs: 150, tickMs: 20, onSample: () => {} });
    await prober.start();
    prober.run();
    await expect.poll(() => received, { timeout: 15_000 }).toBeGreaterThan(12);
    sink.close();
  });
});

describe('parsing', () => {
  const cases: [string, ReturnType<typeof parseMonitorLine>][] = [
    ['3: wan1@if2: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN group default \\    link/ether', { ifname: 'wan1', up: false, why: 'no carrier' }],
    ['3: wan1@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 state UP', { ifname: 'wan1', up: true, why: 'carrier up' }],
    ['4: wwan0: <POINTOPOINT,NOARP> mtu 1500 state DOWN', { ifname: 'wwan0', up: false, why: 'interface administratively down' }],
    ['Deleted 3: wan1@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500', { ifname: 'wan1', up: false, why: 'interface deleted' }],
    ['    link/ether c2:5c:72:5f:c3:8c', null],
  ];
  for (const [line, want] of cases) it(`ip monitor: ${line.slice(0, 40)}`, () => expect(parseMonitorLine(line)).toEqual(want));

  it('reflector --listen', () => {
    expect(parseListen('0.0.0.0:862')).toEqual({ host: '0.0.0.0', port: 862 });
    expect(parseListen('[::]:8620')).toEqual({ host: '::', port: 8620 });
    expect(parseListen('nope')).toBeNull();
    expect(parseListen('1.2.3.4:70000')).toBeNull();
  });
});

describe('probe source address', () => {
  // `ip -j addr show` flags: an IPv6 address in duplicate address detection cannot be bound yet.
  const cases: [string, Parameters<typeof pickSourceAddress>[0], string | undefined][] = [
    ['the first address', [{ local: '10.10.2.1' }, { local: '10.10.2.9' }], '10.10.2.1'],
    ['none', [], undefined],
    ['not a tentative one (DAD running)', [{ local: 'fd10:2::1', tentative: true }, { local: 'fd10:2::9' }], 'fd10:2::9'],
    ['nothing while the only one is tentative', [{ local: 'fd10:2::1', tentative: true }], undefined],
    ['an optimistic one (RFC 4429: bindable during DAD)', [{ local: 'fd10:2::1', tentative: true, optimistic: true }], 'fd10:2::1'],
    ['never one that failed DAD', [{ local: 'fd10:2::1', dadfailed: true, tentative: true }], undefined],
    ['a preferred one before a deprecated one', [{ local: 'fd10:2::1', deprecated: true }, { local: 'fd10:2::9' }], 'fd10:2::9'],
    ['a deprecated one when it is all there is', [{ local: 'fd10:2::1', deprecated: true }], 'fd10:2::1'],
    ['skipping empty entries', [{}, { local: '10.10.2.1' }], '10.10.2.1'],
  ];
  for (const [what, addresses, want] of cases) it(what, () => expect(pickSourceAddress(addresses)).toBe(want));
});

describePrivileged('LinkMonitor: each link probes its reflector on its own probe.port', () => {
  // Two reflectors on non-default ports, one per link; counted on the wire in the cloud by port
  // and ingress link. Nothing may go to TWAMP's 862.
  let lab: WanLab;
  let monitor: MonitorDriver | undefined;
  let counters: IngressCounters;
  const probe = (port: number) => ({ target: CLOUD.service.v4, port, intervalMs: 100, timeoutMs: 300, downAfter: 3, upAfter: 10, window: 50 });
  const links: LinkConfig[] = [
    { name: 'wan0', interface: 'wan0', nextHop4: CLOUD.c0.v4, probe: probe(8620) },
    { name: 'wan1', interface: 'wan1', nextHop4: CLOUD.c1.v4, probe: probe(9862) },
  ];

  beforeAll(async () => {
    lab = WanLab.create('probeport');
    await spawnReflector(lab, lab.cloud, `${CLOUD.service.v4}:8620`);
    await spawnReflector(lab, lab.cloud, `${CLOUD.service.v4}:9862`);
    counters = IngressCounters.install(lab, [8620, 9862, 862].map((port) => ({ name: `port${port}`, match: `ip daddr ${CLOUD.service.v4} udp dport ${port}` })));
    monitor = await MonitorDriver.start(lab, lab.edge, links);
  }, 30_000);

  afterAll(async () => {
    await monitor?.stop().catch(() => {});
    lab?.destroy();
  });

  it('both links come up with an RTT, each measured against its own port', async () => {
    await monitor!.waitFor((h) => ['wan0', 'wan1'].every((l) => h[l]?.up && h[l]?.rttMs !== undefined), 15_000, 'both links up with an RTT');
    // Five probes of each link counted in the cloud, however long a loaded machine takes to send them.
    await expect.poll(() => Math.min(counters.read()['port8620|c0'] ?? 0, counters.read()['port9862|c1'] ?? 0), { timeout: 15_000 }).toBeGreaterThanOrEqual(5);
    const n = counters.read();
    expect(n['port8620|c1'] ?? 0).toBe(0);
    expect(n['port9862|c0'] ?? 0).toBe(0);
    expect((n['port862|c0'] ?? 0) + (n['port862|c1'] ?? 0)).toBe(0);
    expect(monitor!.log).toMatch(/"message":"probing","link":"wan1".*"port":9862/);
  });
});
