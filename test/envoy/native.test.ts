// Proves the native session reporter (the wansteer Envoy dynamic module, envoy-filters/native/) in
// the real Envoy, rendered by `wansteer render envoyfilter --reporter native` and applied as
// istiod would, with the real agent behind the report tap: one report per connection and class,
// sent in batches from Envoy's main thread to the agent's batch intake, which writes the flow
// into the kernel's map; an IPv6 session reported over IPv6; requests unharmed when the agent is
// down or refusing; a client's X-Forwarded-For not changing the reported address (the module's
// network filter), and without that filter no wrong report; the module's counters; and a
// configuration it cannot parse refused, which stops Envoy. The reports' exact
// bytes, against the Lua filter's, at every placement: contract.test.ts.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLOUD, EDGE, LabEnvoy, meshBootstrap } from '../../src/lab/index.js';
import { describePrivileged } from '../helpers/privilege.js';
import { requireEnvoyModule } from '../helpers/tools.js';
import { CLOUD_SERVICE, EnvoyRig, INBOUND, requestsOf, type ConnectionResult } from './envoy-lab.js';

const native = requireEnvoyModule();
const KEEP_ALIVE_PORT = 47101;
const counter = (envoy: LabEnvoy, name: string) => envoy.stats().get(`dynamicmodulescustom.wansteer_${name}`) ?? 0;

native.describe(`Envoy ${native.version} with the native reporter`, () => {
  describePrivileged('in a two-link lab with the real agent', () => {
    let rig: EnvoyRig;
    let inbound: LabEnvoy;

    beforeAll(async () => {
      rig = await EnvoyRig.create('native', { reporter: 'native' });
      inbound = await rig.startEnvoy('sidecar-inbound', 15000);
    }, 180_000);

    afterAll(async () => {
      await rig?.destroy();
    });

    const reportsOf = (from: number, conn: ConnectionResult) => rig.reportsSince(from).filter((r) => r.report.remote === conn.local);
    const statuses = (conns: ConnectionResult[]) => conns.flatMap((c) => c.responses?.map((r) => r.status) ?? [c.error]);

    it('HTTP/1.1 keep-alive: twenty requests, one report; a class change, one more; batched to the agent, which puts the flow into the kernel map', async () => {
      const from = rig.events.length;
      const queuedBefore = counter(inbound, 'reports_queued');
      const [conn] = await rig.clients(rig.lab.cloud, [
        { ...INBOUND.v4, protocol: 'h1', localPort: KEEP_ALIVE_PORT, requests: [...requestsOf('minion', 20), ...requestsOf('boss', 5)] },
      ]);
      expect(conn!.sockets).toBe(1);
      expect(statuses([conn!])).toEqual(Array(25).fill(200));
      await rig.waitFor(() => reportsOf(from, conn!).length === 2, 'two reports');
      const reports = reportsOf(from, conn!);
      expect(reports.map((r) => r.report.request.headers['end-user'])).toEqual(['minion', 'boss']);
      expect(reports[0]!.raw).toBe(
        `{"direction":"inbound","protocol":"tcp","local":"${EDGE.wan0.v4}:${INBOUND.v4.port}","remote":"${CLOUD.c0.v4}:${KEEP_ALIVE_PORT}",` +
          `"request":{"authority":"${CLOUD_SERVICE}","path":"/orders/0","method":"GET","scheme":"http","headers":{"end-user":"minion"}}}`,
      );
      // From the session's own address, to the batch intake, as {"sessions":[...]}.
      for (const r of reports) expect(r).toMatchObject({ caller: EDGE.wan0.v4, path: '/v1/sessions:batch', batch: expect.any(Number) });
      expect(rig.events.find((e) => e.id === reports[0]!.id && e.event === 'report')).toMatchObject({ contentType: 'application/json' });
      // The agent took each (the batch answer's outcome for it) and the flow is in its map.
      for (const r of reports) await rig.waitFor(() => rig.answered(r.id) !== undefined, `the answer to report ${r.id}`);
      expect(rig.answered(reports[0]!.id)).toMatchObject({ status: 200, agent: { status: 'steered', policy: 'minion-to-lte', link: 'wan1' } });
      expect(rig.answered(reports[1]!.id)).toMatchObject({ status: 200, agent: { status: 'steered', policy: 'boss-on-fibre', link: 'wan0', dscp: 46 } });
      const [flows] = rig.agent.api.http({ path: '/v1/flows?policy=boss-on-fibre' });
      expect(flows!.body.items).toContainEqual(expect.objectContaining({ protocol: 'tcp', src: EDGE.wan0.v4, sport: INBOUND.v4.port, dst: CLOUD.c0.v4, dport: KEEP_ALIVE_PORT }));
      expect(counter(inbound, 'reports_queued') - queuedBefore).toBe(2);
    });

    it('HTTP/2: thirty requests on one connection, one report', async () => {
      const from = rig.events.length;
      const [conn] = await rig.clients(rig.lab.cloud, [{ ...INBOUND.v4, protocol: 'h2', requests: requestsOf('minion', 30) }]);
      expect(statuses([conn!])).toEqual(Array(30).fill(200));
      await rig.waitFor(() => reportsOf(from, conn!).length >= 1, 'the report');
      // Give a stray second report time to arrive before saying there is none.
      await new Promise((r) => setTimeout(r, 300));
      expect(reportsOf(from, conn!)).toHaveLength(1);
    });

    it('reports an IPv6 session through the IPv6 agent cluster, from the session\'s own address, and the agent steers it', async () => {
      const from = rig.events.length;
      const v6Before = inbound.stats().get('cluster.wansteer-agent-v6.upstream_rq_completed') ?? 0;
      const [conn] = await rig.clients(rig.lab.cloud, [{ ...INBOUND.v6, protocol: 'h1', requests: requestsOf('minion', 3) }]);
      expect(statuses([conn!])).toEqual([200, 200, 200]);
      await rig.waitFor(() => reportsOf(from, conn!).length === 1, 'the IPv6 report');
      const [report] = reportsOf(from, conn!);
      expect(report).toMatchObject({ caller: EDGE.wan0.v6, report: { local: `[${EDGE.wan0.v6}]:${INBOUND.v6.port}`, remote: conn!.local } });
      await rig.waitFor(() => rig.answered(report!.id) !== undefined, 'the answer');
      expect(rig.answered(report!.id)).toMatchObject({ agent: { status: 'steered', policy: 'minion-to-lte' } });
      expect(inbound.stats().get('cluster.wansteer-agent-v6.upstream_rq_completed') ?? 0).toBeGreaterThan(v6Before);
    });

    it('a client\'s X-Forwarded-For changes nothing: the report names the connection\'s own remote address', async () => {
      // The HTTP filter's source.address is Envoy's derived remote address, which a bare IP in XFF
      // replaces on this listener (use_remote_address false, as in Istio's sidecars); the module's
      // network filter hands the HTTP filter the connection's own one instead (as Lua's
      // downstreamDirectRemoteAddress).
      const from = rig.events.length;
      const xff = (user: string, value: string) => requestsOf(user, 1).map((r) => ({ ...r, headers: [...r.headers!, ['x-forwarded-for', value]] as [string, string][] }));
      const [bare, withPort] = await rig.clients(rig.lab.cloud, [
        { ...INBOUND.v4, protocol: 'h1', requests: xff('minion', '10.99.0.1') },
        { ...INBOUND.v4, protocol: 'h1', requests: xff('boss', '10.99.0.2:4444') },
      ]);
      expect(statuses([bare!, withPort!])).toEqual([200, 200]);
      await rig.waitFor(() => rig.reportsSince(from).length === 2, 'both reports');
      expect(rig.reportsSince(from).map((r) => [r.report.request.headers['end-user'], r.report.remote]).sort()).toEqual([
        ['boss', withPort!.local],
        ['minion', bare!.local],
      ]);
    });

    it('without the network filter (a proxy that lacks it), a request whose X-Forwarded-For Envoy took is not reported, never wrongly', async () => {
      const docs = (await rig.render('sidecar-inbound')).map((d: any) => // eslint-disable-line @typescript-eslint/no-explicit-any
        d.metadata.name === 'wansteer-session-report-sidecar-inbound' ? { ...d, spec: { ...d.spec, configPatches: d.spec.configPatches.filter((p: any) => p.applyTo !== 'NETWORK_FILTER') } } : d, // eslint-disable-line @typescript-eslint/no-explicit-any
      );
      const spec = rig.meshSpec('sidecar-inbound', 15401);
      const listener = { ...spec.listeners[0]!, name: 'no-direct-remote', port: 16107 };
      const bootstrap = meshBootstrap(docs, { ...spec, listeners: [listener] });
      expect(JSON.stringify(bootstrap)).not.toContain('DynamicModuleNetworkFilter');
      expect(JSON.stringify(bootstrap)).toContain('DynamicModuleFilter');
      const plain = await LabEnvoy.start(rig.lab, rig.lab.edge, bootstrap, { adminPort: 15401 });
      try {
        const from = rig.events.length;
        const request = (user: string, xff?: string) => requestsOf(user, 1).map((r) => ({ ...r, headers: [...r.headers!, ...(xff ? [['x-forwarded-for', xff] as [string, string]] : [])] }));
        const [bare, none] = await rig.clients(rig.lab.cloud, [
          { host: listener.address, port: listener.port, protocol: 'h1', requests: request('minion', '10.99.0.1') },
          { host: listener.address, port: listener.port, protocol: 'h1', requests: request('boss') },
        ]);
        expect(statuses([bare!, none!])).toEqual([200, 200]);
        await rig.waitFor(() => reportsOf(from, none!).length === 1, 'the report without XFF');
        // Envoy's remote address for the XFF request is 10.99.0.1 without a port: refused, not reported.
        expect(rig.reportsSince(from).map((r) => r.report.remote)).toEqual([none!.local]);
      } finally {
        plain.stop();
      }
    });

    it.each([
      ['down (connection refused)', { mode: 'down' } as const],
      ['answering 429', { mode: 'status', status: 429 } as const],
    ])('the agent %s: every request succeeds, the batch is counted as failed and not retried', async (_name, mode) => {
      const failedBefore = counter(inbound, 'batches_failed');
      await rig.tapMode(mode);
      const from = rig.events.length;
      try {
        const conns = await rig.clients(rig.lab.cloud, [0, 1, 2].map(() => ({ ...INBOUND.v4, protocol: 'h1' as const, requests: requestsOf('minion', 5) })));
        expect(statuses(conns)).toEqual(Array(15).fill(200));
        await rig.waitFor(() => counter(inbound, 'batches_failed') > failedBefore, 'a failed batch');
        if (mode.mode === 'down') expect(rig.reportsSince(from)).toEqual([]);
        else expect(new Set(rig.reportsSince(from).map((r) => rig.answered(r.id)?.status ?? 429))).toEqual(new Set([429]));
        // Each connection was remembered when queued: its next requests send nothing more.
        const sent = rig.reportsSince(from).length;
        await new Promise((r) => setTimeout(r, 300));
        expect(rig.reportsSince(from)).toHaveLength(sent);
      } finally {
        await rig.tapMode({ mode: 'forward' });
      }
    });

    it('a report lost while the agent was down is sent again after refresh_s, on the same connection', async () => {
      // An Envoy of its own whose module reports a connection again after 2 s (refresh_s=2). Its clock
      // counts whole seconds, so an entry is stale 1 to 2 s after it was stored: with refresh_s=1 a
      // request 300 ms later could already be past it.
      const docs = JSON.parse(JSON.stringify(await rig.render('sidecar-inbound')).replace(/timeout_ms=200\\n/, 'timeout_ms=200\\nrefresh_s=2\\n')) as unknown[];
      expect(JSON.stringify(docs)).toContain('refresh_s=2');
      const spec = rig.meshSpec('sidecar-inbound', 15402);
      const listener = { ...spec.listeners[0]!, name: 'refresh', port: 16108 };
      const refresh = await LabEnvoy.start(rig.lab, rig.lab.edge, meshBootstrap(docs, { ...spec, listeners: [listener] }), { adminPort: 15402 });
      const from = rig.events.length;
      try {
        await rig.tapMode({ mode: 'down' });
        const pauses = [
          async () => {
            // The first report was lost (the agent was down); the agent is back.
            await rig.waitFor(() => counter(refresh, 'batches_failed') >= 1, 'the failed batch');
            await rig.tapMode({ mode: 'forward' });
          },
          async () => {
            // The same class, before refresh_s: nothing is sent.
            await new Promise((r) => setTimeout(r, 300));
            expect(rig.reportsSince(from).filter((r) => r.report.local.endsWith(`:${listener.port}`))).toEqual([]);
            // Past refresh_s (the module's clock counts whole seconds): the next request reports again.
            await new Promise((r) => setTimeout(r, 2600));
          },
        ];
        let pause = 0;
        const [conn] = await rig.clients(
          rig.lab.cloud,
          [{ host: listener.address, port: listener.port, protocol: 'h1', requests: requestsOf('minion', 3).map((r, i) => ({ ...r, pause: i > 0 })) }],
          () => pauses[pause++]!(),
        );
        expect(conn!.sockets).toBe(1);
        expect(statuses([conn!])).toEqual([200, 200, 200]);
        await rig.waitFor(() => reportsOf(from, conn!).length === 1, 'the report after refresh_s');
        await rig.waitFor(() => rig.answered(reportsOf(from, conn!)[0]!.id) !== undefined, 'its answer');
        expect(rig.answered(reportsOf(from, conn!)[0]!.id)).toMatchObject({ status: 200, agent: { status: 'steered', policy: 'minion-to-lte' } });
      } finally {
        await rig.tapMode({ mode: 'forward' });
        refresh.stop();
      }
    });

    it('refuses a configuration it cannot parse: Envoy logs why and does not start', async () => {
      const docs = await rig.render('sidecar-inbound');
      const broken = JSON.parse(JSON.stringify(docs).replace(/placement=sidecar-inbound\\n/, 'placement=sideways\\n')) as unknown[];
      expect(JSON.stringify(broken)).toContain('placement=sideways');
      const spec = rig.meshSpec('sidecar-inbound', 15400);
      const start = LabEnvoy.start(rig.lab, rig.lab.edge, meshBootstrap(broken, { ...spec, listeners: [{ ...spec.listeners[0]!, name: 'broken', port: 16106 }] }), { adminPort: 15400 });
      await expect(start).rejects.toThrow(/Envoy exited[\s\S]*wansteer: refusing filter session_report: unknown placement/);
    });
  });
});
