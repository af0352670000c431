/**
 * A real `wansteer agent` on the examples (examples/rules, a copy of examples/policies.yaml),
 * links wan0 and wan1, for tests that talk to a running agent:
 *
 *  - startExampleAgent: in this process, on an ephemeral loopback port. `datapath` picks the
 *    kernel maps (pinned under `pinDir`; the interfaces do not exist here, so nothing is
 *    attached) or the in-memory dry run.
 *  - spawnExampleAgent: `wansteer agent` as a process in a lab's edge namespace, where wan0 and
 *    wan1 exist: the kernel datapath attached to them, steering the lab's real packets.
 */
import type { ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startAgent, type RunningAgent } from '../../src/cli/agent.js';
import { loadConfig } from '../../src/config/load.js';
import { fromRoot } from '../../src/config/paths.js';
import { CLOUD, LabAgentClient, type WanLab } from '../../src/lab/index.js';

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

export interface SpawnedAgent {
  readonly process: ChildProcess;
  /** The agent's REST API from inside the edge namespace. */
  readonly api: LabAgentClient;
  readonly pinDir: string;
  log: string;
  stop(): Promise<void>;
}

/**
 * `wansteer agent` in the lab's edge namespace on both families' addresses (`[::]:port`), the
 * kernel datapath on wan0 (default) and wan1 with the cloud's ends as next hops, no probes (a
 * link is up while it has carrier). Resolves when /readyz answers 200.
 */
export async function spawnExampleAgent(lab: WanLab, options: { port: number; pinDir: string }): Promise<SpawnedAgent> {
  const dir = await mkdtemp(join(tmpdir(), 'wansteer-lab-agent-'));
  await copyFile(fromRoot('examples/policies.yaml'), join(dir, 'policies.yaml'));
  await writeFile(
    join(dir, 'config.yaml'),
    `links:
  - { name: wan0, interface: wan0, nextHop4: ${CLOUD.c0.v4}, nextHop6: ${CLOUD.c0.v6} }
  - { name: wan1, interface: wan1, nextHop4: ${CLOUD.c1.v4}, nextHop6: ${CLOUD.c1.v6} }
defaultLink: wan0
datapath: { pinDir: ${options.pinDir}, flowTableSize: 4096 }
listen: { http: "[::]:${options.port}" }
rules: { source: directory, directory: ${fromRoot('examples/rules')} }
policies: { store: file, file: ${dir}/policies.yaml }
stateDir: ${dir}/state
log: { level: warn }
`,
  );
  const child = lab.spawn(lab.edge, [process.execPath, '--import', 'tsx', fromRoot('src/cli/main.ts'), 'agent', '--config', join(dir, 'config.yaml')]);
  const spawned: SpawnedAgent = {
    process: child,
    api: new LabAgentClient(lab, lab.edge, `http://127.0.0.1:${options.port}`, () => `the agent's log:\n${spawned.log.slice(-3000)}`),
    pinDir: options.pinDir,
    log: '',
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
      await rm(options.pinDir, { recursive: true, force: true });
    },
  };
  child.stdout!.on('data', (d: Buffer) => (spawned.log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (spawned.log += d.toString()));
  try {
    await spawned.api.waitReady(child, 30_000);
  } catch (err) {
    await spawned.stop();
    throw err;
  }
  return spawned;
}
