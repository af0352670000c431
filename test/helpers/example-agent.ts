/**
 * A real `wansteer agent` in this process on the examples (examples/rules, a copy of
 * examples/policies.yaml), links wan0 and wan1, an ephemeral loopback port, for tests that talk
 * to a running agent. `datapath` picks the kernel maps (pinned under `pinDir`; the interfaces do
 * not exist here, so nothing is attached) or the in-memory dry run.
 */
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startAgent, type RunningAgent } from '../../src/cli/agent.js';
import { loadConfig } from '../../src/config/load.js';
import { fromRoot } from '../../src/config/paths.js';

export interface ExampleAgent {
  readonly agent: RunningAgent;
  readonly dir: string;
  stop(): Promise<void>;
}

export async function startExampleAgent(datapath: { kernel: false } | { kernel: true; pinDir: string }): Promise<ExampleAgent> {
  const dir = await mkdtemp(join(tmpdir(), 'wansteer-example-agent-'));
  await copyFile(fromRoot('examples/policies.yaml'), join(dir, 'policies.yaml'));
  await writeFile(
    join(dir, 'config.yaml'),
    `links:
  - { name: wan0, interface: wan0 }
  - { name: wan1, interface: wan1 }
defaultLink: wan0
datapath: { dryRun: ${!datapath.kernel}, pinDir: ${datapath.kernel ? datapath.pinDir : `${dir}/pins`}, flowTableSize: 4096 }
listen: { http: "127.0.0.1:9090" }
# Reports arrive from loopback here, not from the pod address they name: let them in as a proxy.
intake: { allowedProxies: ["127.0.0.1"] }
rules: { source: directory, directory: ${fromRoot('examples/rules')} }
policies: { store: file, file: ${dir}/policies.yaml }
stateDir: ${dir}/state
`,
  );
  const config = await loadConfig({ file: join(dir, 'config.yaml'), env: {} });
  // An ephemeral port, which the config file (rightly) refuses for a real agent.
  const agent = await startAgent({ ...config, listen: { ...config.listen, http: '127.0.0.1:0' } }, pino({ level: 'silent' }), { handleSignals: false });
  return {
    agent,
    dir,
    stop: async () => {
      await agent.stop();
      await rm(dir, { recursive: true, force: true });
      if (datapath.kernel) await rm(datapath.pinDir, { recursive: true, force: true });
    },
  };
}
