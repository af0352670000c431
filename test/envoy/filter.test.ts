// Proves the real Envoy Lua filter (envoy-filters/) in LuaJIT under a harness that provides
// Envoy's stream handle API (held to a real Envoy by test/envoy/contract.test.ts): the exact
// report it sends per placement and address family, that it sends nothing and breaks nothing when
// fields are missing or Envoy calls fail, that it never blocks or alters the request, and that it
// reports a connection once per class, in a bounded table.
import { expect, it } from 'vitest';
import { filterSource, readFilterFiles, type FilterConfig, type Placement } from '../../src/cli/render/lua-source.js';
import { requireTool } from '../helpers/tools.js';
import { eventsOf, LUAJIT, reportsOf, runFilter, type HarnessEvent, type RequestScenario } from './driver.js';

function config(placement: Placement, headers = ['end-user', 'x-tier'], more: Partial<FilterConfig> = {}): FilterConfig {
  return { placement, cluster: 'wansteer-agent', authority: 'wansteer-agent', path: '/v1/sessions', timeout_ms: 200, headers, ...more };
}

/** The same request on another connection: another client port. */
function onPort(port: number, overrides: Parameters<typeof request>[0] = {}): RequestScenario {
  return request({ stream_info: { downstreamLocalAddress: '10.1.0.5:8080', downstreamDirectRemoteAddress: `203.0.113.7:${port}` }, ...overrides });
}

function request(overrides: Partial<RequestScenario> & { extra?: [string, string][] } = {}): RequestScenario {
  const { extra = [], ...rest } = overrides;
  return {
    headers: [
      [':authority', 'cloud-service.cloud.svc.cluster.local'],
      [':path', '/api/v1/orders?id=7'],
      [':method', 'GET'],
      [':scheme', 'http'],
      ['end-user', 'minion'],
      ['user-agent', 'curl/8.5'],
      ...extra,
    ],
    stream_info: { downstreamLocalAddress: '10.1.0.5:8080', downstreamDirectRemoteAddress: '203.0.113.7:41000' },
    ...rest,
  };
}

/** The request was never failed, blocked or changed, and the script kept Envoy's rules. */
function expectUntouched(events: HarnessEvent[]): void {
  expect(eventsOf(events, 'script-error')).toEqual([]);
  expect(eventsOf(events, 'header-mutation')).toEqual([]);
  expect(eventsOf(events, 'respond')).toEqual([]);
  expect(eventsOf(events, 'body')).toEqual([]);
  expect(eventsOf(events, 'stale-handle')).toEqual([]);
  for (const end of eventsOf(events, 'request-end')) {
    expect(end.suspended).toEqual([]);
    expect(end.headers_after).toEqual(end.headers_before);
  }
  expect(eventsOf(events, 'globals')).toEqual([{ event: 'globals', added: ['envoy_on_request'] }]);
}

requireTool('luajit', LUAJIT).describe('wansteer Lua filter in LuaJIT', () => {
  it('sends the exact IPv4 inbound report, fire and forget, to the agent cluster', async () => {
    const events = await runFilter({ config: config('sidecar-inbound'), requests: [request()] });
    const calls = eventsOf(events, 'httpCall');
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({
      cluster: 'wansteer-agent',
      headers: { ':method': 'POST', ':path': '/v1/sessions', ':authority': 'wansteer-agent', 'content-type': 'application/json' },
      timeout_ms: 200,
      asynchronous: true,
    });
    expect(calls[0]!.body).toBe(
      '{"direction":"inbound","protocol":"tcp","local":"10.1.0.5:8080","remote":"203.0.113.7:41000",' +
        '"request":{"authority":"cloud-service.cloud.svc.cluster.local","path":"/api/v1/orders?id=7","method":"GET","scheme":"http","headers":{"end-user":"minion"}}}',
    );
    expectUntouched(events);
  });

  it('reports IPv6 sessions in the [addr]:port form over the IPv6 cluster, and IPv4-mapped ones as IPv4', async () => {
    const events = await runFilter({
      config: config('sidecar-inbound', ['end-user'], { cluster_v6: 'wansteer-agent-v6' }),
      requests: [
        request({ stream_info: { downstreamLocalAddress: '[fd00:10::5]:8080', downstreamDirectRemoteAddress: '[2001:db8::7]:41000' } }),
        request({ stream_info: { downstreamLocalAddress: '[::FFFF:10.1.0.5]:8080', downstreamDirectRemoteAddress: '[::ffff:203.0.113.7]:41000' } }),
      ],
    });
    expect(reportsOf(events)).toMatchObject([
      { direction: 'inbound', local: '[fd00:10::5]:8080', remote: '[2001:db8::7]:41000' },
      { direction: 'inbound', local: '10.1.0.5:8080', remote: '203.0.113.7:41000' },
    ]);
    expect(eventsOf(events, 'httpCall').map((c) => c.cluster)).toEqual(['wansteer-agent-v6', 'wansteer-agent']);
    expectUntouched(events);
  });

  it('reports outbound sessions as the app socket to the address it dialled, with the route Envoy matched', async () => {
    const events = await runFilter({
      config: config('sidecar-outbound'),
      requests: [
        request({
          stream_info: { downstreamLocalAddress: '198.51.100.20:443', downstreamDirectRemoteAddress: '10.1.0.5:53122', routeName: 'minion' },
          peer_uri_sans: ['spiffe://cluster.local/ns/edge/sa/app'],
        }),
      ],
    });
    // No sourceNamespace: an outbound listener's downstream peer is the app itself.
    expect(reportsOf(events)).toEqual([
      {
        direction: 'outbound',
        protocol: 'tcp',
        local: '10.1.0.5:53122',
        remote: '198.51.100.20:443',
        request: { authority: 'cloud-service.cloud.svc.cluster.local', path: '/api/v1/orders?id=7', method: 'GET', scheme: 'http', headers: { 'end-user': 'minion' }, routeName: 'minion' },
      },
    ]);
    expectUntouched(events);
  });

  it('leaves the route out inbound (Istio\'s per-port routes name no rule) and where Envoy matched none', async () => {
    const events = await runFilter({
      config: config('sidecar-inbound'),
      requests: [request({ stream_info: { downstreamLocalAddress: '10.1.0.5:8080', downstreamDirectRemoteAddress: '203.0.113.7:41000', routeName: 'default' } })],
    });
    expect(reportsOf(events)[0]).not.toHaveProperty('request.routeName');
    const gateway = await runFilter({ config: config('gateway'), requests: [request()] });
    expect(reportsOf(gateway)[0]).not.toHaveProperty('request.routeName');
  });

  it('reports a gateway session as inbound, against the directly connected peer, with the mTLS peer namespace', async () => {
    const events = await runFilter({
      config: config('gateway'),
      requests: [
        request({
          stream_info: { downstreamLocalAddress: '10.1.0.9:8443', downstreamDirectRemoteAddress: '198.51.100.4:50000', downstreamRemoteAddress: '192.0.2.1:0', routeName: 'boss' },
          peer_uri_sans: ['https://example.com/not-spiffe', 'spiffe://cluster.local/ns/shop/sa/frontend'],
        }),
      ],
    });
    expect(reportsOf(events)).toMatchObject([
      { direction: 'inbound', local: '10.1.0.9:8443', remote: '198.51.100.4:50000', request: { sourceNamespace: 'shop', routeName: 'boss' } },
    ]);
    expectUntouched(events);
  });

  it('joins a header with several values with "," and reports only allow-listed headers', async () => {
    const events = await runFilter({
      config: config('sidecar-inbound'),
      requests: [request({ extra: [['End-User', 'boss'], ['X-Tier', 'gold'], ['x-tier', 'silver'], ['cookie', 'secret=1']] })],
    });
    expect(reportsOf(events)).toMatchObject([{ request: { headers: { 'end-user': 'minion,boss', 'x-tier': 'gold,silver' } } }]);
    expect(eventsOf(events, 'httpCall')[0]!.body).not.toContain('secret');
    expectUntouched(events);
  });

  it('leaves out headers, scheme and namespace it does not have, and says udp for HTTP/3', async () => {
    const events = await runFilter({
      config: config('sidecar-inbound', []),
      requests: [
        {
          headers: [[':authority', 'a'], [':path', '/'], [':method', 'POST']],
          stream_info: { downstreamLocalAddress: '10.1.0.5:443', downstreamDirectRemoteAddress: '203.0.113.7:41000', protocol: 'HTTP/3' },
        },
      ],
    });
    expect(reportsOf(events)).toEqual([
      { direction: 'inbound', protocol: 'udp', local: '10.1.0.5:443', remote: '203.0.113.7:41000', request: { authority: 'a', path: '/', method: 'POST' } },
    ]);
  });

  it('escapes quotes, backslashes and control characters so the body is valid JSON', async () => {
    const nasty = 'a"b\\c\td\u0001e\u007f';
    const events = await runFilter({ config: config('sidecar-inbound'), requests: [request({ extra: [['x-tier', nasty]] })] });
    expect(reportsOf(events)).toMatchObject([{ request: { headers: { 'x-tier': nasty } } }]);
  });

  it.each<[string, RequestScenario]>([
    ['no :authority', request({ headers: [[':path', '/'], [':method', 'GET'], ['end-user', 'boss']] })],
    ['no :path (CONNECT)', request({ headers: [[':authority', 'a:443'], [':method', 'CONNECT']] })],
    ['no headers at all', request({ headers: [] })],
    ['no local address', request({ stream_info: { downstreamDirectRemoteAddress: '203.0.113.7:41000' } })],
    ['no remote address', request({ stream_info: { downstreamLocalAddress: '10.1.0.5:8080' } })],
    ['no stream info fields', request({ stream_info: {} })],
    ['a unix socket peer', request({ stream_info: { downstreamLocalAddress: '/var/run/app.sock', downstreamDirectRemoteAddress: 'unix:' } })],
    ['an internal listener', request({ stream_info: { downstreamLocalAddress: 'envoy://internal_client_address/', downstreamDirectRemoteAddress: 'envoy://x/' } })],
    ['families that differ', request({ stream_info: { downstreamLocalAddress: '[fd00::5]:8080', downstreamDirectRemoteAddress: '203.0.113.7:41000' } })],
    ['port 0', request({ stream_info: { downstreamLocalAddress: '10.1.0.5:0', downstreamDirectRemoteAddress: '203.0.113.7:41000' } })],
    ['an octet over 255', request({ stream_info: { downstreamLocalAddress: '10.1.0.256:80', downstreamDirectRemoteAddress: '203.0.113.7:41000' } })],
    ['a scoped link-local address', request({ stream_info: { downstreamLocalAddress: '[fe80::1%eth0]:80', downstreamDirectRemoteAddress: '[fe80::2%eth0]:9' } })],
    ['streamInfo() raising', request({ raise: { streamInfo: 'boom' } })],
    ['headers() raising', request({ raise: { headers: 'boom' } })],
    ['headers:get() raising', request({ raise: { get: 'boom' } })],
  ])('sends nothing and breaks nothing with %s', async (_name, req) => {
    const events = await runFilter({ config: config('sidecar-inbound'), requests: [req] });
    expect(eventsOf(events, 'httpCall')).toEqual([]);
    expect(eventsOf(events, 'log').map((l) => l.level)).toEqual(['logDebug']);
    expectUntouched(events);
  });

  it('keeps the request going when the report cannot be sent (no such cluster, httpCall failing)', async () => {
    const events = await runFilter({
      config: config('sidecar-inbound'),
      clusters: ['some-other-cluster'],
      requests: [request(), request({ raise: { httpCall: 'upstream connect error' } })],
    });
    expect(eventsOf(events, 'httpCall')).toEqual([]);
    expect(eventsOf(events, 'log').map((l) => [l.level, l.message])).toEqual([
      ['logWarn', expect.stringMatching(/^wansteer: session report not sent: .*cluster invalid/)],
      ['logWarn', expect.stringContaining('upstream connect error')],
    ]);
    expectUntouched(events);
  });

  it('reports a connection once per class: again when its attributes change, and after refresh_s', async () => {
    const events = await runFilter({
      config: config('sidecar-inbound'),
      requests: [
        request(), // 1: reported
        request(), // 2: same connection, same class
        onPort(41001), // 3: another connection
        request({ extra: [['x-tier', 'gold']] }), // 4: the class changed on connection 1
        request({ extra: [['x-tier', 'gold']] }), // 5
        request(), // 6: and changed back
        request({ at: 59 }), // 7: reported 59 s ago
        request({ at: 60 }), // 8: 60 s ago: once more, in case the agent missed it or aged the flow out
        request({ at: 61 }), // 9
      ],
    });
    expect(eventsOf(events, 'httpCall').map((c) => c.request)).toEqual([1, 3, 4, 6, 8]);
    expectUntouched(events);
  });

  it('counts only what the rules read as the class: a new path is a new class only when a rule matches on paths', async () => {
    const paths = ['/a', '/b?x=1', '/c'].map((path) => request({ headers: [[':authority', 'svc'], [':path', path], [':method', 'GET'], ['end-user', 'minion']] }));
    const headersOnly = await runFilter({ config: config('sidecar-inbound', ['end-user'], { class_fields: [] }), requests: paths });
    expect(eventsOf(headersOnly, 'httpCall').map((c) => c.request)).toEqual([1]);
    // The one report carries the request's own path: the agent classifies what was asked.
    expect(reportsOf(headersOnly)).toMatchObject([{ request: { path: '/a' } }]);
    const byPath = await runFilter({ config: config('sidecar-inbound', ['end-user'], { class_fields: ['path'] }), requests: paths });
    expect(eventsOf(byPath, 'httpCall').map((c) => c.request)).toEqual([1, 2, 3]);
    const methods = await runFilter({
      config: config('sidecar-inbound', ['end-user'], { class_fields: ['method'] }),
      requests: [request(), request({ headers: [[':authority', 'cloud-service.cloud.svc.cluster.local'], [':path', '/'], [':method', 'POST'], ['end-user', 'minion']] })],
    });
    expect(eventsOf(methods, 'httpCall').map((c) => c.request)).toEqual([1, 2]);
  });

  it('remembers a bounded number of connections per worker, keeping those in use', async () => {
    // Two generations of 2 entries. A, used between newer connections, stays known throughout;
    // B, not used again, is pushed out by C, D and E, and is reported once more when it comes back.
    const [a, b, c, d, e] = [41001, 41002, 41003, 41004, 41005].map((port) => onPort(port));
    const events = await runFilter({ config: config('sidecar-inbound', ['end-user'], { remember_connections: 2 }), requests: [a!, b!, c!, a!, d!, a!, e!, a!, b!] });
    expect(eventsOf(events, 'httpCall').map((call) => call.request)).toEqual([1, 2, 3, 5, 7, 9]);
    expectUntouched(events);
  });

  it('answers a known connection of the same class from its table, without reading the certificate or what no rule reads', async () => {
    const tls = { peer_uri_sans: ['spiffe://cluster.local/ns/shop/sa/frontend'] };
    const other = request({ ...tls, headers: [[':authority', 'cloud-service.cloud.svc.cluster.local'], [':path', '/other'], [':method', 'POST'], ['end-user', 'minion']] });
    const events = await runFilter({
      config: config('gateway', ['end-user'], { class_fields: [] }),
      requests: [
        request(tls), // 1: reported, with the peer's namespace
        // 2: known: had the filter read the certificate again, it would fail, miss the namespace and report
        request({ ...tls, raise: { downstreamSslConnection: 'boom', uriSanPeerCertificate: 'boom', ssl: 'boom' } }),
        other, // 3: known: another path and method, which no rule reads
        // 4: a call of the quick path failing: the full path decides, the same way (known, nothing to send)
        request({ ...tls, raise: { routeName: 'boom' } }),
        request({ ...tls, extra: [['end-user', 'jason']] }), // 5: the class changed
      ],
    });
    expect(eventsOf(events, 'httpCall').map((c) => c.request)).toEqual([1, 5]);
    expect(reportsOf(events)[0]).toMatchObject({ request: { path: '/api/v1/orders?id=7', sourceNamespace: 'shop' } });
    expect(eventsOf(events, 'log')).toEqual([]);
    expectUntouched(events);
  });

  it('at a gateway, an HTTP/3 (UDP) and a TCP connection on the same addresses are two sessions, each reported once', async () => {
    const addresses = { downstreamLocalAddress: '10.1.0.5:443', downstreamDirectRemoteAddress: '203.0.113.7:41000' };
    const tcp = request({ stream_info: { ...addresses, protocol: 'HTTP/2' } });
    const quic = request({ stream_info: { ...addresses, protocol: 'HTTP/3' } });
    const events = await runFilter({ config: config('gateway', ['end-user'], { class_fields: [] }), requests: [tcp, quic, quic, tcp] });
    expect(eventsOf(events, 'httpCall').map((c) => c.request)).toEqual([1, 2]);
    expect(reportsOf(events).map((r) => (r as { protocol: string }).protocol)).toEqual(['tcp', 'udp']);
  });

  it('asks for the protocol on a known connection only where it can be HTTP/3 (a gateway), not at a sidecar', async () => {
    const calledOnSecond = async (placement: Placement) => {
      const events = await runFilter({ config: config(placement, ['end-user'], { class_fields: [] }), requests: [request(), request({ trace: true })] });
      expect(eventsOf(events, 'httpCall').map((c) => c.request)).toEqual([1]);
      return eventsOf(events, 'call').map((c) => c.method);
    };
    const sidecar = await calledOnSecond('sidecar-inbound');
    expect(sidecar).toEqual(expect.arrayContaining(['streamInfo', 'downstreamLocalAddress', 'headers']));
    expect(sidecar).not.toContain('protocol');
    expect(await calledOnSecond('gateway')).toContain('protocol');
  });

  it('does not remember a report that could not be sent', async () => {
    const events = await runFilter({ config: config('sidecar-inbound'), requests: [request({ raise: { httpCall: 'overflow' } }), request()] });
    expect(eventsOf(events, 'httpCall').map((c) => c.request)).toEqual([2]);
  });

  it('loads with a broken configuration and says why on each request instead of failing Envoy', async () => {
    const events = await runFilter({ config: { ...config('sidecar-inbound'), placement: 'sidecar' as Placement }, requests: [request()] });
    expect(events[0]).toEqual({ event: 'loaded' });
    expect(eventsOf(events, 'httpCall')).toEqual([]);
    expect(eventsOf(events, 'log')).toMatchObject([{ level: 'logWarn', message: 'wansteer: session reports disabled: unknown placement sidecar' }]);
    expectUntouched(events);
  });

  it('runs as the rendered default_source_code with nothing to require, sending the same report', async () => {
    const cfg = config('sidecar-inbound');
    const source = filterSource(await readFilterFiles(), cfg);
    const [fromFiles, rendered] = await Promise.all([
      runFilter({ config: cfg, requests: [request()] }),
      runFilter({ source, clusters: ['wansteer-agent'], requests: [request()] }),
    ]);
    expect(rendered[0]).toEqual({ event: 'loaded' });
    expect(eventsOf(rendered, 'httpCall')).toEqual(eventsOf(fromFiles, 'httpCall'));
    expectUntouched(rendered);
  });

  it('refuses what Envoy refuses: a connection metadata set, new fields on a handle, `.` calls, a missing timeout', async () => {
    const probe = `
      function envoy_on_request(handle)
        local out = {}
        local function check(name, fn)
          local ok, err = pcall(fn)
          out[#out + 1] = name .. "=" .. tostring(ok) .. (ok and "" or " " .. tostring(err):gsub("^.-:%d+: ", ""))
        end
        local call = { [":method"] = "POST", [":path"] = "/", [":authority"] = "a" }
        check("userdata", function() assert(type(handle) == "userdata") end)
        check("set", function() handle:connectionStreamInfo():dynamicMetadata():set("wansteer", "k", "v") end)
        check("new field", function() handle.kept = true end)
        check("dot call", function() handle.headers() end)
        check("no timeout", function() handle:httpCall("wansteer-agent", call, "", nil, true) end)
        check("async returns nothing", function() assert(select("#", handle:httpCall("wansteer-agent", call, "", 5, true)) == 0) end)
        check("missing header is no value", function() assert(select("#", handle:headers():get("x-absent")) == 0) end)
        handle:logInfo(table.concat(out, "; "))
      end`;
    const events = await runFilter({ source: probe, clusters: ['wansteer-agent'], requests: [request()] });
    expect(eventsOf(events, 'log')[0]!.message.split('; ')).toEqual([
      'userdata=true',
      "set=false attempt to call method 'set' (a nil value)",
      "new field=false attempt to index upvalue 'handle' (a userdata value)",
      expect.stringMatching(/^dot call=false bad argument #1 to 'headers' \(userdata expected, got (no value|nil)\)/),
      "no timeout=false bad argument #4 to 'httpCall' (number expected, got nil)",
      'async returns nothing=true',
      'missing header is no value=true',
    ]);
  });

  it('catches a script that breaks the rules the filter is held to (the harness is not toothless)', async () => {
    const bad = `
      kept = nil
      function envoy_on_request(handle)
        if kept then kept:headers() end
        kept = handle
        handle:headers():add("x-added", "1")
        handle:httpCall("wansteer-agent", { [":method"] = "POST", [":path"] = "/", [":authority"] = "a" }, "", 100)
      end`;
    const events = await runFilter({ source: bad, clusters: ['wansteer-agent'], requests: [request(), request()] });
    expect(eventsOf(events, 'header-mutation')).toHaveLength(1);
    expect(eventsOf(events, 'httpCall')[0]).toMatchObject({ asynchronous: false });
    expect(eventsOf(events, 'request-end')[0]!.suspended).toEqual(['httpCall']);
    expect(eventsOf(events, 'stale-handle')).toEqual([{ event: 'stale-handle', request: 1, method: 'headers' }]);
    expect(eventsOf(events, 'script-error')).toHaveLength(1);
    expect(eventsOf(events, 'globals')[0]!.added).toEqual(['envoy_on_request', 'kept']);
  });
});
