/**
 * `wansteer agent`: the node agent. Composes the parts, in dependency order:
 *
 *   config ─► datapath (kernel, or memory with --dry-run)
 *          ─► route rules (directory or cluster) ─┐
 *          ─► policy store (file or cluster) ─────┼─► steering engine ─► flow ageing
 *                                                 └─► metrics, REST API + HTTP intake, gRPC intake
 *          ─► link monitor (carrier, probes) ─► engine.setLinkHealth
 *          ─► in cluster mode, the node's snapshot of the cluster until its lists arrive (cluster-state.ts)
 *
 * With `mode: reply-by-arrival` (the cloud end of overlay links) it is another agent altogether:
 * reply-agent.ts.
 *
 * Shutdown (SIGTERM/SIGINT) runs the other way: stop taking reports, stop the engine and the
 * sources, and let go of the datapath without detaching it — traffic keeps its steering while
 * the agent is away, and the next agent adopts the pins.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import pino, { type Logger } from 'pino';
import { buildApp } from '../api/app.js';
import type { GrpcIntake } from '../api/grpc.js';
import { SessionIntake } from '../api/intake.js';
import { ConfigError } from '../config/errors.js';
import { loadConfig } from '../config/load.js';
import { readLocalFiles } from '../config/local-files.js';
import type { AgentConfig } from '../config/schema.js';
import {
  Datapath, DatapathError, internetLayout, InternetLinkError, InternetRouting, MemoryDatapath, MemoryInternetRouting, openCarrierReader, openNeighbourTable,
  type DatapathPort, type InternetLayout, type InternetRoutingPort,
} from '../datapath/index.js';
import { createRegistry } from '../metrics/registry.js';
import { LinkMonitor } from '../links/monitor.js';
import { PolicyError } from '../policies/errors.js';
import { FilePolicyStore } from '../policies/file-store.js';
import type { PolicyStore } from '../policies/store.js';
import { DirectoryRuleSource } from '../routes/directory-source.js';
import { RuleSet } from '../routes/rule-set.js';
import { RouteTableFeed } from '../routes/table-feed.js';
import { FlowAgeing } from '../steering/ageing.js';
import { Engine } from '../steering/engine.js';
import { SourceStates, type RefusedObject, type SourceProblem } from '../steering/source-states.js';
import { startReplyAgent } from './reply-agent.js';
import { fromCluster, keepClusterSnapshot, NOTHING_RESTORED, restoreClusterSnapshot, SNAPSHOT_SOURCE, type RuleSource } from './cluster-state.js';
import type { CliIo } from './explain.js';

export const agentHelp = `Usage: wansteer agent [--config FILE] [options]

Runs the node agent (with \`mode: reply-by-arrival\` in the config: the cloud end of overlay links,
sending each flow's replies back by the link it arrived on). Options override the config file (and WANSTEER_* environment variables):
  --config FILE            config file (default /etc/wansteer/config.yaml)
  --listen-http HOST:PORT  REST API, session intake, /metrics (default 0.0.0.0:9090)
  --listen-grpc HOST:PORT  gRPC session intake (off unless given)
  --pin-dir DIR            bpffs directory for the datapath's pins
  --flow-table-size N      flow table entries per address family
  --token-file FILE        bearer token for policy writes
  --rules-dir DIR          VirtualService YAML directory (standalone)
  --policies-file FILE     policy file (standalone)
  --log-level LEVEL        fatal|error|warn|info|debug|trace
  --dry-run                keep the datapath in memory: no BPF, no root needed
`;

const DEFAULT_HTTP = '0.0.0.0:9090';

export async function runAgent(argv: readonly string[], io: CliIo): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout(agentHelp);
    return 0;
  }
  let config: AgentConfig;
  try {
    config = await loadConfig({ argv, env: process.env });
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr(`wansteer agent: ${err.message}\n`);
      return ConfigError.exitCode;
    }
    throw err;
  }
  const logger = pino({ level: config.log.level, base: { node: config.nodeName } });
  try {
    const agent = await startAgent(config, logger);
    await agent.stopped;
    return 0;
  } catch (err) {
    // The operator's to fix (a file the config names, a broken policy file): the message and its code, no stack.
    if (err instanceof ConfigError || err instanceof PolicyError) {
      const message = err instanceof PolicyError ? `${err.message} (${err.code})` : err.message;
      logger.fatal({ code: err.code }, message);
      io.stderr(`wansteer agent: ${message}\n`);
      return ConfigError.exitCode;
    }
    if (err instanceof DatapathError) {
      logger.fatal({ code: err.code, errno: err.errnoName }, err.message);
      io.stderr(`wansteer agent: ${err.message}\n`);
      return 1;
    }
    if (err instanceof InternetLinkError) {
      // The operator's to fix, like a bad config: the field and the fix, no stack.
      logger.fatal({ code: err.code, field: err.field }, err.message);
      io.stderr(`wansteer agent: cannot set up internet links: ${err.message}\n`);
      return ConfigError.exitCode;
    }
    logger.fatal({ err }, 'agent failed to start');
    return 1;
  }
}

import { Closers, serveAgent, type RunningAgent } from './running-agent.js';

export type { RunningAgent };

/**
 * Start every part; resolves when the agent serves (`synced`: when it can also steer new
 * sessions). Used by runAgent and by tests.
 *
 * In cluster mode nothing waits for the API server before the agent serves: an edge node may
 * be cut off from its control plane (often by the very WAN fault the agent is there for). Until
 * the first lists arrive, /healthz answers, /readyz says what is missing, the link monitor
 * moves traffic off a dead link (link entries are the agent's own), and the policy and flow
 * entries a previous agent left in the pinned maps go on steering. Standalone sources are local
 * files: they are read before the agent serves, and a broken one stops the start.
 */
export async function startAgent(config: AgentConfig, logger: Logger, opts: { handleSignals?: boolean } = {}): Promise<RunningAgent> {
  if (config.mode === 'reply-by-arrival') return startReplyAgent(config, logger, opts);
  const closers = new Closers(logger);
  try {
    // Before anything is set up: a missing token file or rules directory stops the start here.
    const { token } = await readLocalFiles(config);
    // A link that cannot be set up stops the start before anything is installed.
    const layout = internetLayout(config.links, config.internet);
    if (layout && !config.datapath.dryRun) InternetRouting.check(layout);
    const datapath = openDatapath(config, logger);
    closers.push(() => datapath.close());
    const routing = openInternetRouting(config, layout, logger);
    if (routing) closers.push(() => routing.close());

    const ruleSet = new RuleSet();
    const rules = await startRuleSource(config, ruleSet, logger);
    closers.push(rules.stop);
    const store = await createPolicyStore(config, logger);
    closers.push(() => store.close());

    // Adopt what the pinned maps hold; policy entries stay as found until the policies arrive.
    const engine = new Engine({ datapath, config, logger: logger.child({ part: 'engine' }), ...(routing ? { routing } : {}) });
    engine.start();
    closers.push(async () => {
      engine.stop();
      await engine.idsSaved();
    });

    // Coalesced: an informer's first list is one add per VirtualService, and one compile per add was O(n²).
    const routeFeed = new RouteTableFeed(ruleSet, (table) => engine.setRoutes(table));
    closers.push(() => routeFeed.stop());
    // Until the cluster answers: what this node last saw of it, if anything.
    const sourceStates = new SourceStates();
    if (rules.problem) sourceStates.watchProblem('routes', () => rules.problem?.());
    if (store.problem) sourceStates.watchProblem('policies', () => store.problem?.());
    if (store.refused) sourceStates.watchRefused(() => store.refused?.() ?? []);
    const restored = fromCluster(config) ? await restoreClusterSnapshot(config, { ruleSet, routeFeed, engine }, logger) : NOTHING_RESTORED;
    if (restored.routes) sourceStates.set('routes', 'snapshot');
    if (restored.policies) sourceStates.set('policies', 'snapshot');
    const routesIn = rules.whenReady().then(() => {
      if (closers.closing) return;
      if (restored.routes) ruleSet.replaceSource(SNAPSHOT_SOURCE, []); // the informer's own list replaces it
      routeFeed.start();
      sourceStates.set('routes', 'synced');
    });
    const policiesIn = store.ready().then(() => {
      if (closers.closing) return;
      engine.setPolicies(store.list());
      store.subscribe((policies) => engine.setPolicies([...policies]));
      sourceStates.set('policies', 'synced');
    });
    // A policy file is read now, and a broken one stops the start.
    if (config.policies.store === 'file') await policiesIn;

    // Link health: carrier and probes feed the engine directly (it is the monitor's sink); a
    // change of choice is one policy write per policy that moves.
    // In dry-run the interfaces are not ours to probe: every link stays up.
    if (!config.datapath.dryRun) {
      const carrier = openCarrierReader();
      closers.push(() => carrier.close());
      const neighbours = openNeighbourTable();
      closers.push(() => neighbours.close());
      const monitor = new LinkMonitor({
        links: config.links,
        sink: engine,
        logger: logger.child({ part: 'links' }),
        readFlags: carrier.read,
        readNextHop: (ifname, address) => neighbours.resolved(ifname, address),
      });
      await monitor.start();
      closers.push(() => monitor.stop());
    }

    const ageing = new FlowAgeing({ datapath, idleSeconds: config.datapath.flowIdleSeconds, logger: logger.child({ part: 'ageing' }) });
    ageing.start();
    closers.push(() => ageing.stop());

    const registry = createRegistry({ engine, datapath, ageing, sources: sourceStates, eventLoop: true });
    const sessions = SessionIntake.create(engine, config.intake, registry);
    if (!token) logger.warn('no auth.tokenFile: policy writes over the REST API are refused');
    const app = buildApp({ engine, store, registry, token, intake: config.intake, sessions, sources: sourceStates, logger: logger.child({ part: 'api' }) });

    let grpc: GrpcIntake | null = null;
    if (config.listen.grpc) {
      // Loaded only when configured: grpc-js, proto-loader and protobufjs cost ~6 MB of RSS.
      const { startGrpc } = await import('../api/grpc.js');
      grpc = await startGrpc({ engine, listen: config.listen.grpc, config, sessions, logger: logger.child({ part: 'grpc' }) });
      const g = grpc;
      closers.push(() => g.close());
    }

    const server = await serveAgent(app, config.listen.http ?? DEFAULT_HTTP, closers, logger, {
      ...opts,
      shutdownMessage: 'shutting down: the datapath keeps steering until the next agent adopts it',
    });
    const serving = { http: server.url, grpc: grpc ? grpc.port : null, adopted: datapath.adopted, links: config.links.map((l) => l.name) };
    const synced = Promise.all([routesIn, policiesIn]).then(() => {
      if (closers.closing) return;
      logger.info(serving, 'wansteer agent ready');
      if (fromCluster(config)) closers.push(keepClusterSnapshot(config, { ruleSet, store, rules }, logger));
    });
    synced.catch((err: unknown) => logger.error({ err }, 'route rules or policies could not be loaded'));
    if (!engine.ready()) logger.info({ ...serving, waitingFor: engine.waitingFor() }, 'wansteer agent serving; not ready yet');
    return { httpUrl: server.url, grpcPort: grpc ? grpc.port : null, synced, stopped: server.stopped, stop: server.stop };
  } catch (err) {
    await closers.closeAll();
    throw err;
  }
}

function openDatapath(config: AgentConfig, logger: Logger): DatapathPort {
  if (config.datapath.dryRun) {
    logger.warn('dry run: the datapath is kept in memory; no packet is steered');
    const interfaces = Object.fromEntries(config.links.map((l, i) => [l.interface, 1000 + i]));
    return new MemoryDatapath(config.datapath.flowTableSize, interfaces);
  }
  const libbpf = logger.child({ part: 'libbpf' });
  const dp = Datapath.open({
    pinDir: config.datapath.pinDir,
    flowTableSize: config.datapath.flowTableSize,
    onLibbpfLog: (level, msg) => (level === 'warn' ? libbpf.warn(msg) : libbpf.debug(msg)),
  });
  const m = dp.migration;
  if (m) {
    const maps = m.maps.map((x) => ({ map: x.name, why: x.reasons, entries: x.entries, copied: x.copied, dropped: x.dropped }));
    logger.info({ fromLayout: m.fromLayout, toLayout: m.toLayout, maps, swapped: m.swapped, ms: Math.round(m.totalMs) }, 'datapath maps migrated to what this agent needs; traffic kept its steering');
  }
  return dp;
}

/**
 * Internet links' routing tables, rules and nftables table (null: no internet link). Checked
 * before anything is written; in force until `wansteer cleanup`, like the pinned datapath.
 */
function openInternetRouting(config: AgentConfig, layout: InternetLayout | null, logger: Logger): InternetRoutingPort | null {
  if (!layout) return null;
  if (config.datapath.dryRun) return new MemoryInternetRouting();
  return InternetRouting.install(layout, { log: logger.child({ part: 'internet' }) });
}

async function startRuleSource(config: AgentConfig, ruleSet: RuleSet, logger: Logger): Promise<RuleSource> {
  const log = logger.child({ part: 'rules' });
  if (config.rules.source === 'directory') {
    const source = new DirectoryRuleSource({ directory: config.rules.directory, ruleSet, logger: log });
    const report = await source.start(); // first load, then watch
    log.info({ files: report.files, virtualServices: report.virtualServices, broken: report.brokenFiles.length }, 'route rules loaded');
    return { stop: () => source.stop(), whenReady: async () => undefined };
  }
  // Loaded only in cluster mode: the Kubernetes client costs tens of MB of memory.
  const { VirtualServiceInformer } = await import('../k8s/virtual-service-informer.js');
  const informer = VirtualServiceInformer.fromKubeConfig(await kubeConfig(), { ruleSet, namespaces: config.rules.namespaces, logger: log });
  informer.start();
  return { stop: () => informer.stop(), whenReady: () => informer.whenReady(), clusterObjects: () => informer.objects(), problem: () => informer.problem() };
}

/** The store; a cluster one also says why it cannot list (problem) and what it leaves out (refused). */
type AgentPolicyStore = PolicyStore & { problem?: () => SourceProblem | undefined; refused?: () => RefusedObject[] };

async function createPolicyStore(config: AgentConfig, logger: Logger): Promise<AgentPolicyStore> {
  const links = config.links.map((l) => l.name);
  const internetLinks = config.links.filter((l) => l.addressing === 'internet').map((l) => l.name);
  const log = logger.child({ part: 'policies' });
  if (config.policies.store === 'file') return new FilePolicyStore({ path: config.policies.file, links, internetLinks, logger: log });
  const { createClusterPolicyStore } = await import('../k8s/wan-policy-store.js');
  return createClusterPolicyStore(await kubeConfig(), { namespace: config.policies.namespace, links, internetLinks, logger: log, nodeName: config.nodeName });
}

let kube: KubeConfig | undefined;

/** In cluster: the pod's service account; by hand: KUBECONFIG or ~/.kube/config. */
async function kubeConfig(): Promise<KubeConfig> {
  if (!kube) {
    const { KubeConfig } = await import('@kubernetes/client-node');
    kube = new KubeConfig();
    kube.loadFromDefault();
  }
  return kube;
}
