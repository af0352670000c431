/**
 * The agent's side of the node's cluster snapshot (src/k8s/cluster-snapshot.ts): at start, feed
 * the engine what the node last saw of the cluster, until the API server's lists replace it;
 * from the first complete lists on, keep the snapshot up to date. Only in cluster mode (rules or
 * policies from the cluster).
 */
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/schema.js';
import type { KubeObject } from '../k8s/list-watch.js';
import type { PolicyStore } from '../policies/store.js';
import type { RuleSet } from '../routes/rule-set.js';
import type { RouteTableFeed } from '../routes/table-feed.js';
import type { Engine } from '../steering/engine.js';
import type { SourceProblem } from '../steering/source-states.js';

/** Where the agent's route rules come from (a directory, or the cluster's informer). */
export interface RuleSource {
  stop(): Promise<void> | void;
  /** Resolves once its rules are in the RuleSet (a directory: at once). */
  whenReady(): Promise<void>;
  /** The cluster's VirtualService objects as listed (cluster source only), for the snapshot. */
  clusterObjects?(): KubeObject[];
  /** Why it cannot list or watch now (cluster source only). */
  problem?(): SourceProblem | undefined;
}

/** The RuleSet source that holds the snapshot's VirtualServices until the informer has listed. */
export const SNAPSHOT_SOURCE = 'cluster-snapshot';

export const fromCluster = (config: AgentConfig): boolean => config.rules.source === 'cluster' || config.policies.store === 'cluster';

export const NOTHING_RESTORED = { routes: false, policies: false };

/**
 * Feed the engine the node's last view of the cluster (src/k8s/cluster-snapshot.ts), if there is
 * a usable one; says which parts it restored.
 */
export async function restoreClusterSnapshot(
  config: AgentConfig,
  parts: { ruleSet: RuleSet; routeFeed: RouteTableFeed; engine: Engine },
  logger: Logger,
): Promise<{ routes: boolean; policies: boolean }> {
  const { readClusterSnapshot, snapshotPath } = await import('../k8s/cluster-snapshot.js');
  const log = logger.child({ part: 'snapshot' });
  const read = await readClusterSnapshot(config.stateDir);
  if (read.status === 'missing') return NOTHING_RESTORED;
  if (read.status === 'unusable') {
    log.warn({ file: snapshotPath(config.stateDir), problem: read.problem }, 'the cluster snapshot cannot be used: waiting for the API server');
    return NOTHING_RESTORED;
  }
  const { snapshot } = read;
  for (const why of snapshot.skipped) log.warn({ file: snapshotPath(config.stateDir) }, `left out of the snapshot: ${why}`);
  const used: Record<string, number> = {};
  if (config.rules.source === 'cluster' && snapshot.virtualServices) {
    parts.ruleSet.replaceSource(SNAPSHOT_SOURCE, snapshot.virtualServices);
    parts.routeFeed.start();
    used.virtualServices = snapshot.virtualServices.length;
  }
  if (config.policies.store === 'cluster' && snapshot.policies) {
    parts.engine.setPolicies(snapshot.policies);
    used.policies = snapshot.policies.length;
  }
  if (Object.keys(used).length > 0) {
    log.warn({ writtenAt: snapshot.writtenAt, ...used }, "steering by this node's snapshot of the cluster until the API server answers");
  }
  return { routes: used.virtualServices !== undefined, policies: used.policies !== undefined };
}

/** From the first complete lists on, keep the snapshot up to date; returns its closer. */
export function keepClusterSnapshot(
  config: AgentConfig,
  parts: { ruleSet: RuleSet; store: PolicyStore; rules: RuleSource },
  logger: Logger,
): () => Promise<void> {
  const log = logger.child({ part: 'snapshot' });
  let writer: { changed(): void; flush(): Promise<void>; close(): Promise<void> } | undefined;
  const unsubscribe: (() => unknown)[] = [];
  const loading = import('../k8s/cluster-snapshot.js').then(({ ClusterSnapshotWriter }) => {
    const w = new ClusterSnapshotWriter({
      stateDir: config.stateDir,
      collect: () => ({
        ...(config.rules.source === 'cluster' ? { virtualServices: parts.rules.clusterObjects?.() ?? [] } : {}),
        ...(config.policies.store === 'cluster' ? { policies: parts.store.list() } : {}),
      }),
      onError: (err) => log.warn({ err }, 'could not write the cluster snapshot'),
    });
    writer = w;
    unsubscribe.push(parts.ruleSet.onChange(() => w.changed()), parts.store.subscribe(() => w.changed()));
    return w.flush();
  });
  return async () => {
    await loading;
    for (const u of unsubscribe) u();
    await writer?.close();
  };
}
