// Holds the LuaJIT harness (harness.lua, which the fast unit tests in filter.test.ts run on) to a
// real Envoy: one table of cases runs through both, with the same rendered Lua, the same
// requests and the same connection addresses, and must send byte-identical reports; and a probe
// script finds Envoy and the harness refusing the same things with the same messages. The same
// table runs through Envoys rendered with the native reporter (the dynamic module,
// envoy-filters/native/): its reports, unwrapped from its batches, must be the Lua filter's.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sessionReporter } from '../../src/cli/render/envoy-filter.js';
import type { Placement } from '../../src/cli/render/lua-source.js';
import { LabEnvoy, meshBootstrap } from '../../src/lab/index.js';
import { describePrivileged } from '../helpers/privilege.js';
import type { Reporter } from '../../src/cli/render/envoy-filter.js';
import { requireEnvoy, requireEnvoyModule } from '../helpers/tools.js';
import { eventsOf, runFilter, type RequestScenario } from './driver.js';
import {
  CLIENT_SPIFFE, CLOUD_SERVICE, EnvoyRig, GATEWAY, INBOUND, OUTBOUND, STEER_LABELS, type ClientConnection, type ConnectionResult,
} from './envoy-lab.js';

const envoy = requireEnvoy();

interface Case {
  name: string;
  placement: Placement;
  connections: (ClientConnection & { from: 'edge' | 'cloud' })[];
  /** The Envoy route each request matches, as the harness must be told it. */
  route: (headers: [string, string][], path: string) => string;
}

const req = (user: string, path = '/x', extra: [string, string][] = []) => ({ authority: CLOUD_SERVICE, path, headers: [['end-user', user], ...extra] as [string, string][] });
const byUser = (headers: [string, string][]) => headers.find(([k]) => k.toLowerCase() === 'end-user')?.[1] ?? '';

const CASES: Case[] = [
  {
    name: 'inbound, HTTP/1.1 keep-alive, a class change and back',
    placement: 'sidecar-inbound',
    connections: [{ from: 'cloud', ...INBOUND.v4, protocol: 'h1', requests: [req('minion', '/1'), req('minion', '/2'), req('boss'), req('boss'), req('minion')] }],
    route: () => 'default',
  },
  {
    name: 'inbound, HTTP/2, a repeated header and one not allow-listed',
    placement: 'sidecar-inbound',
    connections: [{ from: 'cloud', ...INBOUND.v4, protocol: 'h2', requests: [req('minion', '/', [['end-user', 'boss'], ['cookie', 'a=1']]), req('minion', '/', [['end-user', 'boss']])] }],
    route: () => 'default',
  },
  {
    name: 'inbound, a header value JSON must escape (quote, backslash, tab)',
    placement: 'sidecar-inbound',
    connections: [{ from: 'cloud', ...INBOUND.v4, protocol: 'h1', requests: [req('mi"n\\i\ton'), req('mi"n\\i\ton')] }],
    route: () => 'default',
  },
  {
    name: 'inbound, IPv6',
    placement: 'sidecar-inbound',
    connections: [{ from: 'cloud', ...INBOUND.v6, protocol: 'h1', requests: [req('minion'), req('minion')] }],
    route: () => 'default',
  },
  {
    name: 'inbound, mTLS with a SPIFFE identity',
    placement: 'sidecar-inbound',
    connections: [{ from: 'cloud', ...INBOUND.tls, protocol: 'h1', tls: true, requests: [req('boss'), req('boss')] }],
    route: () => 'default',
  },
  {
    name: 'outbound, the matched route',
    placement: 'sidecar-outbound',
    connections: [{ from: 'edge', ...OUTBOUND.cloud, localAddress: INBOUND.v4.host, protocol: 'h1', requests: [req('minion'), req('boss'), req('boss')] }],
    route: (headers) => byUser(headers),
  },
  {
    name: 'gateway, where the rules read paths',
    placement: 'gateway',
    connections: [{ from: 'cloud', ...GATEWAY, protocol: 'h1', requests: [req('boss', '/a'), req('boss', '/a'), req('boss', '/b')] }],
    route: (headers) => byUser(headers),
  },
];

/** What the harness is told about one request: what Envoy's handle would show it. */
function scenarioRequests(c: Case, results: ConnectionResult[]): RequestScenario[] {
  return c.connections.flatMap((conn, i) =>
    conn.requests.map((r) => ({
      headers: [[':authority', r.authority], [':path', r.path], [':method', 'GET'], [':scheme', conn.tls ? 'https' : 'http'], ...(r.headers ?? [])] as [string, string][],
      // The listener's end is Envoy's local address, the client's socket its peer, at every placement.
      stream_info: {
        downstreamLocalAddress: results[i]!.remote,
        downstreamDirectRemoteAddress: results[i]!.local,
        protocol: conn.protocol === 'h2' ? 'HTTP/2' : 'HTTP/1.1',
        routeName: c.route(r.headers ?? [], r.path),
      },
      ...(conn.tls ? { peer_uri_sans: [CLIENT_SPIFFE] } : {}),
    })),
  );
}

/** The Lua source the harness runs for a placement: what the Lua reporter's render inlines. */
function luaSourceOf(docs: unknown[], placement: Placement): string {
  return (docs.find((d: any) => d.metadata.name === `wansteer-session-report-${placement}`) as any) // eslint-disable-line @typescript-eslint/no-explicit-any
    .spec.configPatches[0].patch.value.typed_config.default_source_code.inline_string as string;
}

/** Runs CASES through Envoys rendered with `reporter` and holds their reports to the harness's. */
function sameReports(reporter: Reporter, getRig: () => EnvoyRig): void {
  it.each(CASES)('$name: the same reports', async (c) => {
    const rig = getRig();
    const from = rig.events.length;
    const results = await rig.clients(c.connections[0]!.from === 'edge' ? rig.lab.edge : rig.lab.cloud, c.connections);
    expect(results.flatMap((r) => r.responses.map((x) => x.status))).toEqual(c.connections.flatMap((conn) => conn.requests.map(() => 200)));
    // The harness runs the Lua filter, whichever reporter Envoy runs.
    const source = luaSourceOf(reporter === 'lua' ? rig.rendered.get(c.placement)! : await rig.render(c.placement, [], 'lua'), c.placement);
    const harness = await runFilter({ source, clusters: ['wansteer-agent', 'wansteer-agent-v6'], requests: scenarioRequests(c, results) });
    const expected = eventsOf(harness, 'httpCall').map((call) => call.body);
    expect(expected.length).toBeGreaterThan(0);
    await rig.waitFor(() => rig.reportsSince(from).length >= expected.length, `${expected.length} reports from Envoy`);
    // Envoy sends calls on a pool of connections: compare as sets, after every report is in.
    await rig.waitFor(() => rig.reportsSince(from).every((r) => rig.answered(r.id)), 'the answers');
    expect(rig.reportsSince(from).map((r) => r.raw).sort()).toEqual([...expected].sort());
    // And each through the cluster of its family (the tap sees the family as the caller's).
    const v6Calls = eventsOf(harness, 'httpCall').filter((call) => call.cluster === 'wansteer-agent-v6').length;
    expect(rig.reportsSince(from).filter((r) => r.caller.includes(':')).length).toBe(v6Calls);
    // The native reporter batches: its reports reach the agent's batch intake.
    if (reporter === 'native') expect(new Set(rig.reportsSince(from).map((r) => r.path))).toEqual(new Set(['/v1/sessions:batch']));
  });
}

async function startRig(tag: string, reporter: Reporter): Promise<EnvoyRig> {
  const rig = await EnvoyRig.create(tag, { reporter });
  await rig.startEnvoy('sidecar-inbound', 15000);
  await rig.startEnvoy('sidecar-outbound', 15100);
  await rig.startEnvoy('gateway', 15200);
  return rig;
}

envoy.describe(`the harness against Envoy ${envoy.version}`, () => {
  describePrivileged('one table of cases, two runtimes', () => {
    let rig: EnvoyRig;

    beforeAll(async () => {
      rig = await startRig('contract', 'lua');
    }, 180_000);

    afterAll(async () => {
      await rig?.destroy();
    });

    sameReports('lua', () => rig);

    it('a probe finds Envoy and the harness refusing the same things, with the same messages', async () => {
      const probe = `
        function envoy_on_request(handle)
          local out = {}
          local function check(name, fn)
            local ok, err = pcall(fn)
            out[#out + 1] = name .. "=" .. tostring(ok) .. (ok and "" or " " .. tostring(err):gsub("^.-:%d+: ", ""))
          end
          local call = { [":method"] = "POST", [":path"] = "/", [":authority"] = "a" }
          check("userdata", function() assert(type(handle) == "userdata") end)
          check("unknown field", function() assert(handle.nothing == nil) end)
          check("set", function() handle:connectionStreamInfo():dynamicMetadata():set("wansteer", "k", "v") end)
          check("new field", function() handle.kept = true end)
          check("no timeout", function() handle:httpCall("wansteer-agent", call, "", nil, true) end)
          check("string timeout", function() handle:httpCall("wansteer-agent", call, "", "5", true) end)
          check("negative timeout", function() handle:httpCall("wansteer-agent", call, "", -1, true) end)
          check("bad async flag", function() handle:httpCall("wansteer-agent", call, "", 5, "yes") end)
          check("unknown cluster", function() handle:httpCall("nowhere", call, "", 5, true) end)
          check("no path", function() handle:httpCall("wansteer-agent", { [":method"] = "POST", [":authority"] = "a" }, "", 5, true) end)
          check("async returns nothing", function() assert(select("#", handle:httpCall("wansteer-agent", call, "", 5, true)) == 0) end)
          check("options table", function() assert(select("#", handle:httpCall("wansteer-agent", call, "", { asynchronous = true, timeout_ms = 5 })) == 0) end)
          check("missing header", function() assert(select("#", handle:headers():get("x-absent")) == 0) end)
          check("joined header", function() assert(handle:headers():get("x-two") == "a,b") end)
          check("route name", function() assert(handle:streamInfo():routeName() == "default") end)
          check("no tls", function() assert(handle:streamInfo():downstreamSslConnection() == nil) end)
          handle:respond({ [":status"] = "200" }, table.concat(out, "\\n"))
        end`;
      const docs = [...rig.rendered.get('sidecar-inbound')!.filter((d: any) => d.metadata.name === 'wansteer-agent-cluster'), sessionReporter('sidecar-inbound', { namespace: 'istio-system' }, probe)]; // eslint-disable-line @typescript-eslint/no-explicit-any
      const spec = rig.meshSpec('sidecar-inbound', 15300);
      const listener = { ...spec.listeners[0]!, name: 'probe', port: 16006 };
      const probeEnvoy = await LabEnvoy.start(rig.lab, rig.lab.edge, meshBootstrap(docs, { ...spec, workloadLabels: STEER_LABELS, listeners: [listener] }), { adminPort: 15300 });
      try {
        const [conn] = await rig.clients(rig.lab.cloud, [{ host: listener.address, port: listener.port, protocol: 'h1', requests: [{ authority: 'a', path: '/', headers: [['x-two', 'a'], ['x-two', 'b']] }] }]);
        const inEnvoy = conn!.responses[0]!.body.split('\n');
        const harness = await runFilter({
          source: probe,
          clusters: ['wansteer-agent'],
          requests: [{ headers: [[':authority', 'a'], [':path', '/'], [':method', 'GET'], ['x-two', 'a'], ['x-two', 'b']], stream_info: { routeName: 'default' } }],
        });
        const [responded] = eventsOf(harness, 'respond') as { body?: string }[];
        const inHarness = String(responded?.body ?? '').split('\n');
        expect(inHarness).toEqual(inEnvoy);
        expect(inEnvoy).toContain("set=false attempt to call method 'set' (a nil value)");
      } finally {
        probeEnvoy.stop();
      }
    });
  });
});

const native = requireEnvoyModule();

native.describe(`the native reporter against the harness, in Envoy ${native.version}`, () => {
  describePrivileged('one table of cases, the Lua harness and the dynamic module', () => {
    let rig: EnvoyRig;

    beforeAll(async () => {
      rig = await startRig('contract-native', 'native');
    }, 180_000);

    afterAll(async () => {
      await rig?.destroy();
    });

    sameReports('native', () => rig);
  });
});
