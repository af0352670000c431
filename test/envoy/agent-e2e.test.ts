// Proves session mode end to end: the real Lua filter (under the harness) reports a Clovisor
// "minion" request, the report is delivered over real HTTP to a running `wansteer agent`, and the
// session's flow lands in the kernel's BPF flow table under the minion policy (the in-memory
// datapath stands in only where the test cannot load BPF; under CI it must).
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../src/cli/agent.js';
import { filterSource, readFilterFiles } from '../../src/cli/render/lua-source.js';
import { loadConfig } from '../../src/config/load.js';
import { fromRoot } from '../../src/config/paths.js';
import { eventsOf, LUAJIT, runFilter } from './driver.js';
import { Datapath } from '../../src/datapath/index.js';
import { privilegeProblem } from '../helpers/privilege.js';
import { requireTool } from '../helpers/tools.js';

// The links' interfaces do not exist here, so nothing is attached: only the maps are used.
const kernel = !privilegeProblem;
const pinDir = `/sys/fs/bpf/wst-${process.pid}-envoy`;

requireTool('luajit', LUAJIT).describe('Lua filter → agent → datapath', () => {
  let dir: string;
  let agent: RunningAgent;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wansteer-e2e-'));
    await copyFile(fromRoot('examples/policies.yaml'), join(dir, 'policies.yaml'));
    await writeFile(
      join(dir, 'config.yaml'),
      `links:
  - { name: wan0, interface: wan0 }
  - { name: wan1, interface: wan1 }
defaultLink: wan0
datapath: { dryRun: ${!kernel}, pinDir: ${kernel ? pinDir : `${dir}/pins`}, flowTableSize: 4096 }
listen: { http: "127.0.0.1:9090" }
# The report arrives from loopback here, not from the pod address it names: let it in as a proxy.
intake: { allowedProxies: ["127.0.0.1"] }
rules: { source: directory, directory: ${fromRoot('examples/rules')} }
policies: { store: file, file: ${dir}/policies.yaml }
stateDir: ${dir}/state
`,
    );
    const config = await loadConfig({ file: join(dir, 'config.yaml'), env: {} });
    // An ephemeral port, which the config file (rightly) refuses for a real agent.
    const ephemeral = { ...config, listen: { ...config.listen, http: '127.0.0.1:0' } };
    agent = await startAgent(ephemeral, pino({ level: 'silent' }), { handleSignals: false });
  });

  afterAll(async () => {
    await agent?.stop();
    await rm(dir, { recursive: true, force: true });
    await rm(pinDir, { recursive: true, force: true });
  });

  it('steers the reported minion session to wan1', async () => {
    const source = filterSource(await readFilterFiles(), {
      placement: 'sidecar-inbound',
      cluster: 'wansteer-agent',
      authority: 'wansteer-agent',
      path: '/v1/sessions',
      timeout_ms: 200,
      headers: ['end-user'],
    });
    const events = await runFilter({
      source,
      clusters: ['wansteer-agent'],
      requests: [
        {
          headers: [[':authority', 'cloud-service.cloud.svc.cluster.local'], [':path', '/stream'], [':method', 'GET'], [':scheme', 'http'], ['end-user', 'minion']],
          stream_info: { downstreamLocalAddress: '10.1.0.5:8080', downstreamDirectRemoteAddress: '203.0.113.7:41000' },
        },
      ],
    });
    const [call] = eventsOf(events, 'httpCall');
    expect(call).toMatchObject({ cluster: 'wansteer-agent', asynchronous: true });

    // What Envoy does with the call: the cluster wansteer-agent is the agent's HTTP listener.
    const { [':method']: method, [':path']: path, [':authority']: _authority, ...headers } = call!.headers;
    const response = await fetch(`${agent.httpUrl}${path}`, { method, headers, body: call!.body });
    expect(response.status).toBe(200);
    // With the kernel datapath the links' interfaces are absent here, so both links are down and
    // no link is named; the flow is still written (it passes on its original path until one is up).
    expect(await response.json()).toMatchObject({ status: 'steered', policy: 'minion-to-lte', ...(kernel ? {} : { link: 'wan1' }) });

    const flows = (await (await fetch(`${agent.httpUrl}/v1/flows?policy=minion-to-lte`)).json()) as { items: unknown[] };
    expect(flows.items).toEqual([expect.objectContaining({ protocol: 'tcp', src: '10.1.0.5', sport: 8080, dst: '203.0.113.7', dport: 41000, policy: 'minion-to-lte' })]);

    if (kernel) {
      // Read it back from the pinned kernel table itself, as the next agent would adopt it.
      await agent.stop();
      const dp = Datapath.open({ pinDir });
      try {
        expect(dp.adopted).toBe(true);
        const entry = dp.getFlow({ protocol: 'tcp', src: '10.1.0.5', sport: 8080, dst: '203.0.113.7', dport: 41000 });
        expect(entry?.policyId).toBeGreaterThan(0);
        expect(dp.getPolicy(entry!.policyId)).toMatchObject({ redirectLink: 1 });
      } finally {
        dp.close();
      }
    }
  });
});
