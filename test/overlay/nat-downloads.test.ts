/**
 * Overlay links on an edge built like a Kubernetes node (issue 13): a pod behind the node's
 * masquerade, NodePorts DNATed to it, the real agent steering the edge's two links, and a second
 * real agent at the cloud end of the links in reply-by-arrival mode. Every session's bytes are
 * counted per link where they land — uploads at the cloud's end of each link, downloads at the
 * edge's — and by both agents' own datapath counters.
 *
 * Proves: a pod's session reported with its pre-NAT tuple is steered; its download comes back by
 * the policy's link (and, as a control, does not without the cloud end's agent); a cloud client
 * reaching the pod through DNAT (externalTrafficPolicy Local and Cluster) is steered both ways;
 * a policy change and a failover move both directions of running sessions; IPv4 and IPv6.
 */
import { existsSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOUD, EDGE, EDGE_POD, NODE_PORTS, OverlayCounters, OverlayRig, POD_SERVICE_PORT, type OverlayFlow } from '../helpers/netns.js';
import { describePrivileged } from '../helpers/privilege.js';

const HOST = 'cloud-service.cloud.svc.cluster.local';
const MINION = { virtualService: 'default/cloud-service', route: 'minion' };
const request = (user: string) => ({ authority: HOST, path: '/', method: 'GET', headers: { 'end-user': user } });
const hostPort = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Each session: its family, the cloud server port it talks to and its own source port. */
const S = {
  podV4: { v: 4, port: 8001, sport: 41001 },
  podV6: { v: 6, port: 8002, sport: 41002 },
  hostV4: { v: 4, port: 8003, sport: 41003 },
  before: { v: 4, port: 8004, sport: 41004 },
  longV4: { v: 4, port: 8005, sport: 41005 },
  longV6: { v: 6, port: 8006, sport: 41006 },
  recipe: { v: 4, port: 8007, sport: 41007 },
} as const;
/** Inbound through a NodePort: the cloud client's source port tells the session apart. */
const IN = {
  localV4: { v: 4, nodePort: NODE_PORTS.local, cport: 42001 },
  clusterV4: { v: 4, nodePort: NODE_PORTS.cluster, cport: 42002 },
  localV6: { v: 6, nodePort: NODE_PORTS.local, cport: 42003 },
  clusterV6: { v: 6, nodePort: NODE_PORTS.cluster, cport: 42004 },
} as const;

const flows: OverlayFlow[] = [
  ...Object.entries(S).map(([name, s]) => ({ name, up: `tcp dport ${s.port}`, down: `tcp sport ${s.port}` })),
  ...Object.entries(IN).map(([name, s]) => ({ name, up: `tcp dport ${s.cport}`, down: `tcp sport ${s.cport}` })),
];

describePrivileged('overlay links: pods behind NAT match their sessions, downloads follow the edge (both agents, real traffic)', () => {
  let rig: OverlayRig;
  let counters: OverlayCounters;

  /** The cloud service, the pod and the edge's wan0 address in family `v`. */
  const cloud = (v: 4 | 6) => (v === 4 ? CLOUD.service.v4 : CLOUD.service.v6);
  const pod = (v: 4 | 6) => (v === 4 ? EDGE_POD.v4 : EDGE_POD.v6);
  const wan0 = (v: 4 | 6) => (v === 4 ? EDGE.wan0.v4 : EDGE.wan0.v6);

  /** Report an outbound session of the pod (its sidecar's view: the pre-NAT tuple). */
  function reportFromPod(s: { v: 4 | 6; port: number; sport: number }, user = 'minion') {
    const answer = rig.report('pod', { direction: 'outbound', local: hostPort(pod(s.v), s.sport), remote: hostPort(cloud(s.v), s.port), request: request(user) });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    return answer.body as { status: string; link?: string; flow?: { src: string } };
  }

  /** Byte deltas of a session per link and direction between two reads. */
  function delta(name: string, before: ReturnType<OverlayCounters['bytes']>) {
    const now = counters.bytes(name);
    return {
      wan0: { up: now.wan0.up - before.wan0.up, down: now.wan0.down - before.wan0.down },
      wan1: { up: now.wan1.up - before.wan1.up, down: now.wan1.down - before.wan1.down },
    };
  }

  beforeAll(async () => {
    // The cloud end's agent starts later: the first test shows the symptom without it.
    rig = await OverlayRig.start({ tag: 'ovlnat', cloudAgent: false });
    counters = OverlayCounters.install(rig.lab, flows);
    const put = rig.putPolicy('minion-wan1', { match: { route: MINION }, action: { links: ['wan1', 'wan0'], mode: 'redirect' } });
    expect(put.status, JSON.stringify(put.body)).toBe(201);
  }, 90_000);

  afterAll(async () => {
    await rig?.stop();
  });

  it('without an agent at the cloud end, a steered session goes out by wan1 but its download comes back by wan0', () => {
    expect(reportFromPod(S.before).link).toBe('wan1');
    const r = rig.exchange('pod', { dst: cloud(4), port: S.before.port, sport: S.before.sport, up: 100_000, down: 1_000_000 });
    expect(r.error).toBeUndefined();
    const b = counters.bytes('before');
    expect(b.wan1.up).toBeGreaterThan(100_000);
    expect(b.wan0.up).toBe(0);
    expect(b.wan0.down).toBeGreaterThan(1_000_000);
    expect(b.wan1.down).toBe(0);
  });

  // Proves the recipe docs/overlay.md gives for a cloud end without wansteer, as written there.
  it('a cloud end that is not ours: the nftables + policy routing recipe of docs/overlay.md sends the download back by wan1', () => {
    const { cloud: ns } = rig.lab;
    rig.lab.exec(ns, ['nft', '-f', '-'], [
      'table inet reply_by_arrival {',
      '  chain arrive {',
      '    type filter hook prerouting priority mangle; policy accept;',
      '    iifname "c0" ct mark set 1',
      '    iifname "c1" ct mark set 2',
      '    iifname != { "c0", "c1" } meta mark set ct mark',
      '  }',
      '  chain reply {',
      '    type route hook output priority mangle; policy accept;',
      '    meta mark set ct mark',
      '  }',
      '}',
    ].join('\n') + '\n');
    const batch = (lines: string[]) => rig.lab.exec(ns, ['ip', '-batch', '-'], lines.join('\n') + '\n');
    batch([`rule add fwmark 1 lookup 101`, `route add default via ${EDGE.wan0.v4} dev c0 table 101`, `rule add fwmark 2 lookup 102`, `route add default via ${EDGE.wan1.v4} dev c1 table 102`]);
    try {
      expect(reportFromPod(S.recipe).link).toBe('wan1');
      expect(rig.exchange('pod', { dst: cloud(4), port: S.recipe.port, sport: S.recipe.sport, up: 100_000, down: 1_000_000 }).down).toBe(1_000_000);
      const b = counters.bytes('recipe');
      expect(b.wan1.up).toBeGreaterThan(100_000);
      expect(b.wan1.down).toBeGreaterThan(1_000_000);
      expect(b.wan0).toEqual({ up: 0, down: 0 });
    } finally {
      rig.lab.exec(ns, ['nft', 'delete', 'table', 'inet', 'reply_by_arrival']);
      batch(['rule del fwmark 1 lookup 101', 'rule del fwmark 2 lookup 102', 'route flush table 101', 'route flush table 102']);
    }
  });

  describe('with the cloud end in reply-by-arrival mode', () => {
    beforeAll(async () => {
      await rig.cloudAgent.start();
    }, 60_000);

    for (const s of [S.podV4, S.podV6]) {
      it(`a pod's IPv${s.v} session behind the masquerade matches its pre-NAT report, and both directions take wan1`, () => {
        const outcome = reportFromPod(s);
        expect(outcome).toMatchObject({ status: 'steered', link: 'wan1' });
        const r = rig.exchange('pod', { dst: cloud(s.v), port: s.port, sport: s.sport, up: 300_000, down: 2_000_000 });
        expect(r).toMatchObject({ up: 300_000, down: 2_000_000 });
        // overlay: the node's masquerade gives wan0's address, valid on every link
        expect(r.seen).toBe(wan0(s.v));
        const name = s.v === 4 ? 'podV4' : 'podV6';
        const b = counters.bytes(name);
        expect(b.wan1.up).toBeGreaterThan(300_000);
        expect(b.wan1.down).toBeGreaterThan(2_000_000);
        expect(b.wan0).toEqual({ up: 0, down: 0 });
      });
    }

    it('a host-network proxy\'s session (no NAT) is steered both ways too', () => {
      const s = S.hostV4;
      const answer = rig.report('edge', { direction: 'outbound', local: hostPort(EDGE.wan0.v4, s.sport), remote: hostPort(cloud(4), s.port), request: request('minion') });
      expect(answer.body).toMatchObject({ status: 'steered', link: 'wan1' });
      expect(rig.exchange('edge', { dst: cloud(4), port: s.port, src: EDGE.wan0.v4, sport: s.sport, up: 200_000, down: 1_000_000 }).down).toBe(1_000_000);
      const b = counters.bytes('hostV4');
      expect(b.wan1.up).toBeGreaterThan(200_000);
      expect(b.wan1.down).toBeGreaterThan(1_000_000);
      expect(b.wan0).toEqual({ up: 0, down: 0 });
    });

    it('both agents count at least the bytes the wire counted on wan1 / tun1, and the cloud end lists the flows it learned', () => {
      const names = ['before', 'podV4', 'podV6', 'hostV4'];
      const onWire = names.map((n) => counters.bytes(n).wan1).reduce((s, b) => ({ up: s.up + b.up, down: s.down + b.down }), { up: 0, down: 0 });
      expect(onWire.up).toBeGreaterThan(900_000);
      expect(onWire.down).toBeGreaterThan(5_000_000);
      // the edge's BPF counters (L2 bytes of steered flows leaving by each link) hold every one of them
      const metrics = rig.call('GET', '/metrics').body as string;
      const sent = (link: string) => Number(new RegExp(`wansteer_link_bytes_total\\{link="${link}"\\} (\\d+)`).exec(metrics)?.[1] ?? -1);
      expect(sent('wan1')).toBeGreaterThanOrEqual(onWire.up);
      // the cloud end's: arrivals by each link, and replies sent back by it
      const cloudLinks = rig.cloudAgent.api.http({ path: '/v1/links' })[0]!.body.items as { name: string; up: boolean; arrived: { bytes: number }; replied: { bytes: number } }[];
      const tun1 = cloudLinks.find((l) => l.name === 'tun1')!;
      expect(tun1.up).toBe(true);
      expect(tun1.arrived.bytes).toBeGreaterThanOrEqual(onWire.up - 100_000); // 'before' arrived while the cloud end had no agent
      expect(tun1.replied.bytes).toBeGreaterThanOrEqual(onWire.down);
      expect(cloudLinks.find((l) => l.name === 'tun0')!.replied.bytes).toBeLessThan(100_000);
      const arrivals = rig.cloudAgent.api.http({ path: '/v1/arrivals' })[0]!.body.items as { src: string; sport: number; dst: string; link: string }[];
      expect(arrivals).toContainEqual(expect.objectContaining({ src: cloud(4), sport: S.podV4.port, dst: EDGE.wan0.v4, link: 'tun1' }));
      expect(arrivals).toContainEqual(expect.objectContaining({ src: cloud(6), sport: S.podV6.port, dst: EDGE.wan0.v6, link: 'tun1' }));
    });

    for (const [name, s] of Object.entries(IN)) {
      const policy = s.nodePort === NODE_PORTS.local ? 'externalTrafficPolicy Local: DNAT' : 'externalTrafficPolicy Cluster: DNAT and masquerade';
      it(`IPv${s.v} inbound through a NodePort (${policy}): the pod's report matches, replies and requests take wan1`, () => {
        const v = s.v as 4 | 6;
        // What the pod sees of its client: the client itself (Local), or the node's bridge address (Cluster).
        const peer = s.nodePort === NODE_PORTS.local ? cloud(v) : v === 4 ? EDGE_POD.gateway4 : EDGE_POD.gateway6;
        const answer = rig.report('pod', { direction: 'inbound', local: hostPort(pod(v), POD_SERVICE_PORT), remote: hostPort(peer, s.cport), request: request('minion') });
        expect(answer.body).toMatchObject({ status: 'steered', link: 'wan1' });
        // the cloud client uploads 400 kB and downloads 1.5 MB from the pod, through the edge's wan0 address
        const r = rig.exchange('cloud', { dst: wan0(v), port: s.nodePort, src: cloud(v), sport: s.cport, up: 400_000, down: 1_500_000 });
        expect(r).toMatchObject({ seen: peer, down: 1_500_000 });
        const b = counters.bytes(name);
        expect(b.wan1.up).toBeGreaterThan(1_500_000); // the pod's replies
        expect(b.wan0.up).toBe(0);
        expect(b.wan1.down).toBeGreaterThan(400_000); // the client's requests, once the cloud end saw a reply arrive
        expect(b.wan0.down).toBeLessThan(200); // its SYN, before any packet of the flow arrived at the cloud
      });
    }

    it('a policy change and a failover move both directions of running IPv4 and IPv6 sessions', async () => {
      for (const s of [S.longV4, S.longV6]) expect(reportFromPod(s).link).toBe('wan1');
      const loops = [S.longV4, S.longV6].map((s) => rig.loop('pod', { dst: cloud(s.v), port: s.port, sport: s.sport, ms: 13_000, up: 2_000, down: 20_000 }));
      /** Bytes per link and direction of both sessions over `ms`, from now. */
      const window = async (ms: number) => {
        const before = { v4: counters.bytes('longV4'), v6: counters.bytes('longV6') };
        await sleep(ms);
        return { v4: delta('longV4', before.v4), v6: delta('longV6', before.v6) };
      };
      const expectOn = (w: Awaited<ReturnType<typeof window>>, on: 'wan0' | 'wan1', phase: string) => {
        const off = on === 'wan0' ? 'wan1' : 'wan0';
        for (const [family, d] of Object.entries(w)) {
          expect({ phase, family, up: d[on].up > 10_000, down: d[on].down > 100_000 }).toEqual({ phase, family, up: true, down: true });
          expect({ phase, family, off: d[off] }).toEqual({ phase, family, off: { up: 0, down: 0 } });
        }
      };
      /**
       * Waits until both sessions have moved: a short window with nothing on the other link, in
       * both directions (the move itself is asserted by the measured window that follows). A
       * loaded machine takes longer to move and to drain what was in flight; it gets up to 8 s.
       */
      const settled = async (on: 'wan0' | 'wan1') => {
        const off = on === 'wan0' ? 'wan1' : 'wan0';
        const deadline = Date.now() + 8000;
        for (;;) {
          const w = await window(300);
          const quiet = Object.values(w).every((d) => d[off].up === 0 && d[off].down === 0);
          if (quiet || Date.now() > deadline) return;
        }
      };
      await settled('wan1');
      expectOn(await window(2000), 'wan1', 'policy on wan1');

      // A policy change on the edge: uploads move at once, downloads with the next packet that arrives.
      expect(rig.putPolicy('minion-wan1', { match: { route: MINION }, action: { links: ['wan0', 'wan1'], mode: 'redirect' } }).status).toBe(200);
      await settled('wan0');
      expectOn(await window(2000), 'wan0', 'policy changed to wan0');

      // Back to wan1, then wan1 blackholed at the edge (carrier up): the edge's probes fail it over.
      expect(rig.putPolicy('minion-wan1', { match: { route: MINION }, action: { links: ['wan1', 'wan0'], mode: 'redirect' } }).status).toBe(200);
      await settled('wan1');
      expectOn(await window(1000), 'wan1', 'policy back on wan1');
      rig.lab.drop('wan1', 100);
      try {
        await rig.edgeAgent.api.waitLinks((ls) => ls.find((l) => l.name === 'wan1')?.up === false, 5000, 'wan1 down');
        await settled('wan0'); // TCP retransmits what the blackhole ate, now by wan0
        expectOn(await window(2000), 'wan0', 'wan1 failed over');
      } finally {
        rig.lab.drop('wan1', null);
      }
      for (const events of await Promise.all(loops.map((l) => l.done))) {
        expect(events.filter((e) => e.event === 'error')).toEqual([]); // overlay: the connection lived through it all
        expect(events.at(-1)).toMatchObject({ event: 'done' });
      }
    }, 30_000);

    // Proves uninstall at the cloud end: an agent that stops leaves its programs in force on
    // purpose; `wansteer cleanup` with its config takes them off both hooks and removes the pins.
    it('wansteer cleanup with the cloud end\'s config takes the programs off both hooks and removes the pins', async () => {
      await rig.cloudAgent.stop();
      const filters = (dev: string, hook: string) => rig.lab.exec(rig.lab.cloud, ['tc', 'filter', 'show', 'dev', dev, hook]);
      expect(filters('c1', 'ingress')).toContain('ws_arrive_eth');
      expect(filters('c1', 'egress')).toContain('ws_reply_eth');
      expect(readdirSync(rig.cloudAgent.pinDir)).toContain('ws_arrivals4');
      const out = rig.lab.exec(rig.lab.cloud, [...rig.cli, 'cleanup', '--config', rig.cloudAgent.configFile]);
      expect(out).toMatch(/removed from c0, c1/);
      for (const dev of ['c0', 'c1']) for (const hook of ['ingress', 'egress']) expect(filters(dev, hook)).not.toMatch(/ws_/);
      expect(existsSync(rig.cloudAgent.pinDir) ? readdirSync(rig.cloudAgent.pinDir) : []).toEqual([]);
    });
  });
});
