// Proves the real Envoy Lua filter (envoy-filters/) in LuaJIT under a harness that provides
// Envoy's stream handle API: the exact report it sends per placement and address family, that it
// sends nothing and breaks nothing when fields are missing or Envoy calls fail, that it never
// blocks or alters the request, and that it reports a connection once.
import { expect, it } from 'vitest';
import { filterSource, readFilterFiles, type FilterConfig, type Placement } from '../../src/cli/render/lua-source.js';
import { requireTool } from '../helpers/tools.js';
import { eventsOf, LUAJIT, reportsOf, runFilter, type HarnessEvent, type RequestScenario } from './driver.js';

function config(placement: Placement, headers = ['end-user', 'x-tier']): FilterConfig {
  return { placement, cluster: 'wansteer-agent', authority: 'wansteer-agent', path: '/v1/sessions', timeout_ms: 200, headers };
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

  it('reports IPv6 sessions in the [addr]:port form and IPv4-mapped ones as IPv4', async () => {
    const events = await runFilter({
      config: config('sidecar-inbound'),
      requests: [
        request({ stream_info: { downstreamLocalAddress: '[fd00:10::5]:8080', downstreamDirectRemoteAddress: '[2001:db8::7]:41000' } }),
        request({ connection: 2, stream_info: { downstreamLocalAddress: '[::FFFF:10.1.0.5]:8080', downstreamDirectRemoteAddress: '[::ffff:203.0.113.7]:41000' } }),
      ],
    });
    expect(reportsOf(events)).toMatchObject([
      { direction: 'inbound', local: '[fd00:10::5]:8080', remote: '[2001:db8::7]:41000' },
      { direction: 'inbound', local: '10.1.0.5:8080', remote: '203.0.113.7:41000' },
    ]);
    expectUntouched(events);
  });

  it('reports outbound sessions as the app socket to the address it dialled', async () => {
    const events = await runFilter({
      config: config('sidecar-outbound'),
      requests: [
        request({
          stream_info: { downstreamLocalAddress: '198.51.100.20:443', downstreamDirectRemoteAddress: '10.1.0.5:53122' },
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
        request: { authority: 'cloud-service.cloud.svc.cluster.local', path: '/api/v1/orders?id=7', method: 'GET', scheme: 'http', headers: { 'end-user': 'minion' } },
      },
    ]);
    expectUntouched(events);
  });

  it('reports a gateway session as inbound, against the directly connected peer, with the mTLS peer namespace', async () => {
    const events = await runFilter({
      config: config('gateway'),
      requests: [
        request({
          stream_info: { downstreamLocalAddress: '10.1.0.9:8443', downstreamDirectRemoteAddress: '198.51.100.4:50000', downstreamRemoteAddress: '192.0.2.1:0' },
          peer_uri_sans: ['https://example.com/not-spiffe', 'spiffe://cluster.local/ns/shop/sa/frontend'],
        }),
      ],
    });
    expect(reportsOf(events)).toMatchObject([
      { direction: 'inbound', local: '10.1.0.9:8443', remote: '198.51.100.4:50000', request: { sourceNamespace: 'shop' } },
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
      requests: [request(), request({ connection: 2, raise: { httpCall: 'upstream connect error' } })],
    });
    expect(eventsOf(events, 'httpCall')).toEqual([]);
    expect(eventsOf(events, 'log').map((l) => [l.level, l.message])).toEqual([
      ['logWarn', expect.stringMatching(/^wansteer: session report not sent: .*cluster invalid/)],
      ['logWarn', expect.stringContaining('upstream connect error')],
    ]);
    expectUntouched(events);
  });

  it('reports a connection once, again when the request attributes change, and every request on an Envoy without connection metadata', async () => {
    const same = [request(), request(), request({ connection: 2 }), request({ extra: [['x-tier', 'gold']] })];
    const marked = await runFilter({ config: config('sidecar-inbound'), requests: same });
    expect(eventsOf(marked, 'httpCall').map((c) => c.request)).toEqual([1, 3, 4]);
    expectUntouched(marked);

    const older = await runFilter({ config: config('sidecar-inbound'), envoy: { connection_stream_info: false }, requests: same });
    expect(eventsOf(older, 'httpCall').map((c) => c.request)).toEqual([1, 2, 3, 4]);
    expectUntouched(older);

    const readOnly = await runFilter({ config: config('sidecar-inbound'), envoy: { connection_metadata_writable: false }, requests: same });
    expect(eventsOf(readOnly, 'httpCall').map((c) => c.request)).toEqual([1, 2, 3, 4]);
    expect(eventsOf(readOnly, 'log')).toEqual([]);
    expectUntouched(readOnly);
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
