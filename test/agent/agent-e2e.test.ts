/**
 * The node agent end to end, as a user runs it: `wansteer agent --config FILE` as a process in
 * the edge namespace of a two-link lab, rules from a VirtualService directory, a policy posted
 * over REST, sessions of real TCP connections reported over HTTP and gRPC from the sessions'
 * own address (as a sidecar would), and the packets counted on the wire in the cloud.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { CLOUD, EDGE, IngressCounters, TRAFFIC_TOOL, WanLab } from '../helpers/netns.js';
import { describePrivileged } from '../helpers/privilege.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** HTTP and gRPC calls from inside a namespace: one JSON job on stdin (scripts/ns-http.mjs). */
const NS_CALL = [process.execPath, join(ROOT, 'scripts/ns-http.mjs'), 'call'];
const PORT = 8080;
const TOKEN = 'e2e-token-0123456789';
const AGENT = `http://${EDGE.wan0.v4}:9090`;
const HOST = 'cloud-service.cloud.svc.cluster.local';

interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

describePrivileged('wansteer agent: end to end in network namespaces', () => {
  let lab: WanLab;
  let dir: string;
  let agent: ChildProcess | null = null;
  let counters: IngressCounters;
  const pinDir = `/sys/fs/bpf/wst-${process.pid}-agent`;

  /** Run HTTP requests from inside the edge namespace (source address = wan0's). */
  const http = (...reqs: { method?: string; path: string; headers?: Record<string, string>; body?: unknown }[]): HttpAnswer[] =>
    JSON.parse(
      lab.exec(
        lab.edge,
        NS_CALL,
        JSON.stringify({
          http: reqs.map((r) => ({
            method: r.method ?? 'GET',
            url: AGENT + r.path,
            headers: { ...(r.body !== undefined ? { 'content-type': 'application/json' } : {}), ...r.headers },
            body: r.body === undefined ? undefined : typeof r.body === 'string' ? r.body : JSON.stringify(r.body),
          })),
        }),
      ),
    );
  const grpc = (method: string, request: unknown) =>
    JSON.parse(lab.exec(lab.edge, NS_CALL, JSON.stringify({ grpc: { target: `${EDGE.wan0.v4}:9091`, method, request } })));
  const auth = { authorization: `Bearer ${TOKEN}` };
  const report = (sport: number, user: string) => ({
    direction: 'outbound',
    local: `${EDGE.wan0.v4}:${sport}`,
    remote: `${CLOUD.service.v4}:${PORT}`,
    request: { authority: HOST, path: '/', method: 'GET', headers: { 'end-user': user } },
  });
  const tcp = (sport: number, bytes = 200_000) =>
    lab.exec(lab.edge, ['python3', TRAFFIC_TOOL, 'tcp-client', EDGE.wan0.v4, String(sport), CLOUD.service.v4, String(PORT), String(bytes)]);
  const seen = (sport: number) => {
    const c = counters.read();
    return { wan0: c[`p${sport}|c0`] ?? 0, wan1: c[`p${sport}|c1`] ?? 0, ef: (c[`p${sport}|c0|dscp46`] ?? 0) + (c[`p${sport}|c1|dscp46`] ?? 0) };
  };

  async function startAgent(): Promise<void> {
    agent = lab.spawn(lab.edge, [process.execPath, '--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'agent', '--config', join(dir, 'config.yaml')]);
    let log = '';
    agent.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (agent.exitCode !== null) throw new Error(`agent exited ${agent.exitCode}: ${log}`);
      if (http({ path: '/readyz' })[0]!.status === 200) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`agent not ready in 20 s: ${log}`);
  }

  async function stopAgent(signal: NodeJS.Signals): Promise<void> {
    const a = agent;
    if (!a || a.exitCode !== null) return;
    const exited = new Promise((r) => a.once('exit', r));
    a.kill(signal);
    await exited;
    agent = null;
  }

  beforeAll(async () => {
    lab = WanLab.create('agent');
    dir = mkdtempSync(join(tmpdir(), 'wansteer-e2e-'));
    cpSync(join(ROOT, 'examples/rules'), join(dir, 'rules'), { recursive: true });
    writeFileSync(join(dir, 'token'), TOKEN + '\n');
    writeFileSync(
      join(dir, 'config.yaml'),
      [
        'links:',
        `  - { name: wan0, interface: wan0, nextHop4: ${CLOUD.c0.v4} }`,
        `  - { name: wan1, interface: wan1, nextHop4: ${CLOUD.c1.v4} }`,
        'defaultLink: wan0',
        'listen: { http: "0.0.0.0:9090", grpc: "0.0.0.0:9091" }',
        `auth: { tokenFile: ${join(dir, 'token')} }`,
        `rules: { source: directory, directory: ${join(dir, 'rules')} }`,
        `policies: { store: file, file: ${join(dir, 'policies.yaml')} }`,
        `stateDir: ${join(dir, 'state')}`,
        `datapath: { pinDir: ${pinDir}, flowTableSize: 65536 }`,
        'log: { level: warn }',
      ].join('\n') + '\n',
    );
    await lab.spawnReady(lab.cloud, ['python3', TRAFFIC_TOOL, 'tcp-server', String(PORT)], 'tcp-server');
    const flows = [];
    for (let p = 44000; p < 44020; p++) flows.push({ name: `p${p}`, match: `tcp sport ${p}` });
    counters = IngressCounters.install(lab, flows, [46]);
    await startAgent();
  });

  afterAll(async () => {
    await stopAgent('SIGKILL').catch(() => {});
    lab?.destroy();
    rmSync(pinDir, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('steers reported sessions by the posted policy: minion over wan1, boss on wan0 marked EF', () => {
    const [minion, boss] = http(
      {
        method: 'POST',
        path: '/v1/policies',
        headers: auth,
        body: { name: 'minion-lte', spec: { match: { route: { virtualService: 'default/cloud-service', route: 'minion' } }, action: { links: ['wan1', 'wan0'], mode: 'redirect' } } },
      },
      {
        method: 'POST',
        path: '/v1/policies',
        headers: auth,
        body: { name: 'boss-ef', spec: { match: { route: { virtualService: 'default/cloud-service', route: 'boss' } }, action: { links: ['wan0'], dscp: 46, mode: 'both' } } },
      },
    );
    expect(minion!.status).toBe(201);
    expect(boss!.status).toBe(201);

    // minion's session over HTTP, boss's over gRPC; a third, unmatched user over HTTP.
    const [m, nobody] = http({ method: 'POST', path: '/v1/sessions', body: report(44001, 'minion') }, { method: 'POST', path: '/v1/sessions', body: report(44003, 'someone') });
    expect(m!.body).toMatchObject({ status: 'steered', policy: 'minion-lte', link: 'wan1' });
    expect(nobody!.body).toMatchObject({ status: 'unmatched' });
    const b = grpc('report', report(44002, 'boss'));
    expect(b).toMatchObject({ ok: true, response: { outcome: { status: 'steered', policy: 'boss-ef' } } });

    tcp(44001);
    tcp(44002);
    tcp(44003);
    expect(seen(44001)).toMatchObject({ wan0: 0 });
    expect(seen(44001).wan1).toBeGreaterThan(4);
    const bossSeen = seen(44002);
    expect(bossSeen.wan1).toBe(0);
    expect(bossSeen.wan0).toBeGreaterThan(4);
    expect(bossSeen.ef).toBe(bossSeen.wan0);
    expect(seen(44003)).toMatchObject({ wan1: 0, ef: 0 });
  });

  it('says so in its metrics and its flow list', () => {
    const [metrics, flows, links] = http({ path: '/metrics' }, { path: '/v1/flows?policy=minion-lte' }, { path: '/v1/links' });
    const text = metrics!.body as string;
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    expect(value(/^wansteer_sessions_total\{outcome="steered",reason=""\} (\d+)/m)).toBe(2);
    expect(value(/^wansteer_link_packets_total\{link="wan1"\} (\d+)/m)).toBeGreaterThan(4);
    expect(value(/^wansteer_policy_packets_total\{policy="boss-ef"\} (\d+)/m)).toBeGreaterThan(4);
    expect(flows!.body.items).toEqual([expect.objectContaining({ src: EDGE.wan0.v4, sport: 44001, dst: CLOUD.service.v4, dport: PORT, policy: 'minion-lte' })]);
    expect(links!.body.items.find((l: { name: string }) => l.name === 'wan1')).toMatchObject({ up: true, activeFor: ['minion-lte'] });
  });

  it('keeps a session on its link while the agent restarts mid-traffic', async () => {
    expect(http({ method: 'POST', path: '/v1/sessions', body: report(44004, 'minion') })[0]!.body).toMatchObject({ status: 'steered' });
    const stream = lab.spawn(lab.edge, ['python3', TRAFFIC_TOOL, 'tcp-stream', EDGE.wan0.v4, '44004', CLOUD.service.v4, String(PORT), '3000']);
    const done = new Promise<number | null>((r) => stream.once('exit', r));
    await new Promise((r) => setTimeout(r, 500));
    await stopAgent('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    await startAgent();
    expect(await done).toBe(0);
    const s = seen(44004);
    expect(s.wan0).toBe(0);
    expect(s.wan1).toBeGreaterThan(50);
    expect(http({ path: '/v1/flows?policy=minion-lte' })[0]!.body.items.map((f: { sport: number }) => f.sport).sort()).toEqual([44001, 44004]);
  });

  it('answers bad input with a 4xx and its code, stores nothing, and keeps serving', () => {
    const before = http({ path: '/v1/policies' })[0]!.body;
    const policy = (name: string, action: unknown) => ({ name, spec: { match: { route: { virtualService: 'default/reviews' } }, action } });
    const answers = http(
      { method: 'POST', path: '/v1/policies', headers: auth, body: '{"name": "broken",' },
      { method: 'POST', path: '/v1/policies', headers: auth, body: policy('unknown-link', { links: ['wan9'], mode: 'redirect' }) },
      { method: 'POST', path: '/v1/policies', headers: auth, body: policy('dscp-64', { links: [], dscp: 64, mode: 'mark' }) },
      { method: 'POST', path: '/v1/policies', headers: { authorization: 'Bearer wrong' }, body: policy('no-token', { links: ['wan1'], mode: 'redirect' }) },
      { method: 'POST', path: '/v1/policies', headers: auth, body: { ...policy('huge', { links: ['wan1'], mode: 'redirect' }), pad: 'x'.repeat(200_000) } },
      { method: 'POST', path: '/v1/sessions', body: { ...report(44005, 'minion'), local: `${EDGE.wan1.v4}:44005` } },
      { method: 'POST', path: '/v1/sessions', body: '{"direction":' },
    );
    expect(answers.map((a) => [a.status, a.body.code])).toEqual([
      [400, expect.stringMatching(/^WS_/)],
      [422, 'WS_POLICY_UNKNOWN_LINK'],
      [400, expect.stringMatching(/^WS_/)],
      [401, 'WS_API_UNAUTHORIZED'],
      [413, expect.stringMatching(/^WS_/)],
      [403, 'WS_API_SPOOFED_LOCAL'],
      [400, expect.stringMatching(/^WS_/)],
    ]);
    const [after, health] = http({ path: '/v1/policies' }, { path: '/healthz' });
    expect(after!.body).toEqual(before);
    expect(health!.status).toBe(200);
  });

  it('leaves a whole policy file when killed with SIGKILL in the middle of writes', async () => {
    const file = join(dir, 'policies.yaml');
    for (let round = 0; round < 3; round++) {
      // A burst of writes from the namespace, and a kill -9 while it runs.
      const writes = Array.from({ length: 40 }, (_, i) => ({
        method: 'POST',
        url: `${AGENT}/v1/policies`,
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `burst-${round}-${i}`, spec: { match: { dscp: (round * 40 + i) % 60 + 1 }, action: { links: ['wan1'], mode: 'redirect' } } }),
      }));
      const burst = lab.spawn(lab.edge, NS_CALL);
      burst.stdin!.end(JSON.stringify({ http: writes }));
      await new Promise((r) => setTimeout(r, 150 + round * 100));
      await stopAgent('SIGKILL');
      burst.kill('SIGKILL');
      const doc = parse(readFileSync(file, 'utf8')) as { items: { name: string }[] };
      expect(Array.isArray(doc.items)).toBe(true);
      expect(doc.items.map((p) => p.name)).toContain('minion-lte');
      await startAgent();
      // The restarted agent serves what the file holds.
      const listed = http({ path: '/v1/policies' })[0]!.body.items.map((p: { name: string }) => p.name);
      expect(listed.sort()).toEqual(doc.items.map((p) => p.name).sort());
      // Clean up this round's policies so the next round's DSCP matches are free.
      const burstNames = listed.filter((n: string) => n.startsWith('burst-'));
      http(...burstNames.map((n: string) => ({ method: 'DELETE', path: `/v1/policies/${n}`, headers: auth })));
    }
  });
});
