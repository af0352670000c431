// Proves the explain command end to end without spawning: exit codes 0/1/2, the "why" in text
// and JSON output, reading rules from a directory and from a (loopback) cluster.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runExplain } from '../../src/cli/explain.js';
import { main } from '../../src/cli/main.js';
import { FakeApiServer, virtualService } from '../k8s/fake-apiserver.js';

const RULES = new URL('../../examples/rules', import.meta.url).pathname;

async function run(argv: string[], kubeConfig?: () => import('@kubernetes/client-node').KubeConfig) {
  let stdout = '';
  let stderr = '';
  const code = await runExplain(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), ...(kubeConfig ? { kubeConfig } : {}) });
  return { code, stdout, stderr };
}

describe('wansteer explain', () => {
  it('explains the bookinfo jason route from the examples and exits 0', async () => {
    const r = await run(['--rules', RULES, '--host', 'reviews.default.svc.cluster.local', '--header', 'end-user=jason', '--path', '/reviews/1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('✓ header end-user exact "jason"');
    expect(r.stdout).toContain('result   MATCH default/reviews http[0] "jason" (route)');
    expect(r.stdout).toContain('→ reviews.default.svc.cluster.local subset v2 (100%)');
  });

  it('shows why the boss route failed before the minion route matched (Clovisor demo rule)', async () => {
    const r = await run(['--rules', RULES, '--host', 'cloud-service.cloud.svc.cluster.local', '--header', 'end-user: minion']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/http\[0\] "boss": no match\n.*\n\s+✗ header end-user exact "boss"/);
    expect(r.stdout).toContain('result   MATCH default/cloud-service http[1] "minion"');
  });

  it('prints JSON with the result and the trace', async () => {
    const r = await run(['--rules', RULES, '--host', 'cloud-service.cloud.svc.cluster.local', '--header', 'end-user=boss', '--json']);
    const out = JSON.parse(r.stdout);
    expect(r.code).toBe(0);
    expect(out.result).toMatchObject({ matched: true, routeName: 'boss', routeIndex: 0, virtualService: { namespace: 'default', name: 'cloud-service' } });
    expect(out.routes[0].blocks[0].conditions).toEqual([{ condition: 'header end-user exact "boss"', held: true }]);
  });

  it('exits 1 when no route matches, saying why', async () => {
    const r = await run(['--rules', RULES, '--host', 'cloud-service.cloud.svc.cluster.local', '--header', 'end-user=intern']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('NO MATCH (no route matched)');
  });

  it.each([
    [['--rules', RULES], '--host is required'],
    [['--host', 'x'], 'give exactly one of --rules DIR or --cluster'],
    [['--rules', RULES, '--host', 'x', '--port', 'http'], '--port must be 1-65535'],
    [['--rules', RULES, '--host', 'x', '--header', 'novalue'], '--header wants NAME=VALUE'],
    [['--rules', RULES, '--host', 'x', '--path', 'reviews'], '--path must start with "/"'],
    [['--rules', RULES, '--host', 'x', '--colour'], "Unknown option '--colour'"],
  ])('exits 2 with the reason on bad input %j', async (argv, reason) => {
    const r = await run(argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(reason);
  });

  it('exits 2 when the rules directory cannot be read', async () => {
    const r = await run(['--rules', '/nonexistent/rules', '--host', 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('cannot read');
  });

  it('warns about skipped objects on stderr and still answers from the rest', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wansteer-explain-'));
    try {
      await writeFile(join(dir, 'bad.yaml'), 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: bad }\nspec: { hosts: [a], http: [{ match: [{ uri: { regex: "(?=x)" } }], route: [{ destination: { host: a } }] }] }\n');
      await writeFile(join(dir, 'good.yaml'), 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: good }\nspec: { hosts: [b], http: [{ route: [{ destination: { host: b } }] }] }\n');
      const r = await run(['--rules', dir, '--host', 'b']);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain('warning: WS_ROUTES_INVALID_REGEX');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads the rules from the cluster with --cluster', async () => {
    const server = new FakeApiServer();
    await server.start();
    try {
      server.upsert(virtualService('default', 'reviews'));
      const r = await run(['--cluster', '--host', 'reviews', '--header', 'end-user=jason'], () => server.kubeConfig());
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('result   MATCH default/reviews http[0] "special"');
    } finally {
      await server.close();
    }
  });
});

describe('wansteer dispatcher', () => {
  it('routes to explain, prints usage for --help, and exits 2 on an unknown command', async () => {
    let out = '';
    const io = { stdout: (t: string) => (out += t), stderr: (t: string) => (out += t) };
    expect(await main(['--help'], io)).toBe(0);
    expect(out).toContain('explain');
    expect(await main(['frobnicate'], io)).toBe(2);
    expect(out).toContain('unknown command "frobnicate"');
    expect(await main(['explain', '--help'], io)).toBe(0);
    expect(out).toContain('Usage: wansteer explain');
  });
});
