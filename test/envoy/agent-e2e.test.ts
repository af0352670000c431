// Proves session mode end to end: the real Lua filter (under the harness) reports a Clovisor
// "minion" request, the report is delivered over real HTTP to a running `wansteer agent`, and the
// session's flow lands in the kernel's BPF flow table under the minion policy (the in-memory
// datapath stands in only where the test cannot load BPF; under CI it must).
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningAgent } from '../../src/cli/agent.js';
import { filterSource, readFilterFiles } from '../../src/cli/render/lua-source.js';
import { eventsOf, LUAJIT, runFilter } from './driver.js';
import { Datapath } from '../../src/datapath/index.js';
import { startExampleAgent, type ExampleAgent } from '../helpers/example-agent.js';
import { privilegeProblem } from '../helpers/privilege.js';
import { requireTool } from '../helpers/tools.js';

// The links' interfaces do not exist here, so nothing is attached: only the maps are used.
const kernel = !privilegeProblem;
const pinDir = `/sys/fs/bpf/wst-${process.pid}-envoy`;

requireTool('luajit', LUAJIT).describe('Lua filter → agent → datapath', () => {
  let example: ExampleAgent | undefined;
  let agent: RunningAgent;

  beforeAll(async () => {
    example = await startExampleAgent(kernel ? { kernel: true, pinDir } : { kernel: false });
    agent = example.agent;
  });

  afterAll(async () => {
    await example?.stop();
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
