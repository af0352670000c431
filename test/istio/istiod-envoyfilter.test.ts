// Proves that istiod applies the rendered EnvoyFilters where they are meant to go: a real
// pilot-discovery (scripts/k8s-versions.sh ISTIO_VERSION) reads a real kube-apiserver and etcd
// holding Istio's CRDs, the workloads (Pods, Services, EndpointSlices, a DestinationRule with
// the mark class's subsets) and the EnvoyFilters `wansteer render envoyfilter` makes; a real
// Envoy (scripts/envoy-version) in a lab namespace takes its whole configuration from istiod over
// ADS as the sidecar of a Pod labelled wansteer.io/steer=true, a second Envoy as the sidecar of
// an unlabelled Pod. Envoy's /config_dump then shows:
//  - the Lua session reporter just before the router in every inbound HTTP chain (and, from the
//    outbound render, in every outbound HTTP chain), byte for byte the rendered script;
//  - the agent clusters as rendered;
//  - mark mode's socket options (IP_TOS, IPV6_TCLASS) on the v2 subset cluster and not on v1;
//  - none of it in the unlabelled workload's Envoy (the workloadSelector scopes them);
//  - a deleted EnvoyFilter leaves the Envoy, and comes back when applied again;
//  - the native reporter (`--reporter native`) in place of the Lua one: its network filter before
//    the HTTP connection manager, its HTTP filter before the router, a request reported in a batch.
// And a request sent to the pod's port (redirected to Envoy's 15006 by nftables, as Istio's
// iptables do) passes through istiod's listener, the filter reports it to the real agent, and
// the session is a flow in the kernel's map under the minion policy.
// What differs from a cluster (test/helpers/istiod.ts): the stock Envoy is not istio-proxy, so
// mesh config and environment turn off what only istio-proxy can load (metadata exchange, ALPN
// filter, tracing, auto mTLS; PeerAuthentication DISABLE) and there is no pilot-agent: the test
// writes the bootstrap pilot-agent would, and no CA.
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLOUD, EDGE, LabEnvoy } from '../../src/lab/index.js';
import { APP_PORT, EnvoyRig, REVIEWS, requestsOf, TAP_PORT } from '../envoy/envoy-lab.js';
import { controlPlane } from '../helpers/control-plane-gate.js';
import { ISTIO_LINE, Istiod, sidecarBootstrap, type SidecarIdentity } from '../helpers/istiod.js';
import { captureInbound, clusterBasics, configDump, endpointSlice, httpChains, ipTos, LUA, markRunning, optionValues, ROUTER, service, until, workload, type Json } from '../helpers/istio-workloads.js';
import { KubeControlPlane, PILOT_DISCOVERY, type ApiObject } from '../helpers/kube-control-plane.js';
import { describePrivileged } from '../helpers/privilege.js';
import { requireEnvoy, requireTool } from '../helpers/tools.js';

const envoy = requireEnvoy();
const istiodGate = requireTool(`istiod ${ISTIO_LINE} (scripts/setup-k8s.sh)`, PILOT_DISCOVERY);

const SHOP = 'shop';
const STEERED: SidecarIdentity = { pod: 'inbound-app', namespace: SHOP, ip: EDGE.wan0.v4, labels: { app: 'inbound-app', 'wansteer.io/steer': 'true' } };
const PLAIN: SidecarIdentity = { pod: 'plain-app', namespace: SHOP, ip: CLOUD.service.v4, labels: { app: 'plain-app' } };
const ADMIN_PORT = 15000;
const V2 = `outbound|80|v2|${REVIEWS}`;
const V1 = `outbound|80|v1|${REVIEWS}`;
const NATIVE_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter';
const DIRECT_REMOTE = 'wansteer.direct_remote';
const HCM = 'envoy.filters.network.http_connection_manager';

// ---- the cluster's objects ----------------------------------------------------------------

function clusterObjects(): ApiObject[] {
  return [
    ...clusterBasics(SHOP),
    ...workload(STEERED, APP_PORT),
    ...workload(PLAIN, APP_PORT),
    // The mark class's service and its subsets (reviews v2 is class jason-on-fibre, DSCP 10).
    service('reviews', 'default', { app: 'reviews' }, 80, 9080),
    endpointSlice('reviews', 'default', CLOUD.service.v4, 9080),
    {
      apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'reviews', namespace: 'default' },
      spec: { host: REVIEWS, subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] },
    } as ApiObject,
  ];
}

envoy.describe(`istiod ${ISTIO_LINE} applies the rendered EnvoyFilters to Envoy ${envoy.version}`, () => {
  istiodGate.describe('pilot-discovery', () => {
    controlPlane.describe('on a real kube-apiserver', () => {
      describePrivileged('in a two-link lab with the real agent', () => {
        let rig: EnvoyRig;
        let cp: KubeControlPlane;
        let istiod: Istiod;
        let steered: LabEnvoy;
        let plain: LabEnvoy;
        let inbound: ApiObject[];
        let luaSource: string;
        const timings: Record<string, number> = {};

        beforeAll(async () => {
          try {
            rig = await EnvoyRig.create('istiod');
            cp = await KubeControlPlane.start();
            await cp.installCrds({ allIstio: true });
            await cp.apply(clusterObjects());
            await markRunning(cp, STEERED);
            await markRunning(cp, PLAIN);
            // The default placement's render (reporting to the lab's agent through the tap), and
            // the outbound placement's reporter beside it, to see both contexts land.
            inbound = (await rig.render('sidecar-inbound')) as ApiObject[];
            const outbound = (await rig.render('sidecar-outbound')) as ApiObject[];
            const envoyFilters = [...inbound, ...outbound.filter((o) => o.metadata?.name === 'wansteer-session-report-sidecar-outbound')]
              .filter((o) => o?.kind === 'EnvoyFilter');
            expect(envoyFilters.map((o) => o.metadata?.name).sort()).toEqual([
              'wansteer-agent-cluster', 'wansteer-mark-classes', 'wansteer-session-report-sidecar-inbound', 'wansteer-session-report-sidecar-outbound',
            ]);
            await cp.apply(envoyFilters);
            const reporter = inbound.find((o) => o.metadata?.name === 'wansteer-session-report-sidecar-inbound') as Json;
            luaSource = reporter.spec.configPatches[0].patch.value.typed_config.default_source_code.inline_string;

            let started = Date.now();
            istiod = await Istiod.start(cp);
            timings.istiodReadyMs = Date.now() - started;
            const socket = join(istiod.dir, 'xds.sock');
            await istiod.unixBridge(socket);

            captureInbound(rig.lab, rig.lab.edge, STEERED.ip, APP_PORT);

            started = Date.now();
            steered = await LabEnvoy.start(rig.lab, rig.lab.edge, sidecarBootstrap(STEERED, { adminPort: ADMIN_PORT, xdsSocket: socket }), { adminPort: ADMIN_PORT, readyTimeoutMs: 120_000 });
            timings.envoyReadyMs = Date.now() - started;
            await until('the Lua filter in the steered Envoy', () => httpChains(configDump(steered)).some((c) => c.lua));
            timings.envoyToLuaMs = Date.now() - started;
            plain = await LabEnvoy.start(rig.lab, rig.lab.cloud, sidecarBootstrap(PLAIN, { adminPort: ADMIN_PORT, xdsSocket: socket }), { adminPort: ADMIN_PORT, readyTimeoutMs: 120_000 });
          } catch (err) {
            const tail = istiod ? `\nistiod's log:\n${istiod.logTail()}` : '';
            const envoyLog = steered ? `\nEnvoy's log:\n${steered.log.slice(-3000)}` : '';
            throw new Error(`${(err as Error).message}${tail}${envoyLog}`, { cause: err });
          }
        }, 600_000);

        afterAll(async () => {
          console.info(`istiod timings: ${JSON.stringify(timings)}`);
          steered?.stop();
          plain?.stop();
          await istiod?.stop();
          await cp?.stop();
          await rig?.destroy();
        });

        it('istiod configures the sidecar: its inbound listener for the pod\'s port, the service and subset clusters', () => {
          const dump = configDump(steered);
          expect(dump.listeners.map((l) => l.name)).toEqual(expect.arrayContaining(['virtualInbound', 'virtualOutbound']));
          expect([...dump.clusters.keys()]).toEqual(expect.arrayContaining([`inbound|${APP_PORT}||`, V1, V2]));
          const inboundApp = httpChains(dump).filter((c) => c.listener === 'virtualInbound' && c.chain.endsWith(`_${APP_PORT}`));
          expect(inboundApp.length).toBeGreaterThan(0);
        });

        it('the Lua reporter sits just before the router in every inbound HTTP chain, exactly as rendered', () => {
          const chains = httpChains(configDump(steered)).filter((c) => c.direction === 'INBOUND');
          expect(chains.some((c) => c.chain.endsWith(`_${APP_PORT}`))).toBe(true);
          for (const c of chains) {
            expect(c.filters.slice(-2), `${c.listener} ${c.chain}`).toEqual([LUA, ROUTER]);
            expect(c.filters.filter((f) => f === LUA)).toHaveLength(1);
            expect(c.lua.default_source_code.inline_string).toBe(luaSource);
          }
        });

        it('the outbound render\'s reporter sits just before the router in every outbound HTTP chain', () => {
          const chains = httpChains(configDump(steered)).filter((c) => c.direction === 'OUTBOUND');
          // reviews:80 and the app's own service :8080 are HTTP ports the sidecar routes to.
          expect(chains.map((c) => c.listener)).toEqual(expect.arrayContaining(['0.0.0.0_80', `0.0.0.0_${APP_PORT}`]));
          for (const c of chains) expect(c.filters.slice(-2), `${c.listener} ${c.chain}`).toEqual([LUA, ROUTER]);
          expect(chains.every((c) => c.lua.default_source_code.inline_string.includes('placement = "sidecar-outbound"'))).toBe(true);
        });

        it('the agent clusters are there as rendered', () => {
          const { clusters } = configDump(steered);
          for (const [name, host] of [['wansteer-agent', EDGE.wan0.v4], ['wansteer-agent-v6', EDGE.wan0.v6]] as const) {
            const cluster = clusters.get(name);
            expect(cluster, name).toBeDefined();
            const address = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
            expect(address).toMatchObject({ address: host, port_value: TAP_PORT });
          }
        });

        it('mark mode: the v2 subset cluster carries IP_TOS and IPV6_TCLASS of DSCP 10, v1 none', () => {
          const { clusters } = configDump(steered);
          const v2 = clusters.get(V2);
          expect(ipTos(v2)).toEqual([40]);
          expect(optionValues(v2.upstream_bind_config.extra_source_addresses[0].socket_options.socket_options, 41, 67)).toEqual([40]);
          expect(clusters.get(V1)?.upstream_bind_config).toBeUndefined();
        });

        it('the workloadSelector scopes them: the unlabelled workload\'s sidecar has none of it', () => {
          const dump = configDump(plain);
          // Configured by the same istiod (so the absence means something) ...
          expect(dump.listeners.map((l) => l.name)).toContain('virtualInbound');
          expect(dump.clusters.has(V2)).toBe(true);
          expect(httpChains(dump).length).toBeGreaterThan(0);
          // ... but without the reporter, the agent clusters or the marks.
          expect(httpChains(dump).filter((c) => c.lua || c.filters.includes(LUA))).toEqual([]);
          expect([...dump.clusters.keys()].filter((n) => n.startsWith('wansteer-'))).toEqual([]);
          expect(dump.clusters.get(V2).upstream_bind_config).toBeUndefined();
        });

        it('a request to the pod passes istiod\'s listener, is reported, and its session is a flow in the kernel\'s map', async () => {
          const from = rig.events.length;
          const [conn] = await rig.clients(rig.lab.cloud, [{ host: STEERED.ip, port: APP_PORT, protocol: 'h1', requests: requestsOf('minion', 3) }]);
          expect(conn!.responses.map((r) => r.status)).toEqual([200, 200, 200]);
          await rig.waitFor(() => rig.reportsSince(from).length >= 1, 'the report', 30_000);
          const [report] = rig.reportsSince(from);
          // Envoy's downstream local address is the pod's port (original_dst undid the redirect).
          expect(report!.report).toMatchObject({ direction: 'inbound', protocol: 'tcp', local: `${STEERED.ip}:${APP_PORT}`, remote: conn!.local });
          expect(report!.report.request.headers).toEqual({ 'end-user': 'minion' });
          await rig.waitFor(() => rig.answered(report!.id) !== undefined, 'the agent\'s answer', 30_000);
          expect(rig.answered(report!.id)!.agent).toMatchObject({ status: 'steered', policy: 'minion-to-lte', link: 'wan1' });
          const [remoteIp, remotePort] = [conn!.local.slice(0, conn!.local.lastIndexOf(':')), Number(conn!.local.slice(conn!.local.lastIndexOf(':') + 1))];
          // GET /v1/flows reads the pinned BPF flow table.
          const [flows] = rig.agent.api.http({ path: '/v1/flows?policy=minion-to-lte' });
          expect(flows!.body.items).toContainEqual(expect.objectContaining({ protocol: 'tcp', src: STEERED.ip, sport: APP_PORT, dst: remoteIp, dport: remotePort, policy: 'minion-to-lte' }));
        });

        it('istiod follows a change: a deleted EnvoyFilter leaves the Envoy, applied again it returns', async () => {
          const marks = inbound.find((o) => o.metadata?.name === 'wansteer-mark-classes')!;
          const path = (await cp.pathOf(marks, 'wansteer-mark-classes'))!;
          let started = Date.now();
          expect((await cp.request('DELETE', path)).status).toBe(200);
          await until('the marks gone', () => ipTos(configDump(steered).clusters.get(V2)).length === 0);
          timings.deleteToEnvoyMs = Date.now() - started;
          started = Date.now();
          await cp.create(marks);
          await until('the marks back', () => ipTos(configDump(steered).clusters.get(V2))[0] === 40);
          timings.createToEnvoyMs = Date.now() - started;
          // The rest stayed as it was.
          expect(httpChains(configDump(steered)).filter((c) => c.direction === 'INBOUND').every((c) => c.filters.at(-2) === LUA)).toBe(true);
        });

        it('the native reporter instead: its filters where the Lua one was, a request reported in a batch and steered', async () => {
          const native = (await rig.render('sidecar-inbound', [], 'native')) as ApiObject[];
          const reporter = native.find((o) => o.metadata?.name === 'wansteer-session-report-sidecar-inbound')!;
          const path = (await cp.pathOf(reporter, reporter.metadata!.name!))!;
          const started = Date.now();
          expect((await cp.request('DELETE', path)).status).toBe(200);
          await cp.create(reporter);
          const inboundChains = () => httpChains(configDump(steered)).filter((c) => c.direction === 'INBOUND');
          // The same filter name as the Lua reporter's; its type tells them apart.
          await until('the module in every inbound chain', () => inboundChains().every((c) => c.lua?.['@type'] === NATIVE_TYPE));
          timings.luaToNativeMs = Date.now() - started;
          for (const c of inboundChains()) {
            expect(c.filters.slice(-2), `${c.listener} ${c.chain}`).toEqual([LUA, ROUTER]);
            expect(c.filters.filter((f) => f === LUA)).toHaveLength(1);
            expect(c.lua).toEqual((reporter as Json).spec.configPatches.find((p: Json) => p.applyTo === 'HTTP_FILTER').patch.value.typed_config);
          }
          // The network filter just before the HTTP connection manager of each of those chains.
          const networkChains = configDump(steered).listeners.filter((l) => l.traffic_direction === 'INBOUND').flatMap((l) => [...(l.filter_chains ?? []), ...(l.default_filter_chain ? [l.default_filter_chain] : [])])
            .map((chain) => (chain.filters ?? []).map((f: Json) => f.name as string))
            .filter((names: string[]) => names.includes(HCM));
          expect(networkChains.length).toBeGreaterThan(0);
          for (const names of networkChains) expect(names.slice(names.indexOf(HCM) - 1, names.indexOf(HCM) + 1)).toEqual([DIRECT_REMOTE, HCM]);

          const from = rig.events.length;
          const [conn] = await rig.clients(rig.lab.cloud, [{ host: STEERED.ip, port: APP_PORT, protocol: 'h1', requests: requestsOf('minion', 3) }]);
          expect(conn!.responses.map((r) => r.status)).toEqual([200, 200, 200]);
          await rig.waitFor(() => rig.reportsSince(from).length >= 1, 'the report', 30_000);
          const reports = rig.reportsSince(from);
          // One report for the connection's three requests, through the batch intake.
          expect(reports).toHaveLength(1);
          expect(reports[0]!.path).toBe('/v1/sessions:batch');
          expect(reports[0]!.report).toMatchObject({ direction: 'inbound', protocol: 'tcp', local: `${STEERED.ip}:${APP_PORT}`, remote: conn!.local });
          await rig.waitFor(() => rig.answered(reports[0]!.id) !== undefined, 'the agent\'s answer', 30_000);
          expect(rig.answered(reports[0]!.id)!.agent).toMatchObject({ status: 'steered', policy: 'minion-to-lte', link: 'wan1' });
        });
      });
    });
  });
});
