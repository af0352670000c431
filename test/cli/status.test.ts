// Proves `wansteer status` shows what the agent does: against a real agent (dry-run datapath,
// the example rules and policies) it says ready, lists both links and where each example policy
// goes, and --json is the agent's /v1/status as is; against an agent that is not ready it says
// why and exits 1; with no agent there it says so and exits 3; bad options exit 2.
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningAgent } from '../../src/cli/agent.js';
import { EXIT_NOT_READY, EXIT_READY, EXIT_UNREACHABLE, EXIT_USAGE, runStatus } from '../../src/cli/status.js';
import { SourceStates } from '../../src/steering/source-states.js';
import { fixture } from '../api/helpers/app-fixture.js';
import { startExampleAgent, type ExampleAgent } from '../helpers/example-agent.js';

async function status(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runStatus(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  return { code, out, err };
}

describe('wansteer status against a running agent', () => {
  let example: ExampleAgent | undefined;
  let agent: RunningAgent;

  beforeAll(async () => {
    example = await startExampleAgent({ kernel: false });
    agent = example.agent;
  });

  afterAll(async () => {
    await example?.stop();
  });

  it('says ready, shows both links up and which link each policy takes', async () => {
    const { code, out } = await status('--agent', agent.httpUrl);
    expect(code).toBe(EXIT_READY);
    const lines = out.split('\n');
    expect(lines[0]).toBe(`wansteer agent at ${agent.httpUrl}: ready`);
    expect(out).toMatch(/route rules: synced\n {2}policies: {4}synced/);
    expect(lines.find((l) => l.startsWith('wan0 '))).toMatch(/^wan0\s+wan0\s+up\s/);
    expect(lines.find((l) => l.startsWith('wan1 '))).toMatch(/^wan1\s+wan1\s+up\s+-\s+-\s+-\s+minion-to-lte/);
    expect(lines.find((l) => l.startsWith('minion-to-lte '))).toMatch(/^minion-to-lte\s+wan1, wan0\s+wan1\s+-\s+-\s+first usable link/);
    expect(lines.find((l) => l.startsWith('boss-on-fibre '))).toMatch(/^boss-on-fibre\s+wan0, wan1\s+wan0\s+46\s/);
  });

  it('gives the agent\'s /v1/status as JSON with --json', async () => {
    const { code, out } = await status('--agent', `${agent.httpUrl}/`, '--json');
    expect(code).toBe(EXIT_READY);
    const direct = (await (await fetch(`${agent.httpUrl}/v1/status`)).json()) as unknown;
    expect(JSON.parse(out)).toEqual(direct);
  });
});

describe('wansteer status, the other answers', () => {
  it('says what a not-ready agent waits for, shows a link down and a policy without a link, exits 1', async () => {
    const sources = new SourceStates();
    sources.set('routes', 'synced');
    const { app, engine } = fixture({ sources });
    engine.isReady = false;
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const { code, out } = await status('--agent', url);
      expect(code).toBe(EXIT_NOT_READY);
      expect(out.split('\n')[0]).toBe(`wansteer agent at ${url}: NOT READY: policies: the WanPolicies are not listed yet`);
      expect(out).toMatch(/policies: {4}waiting for the first list/);
      expect(out).toMatch(/^lte\s+wwan0\s+DOWN\s+-\s+-\s+-\s+-\s+no carrier$/m);
      expect(out).toMatch(/^boss-fibre\s+fibre, lte\s+fibre\s+46\s+met \(loss<=5%\)\s+fibre: first usable/m);
      expect(out).toMatch(/^voice-lte\s+lte\s+-\s+-\s+-\s+no usable link/m);
    } finally {
      await app.close();
    }
  });

  it('says why a source fails in the API server\'s words (a refusal is not "not answered"), and lists refused WanPolicies', async () => {
    const sources = new SourceStates();
    sources.set('routes', 'snapshot');
    sources.set('policies', 'synced');
    sources.watchProblem('routes', () => ({ failure: 'unreachable', message: 'list virtualservices.networking.istio.io failed: connect ECONNREFUSED 10.96.0.1:443' }));
    sources.watchProblem('policies', () => ({ failure: 'forbidden', message: 'list wanpolicies.wansteer.io in wansteer-system failed: wanpolicies.wansteer.io is forbidden: User "system:serviceaccount:wansteer-system:wansteer-agent" cannot list resource "wanpolicies"' }));
    sources.watchRefused(() => [{ name: 'late', code: 'WS_POLICY_DUPLICATE_MATCH', message: 'it takes the sessions of boss-fibre' }]);
    const { app } = fixture({ sources });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const { out } = await status('--agent', url);
      expect(out).toMatch(/route rules: from this node's snapshot of the cluster \(unreachable: list virtualservices.* ECONNREFUSED/);
      expect(out).toMatch(/policies: {4}synced, keeping the last list: now failing with forbidden: .*cannot list resource "wanpolicies"/);
      expect(out).not.toMatch(/has not answered/);
      expect(out).toMatch(/^REFUSED: 1 WanPolicy left out on this node/m);
      expect(out).toMatch(/^late\s+WS_POLICY_DUPLICATE_MATCH\s+it takes the sessions of boss-fibre$/m);
    } finally {
      await app.close();
    }
  });

  it('says plainly when no agent answers, and exits 3', async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const { port } = probe.address() as AddressInfo;
    await new Promise((r) => probe.close(r));
    const { code, err } = await status('--agent', `http://127.0.0.1:${port}`, '--timeout', '2000');
    expect(code).toBe(EXIT_UNREACHABLE);
    expect(err).toContain(`could not ask the agent at http://127.0.0.1:${port}: ECONNREFUSED`);
    expect(err).toMatch(/is `wansteer agent` running/);
  });

  it('refuses bad options with exit 2', async () => {
    expect((await status('--agent', 'ftp://x')).code).toBe(EXIT_USAGE);
    expect((await status('--timeout', 'soon')).code).toBe(EXIT_USAGE);
    expect((await status('--frobnicate')).code).toBe(EXIT_USAGE);
  });
});
