/**
 * Real traffic through the real kernel: an edge namespace with two WAN links (veth pairs) to a
 * cloud namespace, the steering program attached to both links' egress by the datapath facade
 * running inside the edge namespace, and nftables counters in the cloud telling by which link
 * (and with which DSCP) every flow's packets arrived.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DatapathDriver } from '../helpers/driver-client.js';
import { CLOUD, EDGE, IngressCounters, TRAFFIC_TOOL as TRAFFIC, WanLab } from '../helpers/netns.js';
import { describePrivileged } from '../helpers/privilege.js';

const TCP_PORT = 5001;
const UDP_PORT = 5002;

// Policies: 1 = redirect to wan1; 2 = DSCP 46 only; 3 = redirect to wan1 and DSCP 10.
const TO_WAN1 = 1;
const EF_ONLY = 2;
const WAN1_AF11 = 3;

describePrivileged('datapath: real traffic between namespaces', () => {
  let lab: WanLab;
  let dp: DatapathDriver;
  let counters: IngressCounters;
  const pinDir = `/sys/fs/bpf/wst-${process.pid}-traffic`;

  const run = (argv: string[]) => lab.exec(lab.edge, ['python3', TRAFFIC, ...argv]);
  const tcp = (src: string, sport: number, dst: string, bytes = 200_000) =>
    run(['tcp-client', src, String(sport), dst, String(TCP_PORT), String(bytes)]);
  const udp = (src: string, sport: number, dst: string, count = 50, tos?: number) =>
    run(['udp-client', src, String(sport), dst, String(UDP_PORT), String(count), ...(tos === undefined ? [] : [String(tos)])]);
  const flow = (protocol: 'tcp' | 'udp', src: string, sport: number, dst: string, dport: number) => ({ protocol, src, sport, dst, dport });

  /** Start a server in the cloud and wait until it listens. */
  async function serve(mode: string, port: number): Promise<void> {
    await lab.spawnReady(lab.cloud, ['python3', TRAFFIC, mode, String(port)], mode);
  }

  async function openDatapath(): Promise<{ adopted: boolean }> {
    const d = DatapathDriver.start(lab, lab.edge);
    const info = await d.call<{ adopted: boolean }>('open', { pinDir, flowTableSize: 4096 });
    await d.call('attach', 'wan0');
    await d.call('attach', 'wan1');
    dp = d;
    return info;
  }

  beforeAll(async () => {
    lab = WanLab.create('traffic');
    await serve('tcp-server', TCP_PORT);
    await serve('udp-server', UDP_PORT);
    await openDatapath();
    const wan0 = await dp.call<number>('ifindex', 'wan0');
    const wan1 = await dp.call<number>('ifindex', 'wan1');
    await dp.call('setLink', 0, { ifindex: wan0, up: true, nextHop4: CLOUD.c0.v4, nextHop6: CLOUD.c0.v6 });
    await dp.call('setLink', 1, { ifindex: wan1, up: true, nextHop4: CLOUD.c1.v4, nextHop6: CLOUD.c1.v6 });
    await dp.call('setPolicy', TO_WAN1, { redirectLink: 1 });
    await dp.call('setPolicy', EF_ONLY, { dscp: 46 });
    await dp.call('setPolicy', WAN1_AF11, { redirectLink: 1, dscp: 10 });
    const flows = [];
    for (let sport = 41000; sport < 41020; sport++) flows.push({ name: `p${sport}`, match: `th sport ${sport}` });
    counters = IngressCounters.install(lab, flows, [10, 46]);
  });

  afterAll(async () => {
    try {
      await dp?.call('destroy');
    } catch {
      /* the namespace goes anyway */
    }
    lab?.destroy();
    rmSync(pinDir, { recursive: true, force: true });
  });

  const seen = (sport: number) => {
    const c = counters.read();
    const get = (k: string) => c[`p${sport}|${k}`] ?? 0;
    return { wan0: get('c0'), wan1: get('c1'), dscp46: get('c0|dscp46') + get('c1|dscp46'), dscp10: get('c0|dscp10') + get('c1|dscp10') };
  };

  it('sends a steered IPv4 TCP flow over wan1 and leaves an unsteered one on the default wan0', async () => {
    await dp.call('upsertFlow', flow('tcp', EDGE.wan0.v4, 41000, CLOUD.service.v4, TCP_PORT), TO_WAN1);
    tcp(EDGE.wan0.v4, 41000, CLOUD.service.v4);
    tcp(EDGE.wan0.v4, 41001, CLOUD.service.v4);
    const steered = seen(41000);
    const plain = seen(41001);
    // 200 kB of TCP: a handful of GSO super-packets plus the handshake, depending on offloads.
    expect(steered.wan1).toBeGreaterThan(4);
    expect(steered.wan0).toBe(0);
    expect(plain.wan0).toBeGreaterThan(4);
    expect(plain.wan1).toBe(0);
  });

  it('steers IPv6 TCP and IPv4/IPv6 UDP flows the same way', async () => {
    await dp.call('upsertFlows', [
      { key: flow('tcp', EDGE.wan0.v6, 41002, CLOUD.service.v6, TCP_PORT), policyId: TO_WAN1 },
      { key: flow('udp', EDGE.wan0.v4, 41003, CLOUD.service.v4, UDP_PORT), policyId: TO_WAN1 },
      { key: flow('udp', EDGE.wan0.v6, 41004, CLOUD.service.v6, UDP_PORT), policyId: TO_WAN1 },
    ]);
    tcp(EDGE.wan0.v6, 41002, CLOUD.service.v6);
    udp(EDGE.wan0.v4, 41003, CLOUD.service.v4);
    udp(EDGE.wan0.v6, 41004, CLOUD.service.v6);
    udp(EDGE.wan0.v6, 41005, CLOUD.service.v6); // unsteered
    expect(seen(41002)).toMatchObject({ wan0: 0 });
    expect(seen(41002).wan1).toBeGreaterThan(4);
    expect(seen(41003)).toMatchObject({ wan0: 0, wan1: 50 });
    expect(seen(41004)).toMatchObject({ wan0: 0, wan1: 50 });
    expect(seen(41005)).toMatchObject({ wan0: 50, wan1: 0 });
  });

  it('marks a DSCP-only flow with its DSCP on the wire and leaves it on its link', async () => {
    await dp.call('upsertFlow', flow('udp', EDGE.wan0.v4, 41006, CLOUD.service.v4, UDP_PORT), EF_ONLY);
    await dp.call('upsertFlow', flow('tcp', EDGE.wan0.v6, 41007, CLOUD.service.v6, TCP_PORT), WAN1_AF11);
    udp(EDGE.wan0.v4, 41006, CLOUD.service.v4, 30);
    tcp(EDGE.wan0.v6, 41007, CLOUD.service.v6);
    expect(seen(41006)).toEqual({ wan0: 30, wan1: 0, dscp46: 30, dscp10: 0 });
    const both = seen(41007);
    expect(both.wan0).toBe(0);
    expect(both.dscp10).toBe(both.wan1);
    expect(both.wan1).toBeGreaterThan(4);
  });

  it('steers by DSCP alone in mark mode (no flow entry)', async () => {
    await dp.call('setDscpPolicy', 18, TO_WAN1);
    udp(EDGE.wan0.v4, 41008, CLOUD.service.v4, 30, 18 << 2);
    udp(EDGE.wan0.v4, 41009, CLOUD.service.v4, 30, 20 << 2); // another class: untouched
    expect(seen(41008)).toMatchObject({ wan0: 0, wan1: 30 });
    expect(seen(41009)).toMatchObject({ wan0: 30, wan1: 0 });
    await dp.call('setDscpPolicy', 18, null);
  });

  it('sends a down link\'s flows back to their original link, and returns them when it is up', async () => {
    await dp.call('upsertFlow', flow('udp', EDGE.wan0.v4, 41010, CLOUD.service.v4, UDP_PORT), TO_WAN1);
    await dp.call('setLinkUp', 1, false);
    udp(EDGE.wan0.v4, 41010, CLOUD.service.v4, 20);
    expect(seen(41010)).toMatchObject({ wan0: 20, wan1: 0 });
    await dp.call('setLinkUp', 1, true);
    udp(EDGE.wan0.v4, 41010, CLOUD.service.v4, 20);
    expect(seen(41010)).toMatchObject({ wan0: 20, wan1: 20 });
    const c = await dp.call<{ reasons: Record<string, { packets: string }> }>('counters');
    expect(Number(c.reasons.link_down!.packets)).toBeGreaterThanOrEqual(20);
  });

  it('keeps flows steered while the agent restarts and after it crashes (pins adopted)', async () => {
    await dp.call('upsertFlow', flow('tcp', EDGE.wan0.v4, 41011, CLOUD.service.v4, TCP_PORT), TO_WAN1);
    const stream = lab.spawn(lab.edge, ['python3', TRAFFIC, 'tcp-stream', EDGE.wan0.v4, '41011', CLOUD.service.v4, String(TCP_PORT), '2500']);
    const streamDone = new Promise<number | null>((r) => stream.once('exit', r));
    await new Promise((r) => setTimeout(r, 400));
    await dp.exit(); // a clean restart: pins and tc filters stay
    await new Promise((r) => setTimeout(r, 300));
    expect((await openDatapath()).adopted).toBe(true);
    await new Promise((r) => setTimeout(r, 400));
    dp.kill(); // a crash
    await new Promise((r) => setTimeout(r, 300));
    expect((await openDatapath()).adopted).toBe(true);
    expect(await streamDone).toBe(0);
    const s = seen(41011);
    expect(s.wan0).toBe(0);
    expect(s.wan1).toBeGreaterThan(50);
    // The new process sees the flow and policy the first one wrote.
    expect(await dp.call('getFlow', flow('tcp', EDGE.wan0.v4, 41011, CLOUD.service.v4, TCP_PORT))).toMatchObject({ policyId: TO_WAN1 });
  });
});
