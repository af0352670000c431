// Proves `wansteer render envoyfilter`: the objects pass Istio's EnvoyFilter schema, the Lua goes
// in as default_source_code at the chosen context and runs standalone, every EnvoyFilter is
// scoped to the selected workloads, the agent clusters (one per family) and the mark-mode DSCP
// patches are what docs/envoy.md says, and bad input exits 2 with the reason. What the rendered
// objects do in a real Envoy: test/envoy/envoy.test.ts.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvoyFilter } from '@kubernetes-models/istio/networking.istio.io/v1alpha3/EnvoyFilter';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { runRender } from '../../src/cli/render.js';
import { nativeConfigText } from '../../src/cli/render/native-reporter.js';
import { fromRoot } from '../../src/config/paths.js';
import { eventsOf, LUAJIT, reportsOf, runFilter } from '../envoy/driver.js';
import { requireTool } from '../helpers/tools.js';

const RULES = fromRoot('examples/rules');
const POLICIES = fromRoot('examples/policies.yaml');
const JASON = 'jason-on-fibre=reviews.default.svc.cluster.local/v2';

type Doc = { apiVersion: string; kind: string; metadata: { name: string; namespace: string }; spec: any };

async function render(argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runRender(['envoyfilter', ...argv], { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  const docs = code === 0 ? parseAllDocuments(stdout).map((d) => d.toJS() as Doc).filter(Boolean) : [];
  return { code, stdout, stderr, docs };
}

function named(docs: Doc[], name: string): Doc {
  const doc = docs.find((d) => d.metadata.name === name);
  if (!doc) throw new Error(`no object ${name} in ${docs.map((d) => d.metadata.name).join(', ')}`);
  return doc;
}

describe('wansteer render envoyfilter', () => {
  it.each([
    ['sidecar-inbound', 'SIDECAR_INBOUND'],
    ['sidecar-outbound', 'SIDECAR_OUTBOUND'],
    ['gateway', 'GATEWAY'],
  ])('renders the Lua filter at %s, valid against Istio\'s EnvoyFilter schema', async (context, patchContext) => {
    const r = await render(['--rules', RULES, '--policies', POLICIES, '--mark-class', JASON, '--context', context]);
    expect(r.code).toBe(0);
    for (const doc of r.docs.filter((d) => d.kind === 'EnvoyFilter')) expect(() => new EnvoyFilter(doc as any).validate()).not.toThrow();
    const reporter = named(r.docs, `wansteer-session-report-${context}`);
    expect(reporter.metadata.namespace).toBe('istio-system');
    for (const doc of r.docs.filter((d) => d.kind === 'EnvoyFilter')) {
      expect(doc.spec.workloadSelector, doc.metadata.name).toEqual({ labels: { 'wansteer.io/steer': 'true' } });
    }
    const [patch] = reporter.spec.configPatches;
    expect(patch).toMatchObject({
      applyTo: 'HTTP_FILTER',
      match: { context: patchContext, listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } } } } },
      patch: { operation: 'INSERT_BEFORE', value: { name: 'wansteer.session_report', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua' } } },
    });
    const typed = patch.patch.value.typed_config;
    expect(Object.keys(typed).sort()).toEqual(['@type', 'default_source_code']);
    expect(typed.default_source_code.inline_string).toContain(`placement = "${context}"`);
    expect(typed.default_source_code.inline_string).not.toContain('require(');
    expect(typed.default_source_code.inline_string).toContain('cluster_v6 = "wansteer-agent-v6"');
    // The mesh's rules (cloud-service, reviews) match on headers only; the gateway's (bookinfo) on paths.
    expect(typed.default_source_code.inline_string).toContain(context === 'gateway' ? 'class_fields = { "path" }' : 'class_fields = {}');
    // what the gateway's Service needs (docs/overlay.md), said where the gateway is rendered
    expect(r.stdout.includes('# Gateway Service: on an edge of several nodes give it externalTrafficPolicy: Local')).toBe(context === 'gateway');
  });

  it.each([
    ['sidecar-inbound', 'SIDECAR_INBOUND', 'class_fields=\n'],
    ['sidecar-outbound', 'SIDECAR_OUTBOUND', 'class_fields=\n'],
    ['gateway', 'GATEWAY', 'class_fields=path\n'],
  ])('--reporter native renders the dynamic module filter at %s, at the same place as the Lua one', async (context, patchContext, classFields) => {
    const lua = await render(['--rules', RULES, '--context', context]);
    const r = await render(['--rules', RULES, '--context', context, '--reporter', 'native', '--agent-host', '10.0.0.1', '--agent-host', 'fd00::1']);
    const httpOnly = await render(['--rules', RULES, '--context', context, '--reporter', 'native', '--native-http-only']);
    expect(httpOnly.code).toBe(0);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('# Session reporter: the wansteer Envoy dynamic module (libwansteer.so must be in the proxy');
    expect(lua.stdout).not.toContain('# Session reporter:');
    for (const doc of r.docs.filter((d) => d.kind === 'EnvoyFilter')) expect(() => new EnvoyFilter(doc as any).validate()).not.toThrow();
    const reporter = named(r.docs, `wansteer-session-report-${context}`);
    const luaReporter = named(lua.docs, `wansteer-session-report-${context}`);
    expect(reporter.spec.workloadSelector).toEqual(luaReporter.spec.workloadSelector);
    // By default the module's network filter too, before the HTTP connection manager of the same
    // listeners: it keeps each connection's own remote address for the HTTP filter.
    expect(reporter.spec.configPatches).toHaveLength(2);
    const [network, patch] = reporter.spec.configPatches;
    expect(patch.match).toEqual(luaReporter.spec.configPatches[0].match);
    // --native-http-only: the HTTP filter alone, the same one.
    const httpOnlyPatches = named(httpOnly.docs, `wansteer-session-report-${context}`).spec.configPatches;
    expect(httpOnlyPatches).toEqual([patch]);
    expect(network).toEqual({
      applyTo: 'NETWORK_FILTER',
      match: { context: patchContext, listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager' } } } },
      patch: {
        operation: 'INSERT_BEFORE',
        value: {
          name: 'wansteer.direct_remote',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter',
            dynamic_module_config: { name: 'wansteer' },
            filter_name: 'direct_remote',
          },
        },
      },
    });
    expect(patch).toMatchObject({ applyTo: 'HTTP_FILTER', match: { context: patchContext }, patch: { operation: 'INSERT_BEFORE', value: { name: 'wansteer.session_report' } } });
    expect(patch.patch.value.typed_config).toEqual({
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter',
      dynamic_module_config: { name: 'wansteer' },
      filter_name: 'session_report',
      filter_config: {
        '@type': 'type.googleapis.com/google.protobuf.StringValue',
        value:
          `placement=${context}\ncluster=wansteer-agent\ncluster_v6=wansteer-agent-v6\nauthority=wansteer-agent\npath=/v1/sessions:batch\n` +
          `timeout_ms=200\nheaders=end-user\n${classFields}`,
      },
    });
    // the agent clusters are the Lua filter's
    expect(named(r.docs, 'wansteer-agent-cluster').spec.configPatches.length).toBe(4);
  });

  it('nativeConfigText: class_fields absent means all count, present and empty means none', () => {
    const base = { placement: 'gateway' as const, cluster: 'a', authority: 'a', path: '/v1/sessions:batch', timeout_ms: 5, headers: ['x-b', 'x-a'] };
    expect(nativeConfigText(base)).toBe('placement=gateway\ncluster=a\nauthority=a\npath=/v1/sessions:batch\ntimeout_ms=5\nheaders=x-b,x-a\n');
    expect(nativeConfigText({ ...base, class_fields: [], refresh_s: 30, remember_connections: 10 })).toContain('class_fields=\nremember_connections=10\nrefresh_s=30\n');
    expect(() => nativeConfigText({ ...base, authority: 'a\nplacement=gateway' })).toThrow('line break');
  });

  it.each([
    [['--selector', 'app=shop,tier=edge'], 'istio-system', { labels: { app: 'shop', tier: 'edge' } }],
    [['--namespace', 'edge', '--all-workloads'], 'edge', undefined],
    [['--namespace', 'edge'], 'edge', { labels: { 'wansteer.io/steer': 'true' } }],
  ])('scopes every EnvoyFilter with %j', async (argv, namespace, selector) => {
    const r = await render(['--rules', RULES, '--policies', POLICIES, '--mark-class', JASON, ...argv]);
    expect(r.code).toBe(0);
    const filters = r.docs.filter((d) => d.kind === 'EnvoyFilter');
    expect(filters).toHaveLength(3);
    for (const doc of filters) {
      expect(doc.metadata.namespace).toBe(namespace);
      expect(doc.spec.workloadSelector).toEqual(selector);
      expect(() => new EnvoyFilter(doc as any).validate()).not.toThrow();
    }
    const labels = selector ? Object.entries(selector.labels).map(([k, v]) => `${k}=${v}`).join(',') : '';
    expect(r.stdout).toContain(selector ? `# Placement: sidecar-inbound. Workloads: labelled ${labels}` : '# Placement: sidecar-inbound. Workloads: all');
  });

  requireTool('luajit', LUAJIT).it('ships Lua that runs on its own in LuaJIT and reports the headers the rules match on', async () => {
    const r = await render(['--rules', RULES]);
    const source = named(r.docs, 'wansteer-session-report-sidecar-inbound').spec.configPatches[0].patch.value.typed_config.default_source_code.inline_string;
    const events = await runFilter({
      source,
      clusters: ['wansteer-agent'],
      requests: [
        {
          headers: [[':authority', 'cloud-service.cloud.svc.cluster.local'], [':path', '/'], [':method', 'GET'], ['end-user', 'minion'], ['x-other', '1']],
          stream_info: { downstreamLocalAddress: '10.1.0.5:8080', downstreamDirectRemoteAddress: '203.0.113.7:41000' },
        },
      ],
    });
    expect(eventsOf(events, 'httpCall')).toMatchObject([{ cluster: 'wansteer-agent', timeout_ms: 200, asynchronous: true, headers: { ':path': '/v1/sessions' } }]);
    expect(reportsOf(events)).toEqual([
      { direction: 'inbound', protocol: 'tcp', local: '10.1.0.5:8080', remote: '203.0.113.7:41000', request: { authority: 'cloud-service.cloud.svc.cluster.local', path: '/', method: 'GET', headers: { 'end-user': 'minion' } } },
    ]);
  });

  it('reaches the agent through the node-local, dual-stack Service by default, one cluster per family', async () => {
    const r = await render(['--rules', RULES, '--agent-port', '9191']);
    expect(named(r.docs, 'wansteer-agent')).toMatchObject({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { namespace: 'wansteer-system' },
      spec: {
        internalTrafficPolicy: 'Local',
        ipFamilyPolicy: 'PreferDualStack',
        selector: { 'app.kubernetes.io/name': 'wansteer-agent' },
        ports: [{ port: 9191, targetPort: 9191 }],
      },
    });
    const cluster = named(r.docs, 'wansteer-agent-cluster');
    expect(cluster.spec.configPatches.map((p: any) => [p.applyTo, p.match.context, p.patch.operation, p.patch.value.name, p.patch.value.dns_lookup_family])).toEqual([
      ['CLUSTER', 'SIDECAR_OUTBOUND', 'ADD', 'wansteer-agent', 'V4_ONLY'],
      ['CLUSTER', 'GATEWAY', 'ADD', 'wansteer-agent', 'V4_ONLY'],
      ['CLUSTER', 'SIDECAR_OUTBOUND', 'ADD', 'wansteer-agent-v6', 'V6_ONLY'],
      ['CLUSTER', 'GATEWAY', 'ADD', 'wansteer-agent-v6', 'V6_ONLY'],
    ]);
    for (const patch of cluster.spec.configPatches) {
      expect(patch.patch.value).toMatchObject({
        type: 'STRICT_DNS',
        load_assignment: { endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'wansteer-agent.wansteer-system.svc.cluster.local', port_value: 9191 } } } }] }] },
      });
    }
    expect(r.stdout).not.toMatch(/&a\d|\*a\d/); // no YAML anchors: kubectl users read these files
  });

  it.each([
    [['10.0.0.1'], [['wansteer-agent', '10.0.0.1']], 'wansteer-agent'],
    [['[fd00::1]'], [['wansteer-agent', 'fd00::1']], 'wansteer-agent'],
    [['fd00:0::1', '10.0.0.1'], [['wansteer-agent', '10.0.0.1'], ['wansteer-agent-v6', 'fd00::1']], 'wansteer-agent-v6'],
  ])('uses STATIC clusters and no Service for --agent-host %j', async (hosts, clusters, v6Cluster) => {
    const r = await render(['--rules', RULES, ...hosts.flatMap((h) => ['--agent-host', h])]);
    expect(r.docs.map((d) => d.kind)).toEqual(['EnvoyFilter', 'EnvoyFilter']);
    const patches = named(r.docs, 'wansteer-agent-cluster').spec.configPatches.filter((p: any) => p.match.context === 'SIDECAR_OUTBOUND');
    expect(patches.map((p: any) => [p.patch.value.name, p.patch.value.type, p.patch.value.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address])).toEqual(
      clusters.map(([name, address]) => [name, 'STATIC', address]),
    );
    const source = named(r.docs, 'wansteer-session-report-sidecar-inbound').spec.configPatches[0].patch.value.typed_config.default_source_code.inline_string;
    expect(source).toContain(`cluster = "wansteer-agent", cluster_v6 = "${v6Cluster}"`);
  });

  it('gives each mark class\'s upstream cluster its DSCP, IP_TOS on IPv4 sockets and IPV6_TCLASS on IPv6 ones, for sidecars and gateways', async () => {
    const r = await render(['--rules', RULES, '--policies', POLICIES, '--mark-class', JASON, '--mark-class', 'jason-on-fibre=ratings.default.svc.cluster.local:9080/v3']);
    expect(r.stderr).toBe('');
    const marks = named(r.docs, 'wansteer-mark-classes');
    expect(marks.spec.configPatches.map((p: any) => [p.match.context, p.match.cluster])).toEqual([
      ['SIDECAR_OUTBOUND', { service: 'reviews.default.svc.cluster.local', subset: 'v2' }],
      ['GATEWAY', { service: 'reviews.default.svc.cluster.local', subset: 'v2' }],
      ['SIDECAR_OUTBOUND', { service: 'ratings.default.svc.cluster.local', subset: 'v3', portNumber: 9080 }],
      ['GATEWAY', { service: 'ratings.default.svc.cluster.local', subset: 'v3', portNumber: 9080 }],
    ]);
    const noPort = { description: 'bind without reserving a port', level: 0, name: 24, int_value: 1, state: 'STATE_PREBIND' };
    expect(marks.spec.configPatches[0].patch).toEqual({
      operation: 'MERGE',
      value: {
        upstream_bind_config: {
          source_address: { address: '0.0.0.0', port_value: 0 },
          socket_options: [{ description: 'wansteer mark class jason-on-fibre (DSCP 10): IP_TOS', level: 0, name: 1, int_value: 40, state: 'STATE_PREBIND' }, noPort],
          // Envoy uses this address's options, not the ones above, for IPv6 upstreams.
          extra_source_addresses: [
            {
              address: { address: '::', port_value: 0 },
              socket_options: { socket_options: [{ description: 'wansteer mark class jason-on-fibre (DSCP 10): IPV6_TCLASS', level: 41, name: 67, int_value: 40, state: 'STATE_PREBIND' }, noPort] },
            },
          ],
        },
      },
    });
  });

  it('renders no mark-class patches without --mark-class', async () => {
    const r = await render(['--rules', RULES, '--policies', POLICIES]);
    expect(r.docs.map((d) => d.metadata.name)).toEqual(['wansteer-agent', 'wansteer-agent-cluster', 'wansteer-session-report-sidecar-inbound']);
  });

  it('warns when a mark class is a subset no route sends traffic to', async () => {
    const r = await render(['--rules', RULES, '--policies', POLICIES, '--mark-class', 'jason-on-fibre=reviews.default.svc.cluster.local/v9']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('warning: mark class jason-on-fibre: no VirtualService route sends traffic to reviews.default.svc.cluster.local subset v9');
  });

  describe('with rules of its own', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'wansteer-render-'));
      await writeFile(
        join(dir, 'vs.yaml'),
        `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api, namespace: edge }
spec:
  hosts: [api]
  http:
  - match:
    - headers: { X-Plan: { exact: pro } }
      withoutHeaders: { x-debug: {} }
    - headers: { x-region: { prefix: eu } }
    route: [{ destination: { host: api, subset: pro } }]
  - route: [{ destination: { host: api } }]
`,
      );
      await writeFile(
        join(dir, 'policies.yaml'),
        `apiVersion: wansteer.io/v1alpha1
kind: WanPolicyList
items:
  - name: pro-fibre
    spec: { match: { route: { virtualService: edge/other } }, action: { links: [wan0], mode: redirect } }
`,
      );
    });
    afterAll(() => rm(dir, { recursive: true, force: true }));

    it('reports every header a rule matches on, headers and withoutHeaders alike, lower-cased', async () => {
      const r = await render(['--rules', dir]);
      expect(r.stdout).toContain('# Reported request headers: x-debug, x-plan, x-region.');
      expect(named(r.docs, 'wansteer-session-report-sidecar-inbound').spec.configPatches[0].patch.value.typed_config.default_source_code.inline_string).toContain(
        'headers = { "x-debug", "x-plan", "x-region" }',
      );
    });

    it('warns about a policy whose VirtualService is not among the rules', async () => {
      const r = await render(['--rules', dir, '--policies', join(dir, 'policies.yaml')]);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain('warning: policy pro-fibre: VirtualService edge/other is not in');
    });

    it('writes to --out', async () => {
      const out = join(dir, 'out.yaml');
      const r = await render(['--rules', dir, '--out', out]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe('');
      expect(await readFile(out, 'utf8')).toContain('kind: EnvoyFilter');
    });
  });

  it.each([
    [[], '--rules DIR is required'],
    [['--rules', RULES, '--context', 'sidecar'], '--context must be one of sidecar-inbound, sidecar-outbound, gateway'],
    [['--rules', RULES, '--agent-port', '0'], '--agent-port must be 1-65535'],
    [['--rules', RULES, '--timeout-ms', 'soon'], '--timeout-ms must be 1-10000'],
    [['--rules', RULES, '--namespace', 'Istio_System'], 'is not a namespace name'],
    [['--rules', RULES, '--agent-host', 'http://agent'], 'is not a host name or IP address'],
    [['--rules', RULES, '--agent-host', '10.0.0.1', '--agent-host', '10.0.0.2'], 'one address of each family at most'],
    [['--rules', RULES, '--agent-host', 'agent.example', '--agent-host', '10.0.0.2'], 'one DNS name (reached over both families), or IP addresses'],
    [['--rules', RULES, '--agent-host', '10.0.0.256'], 'is not a host name or IP address'],
    [['--rules', RULES, '--selector', 'app'], '--selector wants KEY=VALUE'],
    [['--rules', RULES, '--selector', 'app=a b'], '--selector wants KEY=VALUE'],
    [['--rules', RULES, '--selector', 'app=x', '--all-workloads'], '--selector and --all-workloads exclude each other'],
    [['--rules', RULES, '--mark-class', JASON], '--mark-class needs --policies FILE'],
    [['--rules', RULES, '--mark-class', 'jason'], '--mark-class wants POLICY=HOST[:PORT]/SUBSET'],
    [['--rules', RULES, '--policies', POLICIES, '--mark-class', 'jason-on-fibre=reviews/v2'], "give the service's full name"],
    [['--rules', RULES, '--policies', POLICIES, '--mark-class', 'nobody=reviews.default.svc.cluster.local/v2'], 'no such policy'],
    [['--rules', RULES, '--policies', POLICIES, '--mark-class', 'minion-to-lte=reviews.default.svc.cluster.local/v2'], 'mark mode needs match: { dscp: N }'],
    [['--rules', RULES, '--policies', POLICIES, '--mark-class', JASON, '--mark-class', JASON], 'already carries class jason-on-fibre'],
    [['--rules', RULES, '--policies', '/nonexistent/policies.yaml'], 'cannot read --policies'],
    [['--rules', RULES, '--policies', RULES + '/reviews.yaml'], 'policy file'],
    [['--rules', '/nonexistent/rules'], 'cannot read'],
    [['--rules', RULES, '--colour'], "Unknown option '--colour'"],
    [['--rules', RULES, '--reporter', 'wasm'], '--reporter must be one of lua, native, got "wasm"'],
    [['--rules', RULES, '--native-http-only'], '--native-http-only needs --reporter native'],
  ])('exits 2 with the reason on bad input %j', async (argv, reason) => {
    const r = await render(argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(reason);
  });

  it('knows only envoyfilter, and prints help', async () => {
    let stderr = '';
    expect(await runRender(['sidecar', '--rules', RULES], { stdout: () => {}, stderr: (t) => (stderr += t) })).toBe(2);
    expect(stderr).toContain('the one thing to render is envoyfilter');
    let stdout = '';
    expect(await runRender(['--help'], { stdout: (t) => (stdout += t), stderr: () => {} })).toBe(0);
    expect(stdout).toContain('Usage: wansteer render envoyfilter');
  });
});
