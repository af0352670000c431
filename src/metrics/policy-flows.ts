/**
 * wansteer_policy_flows{policy}: flow entries per policy.
 *
 * The datapath keeps no per-policy count (flows come and go in the kernel: LRU eviction,
 * ageing), so it is counted by walking the flow tables. To keep a scrape cheap whatever the
 * table holds, the walk runs at most once per `intervalMs` (default 60 s; scrapes in between
 * get the last count) and not at all while the tables hold more than `maxEntries` (default
 * 250 000): then the family is left out rather than stall the agent's event loop. Its age is
 * in wansteer_policy_flows_age_seconds.
 */
import { Gauge, type Registry } from 'prom-client';
import type { DatapathPort } from '../datapath/index.js';
import type { SteeringStats } from '../steering/stats.js';
import type { ScrapeCache } from './scrape-cache.js';

export interface PolicyFlowsOptions {
  intervalMs?: number;
  maxEntries?: number;
  now?: () => number;
}

export function registerPolicyFlows(
  registry: Registry,
  engine: Pick<SteeringStats, 'policyNames'>,
  datapath: Pick<DatapathPort, 'countFlowsByPolicy'>,
  scrape: ScrapeCache,
  opts: PolicyFlowsOptions = {},
): void {
  const intervalMs = opts.intervalMs ?? 60_000;
  const maxEntries = opts.maxEntries ?? 250_000;
  const now = opts.now ?? Date.now;
  let countedAt = -Infinity;
  let counts: Map<number, number> | undefined;

  const refresh = (): void => {
    const t = now();
    if (t - countedAt < intervalMs) return;
    countedAt = t;
    if (scrape.flowCount() > maxEntries) {
      counts = undefined;
      return;
    }
    counts = datapath.countFlowsByPolicy();
  };

  new Gauge({
    name: 'wansteer_policy_flows',
    help: 'Flow entries per policy (counted at most once a minute; absent while the flow tables are too large to walk).',
    labelNames: ['policy'] as const,
    registers: [registry],
    collect() {
      refresh();
      this.reset();
      if (!counts) return;
      for (const [id, policy] of engine.policyNames()) this.set({ policy }, counts.get(id) ?? 0);
    },
  });
  new Gauge({
    name: 'wansteer_policy_flows_age_seconds',
    help: 'Age of the per-policy flow counts in wansteer_policy_flows.',
    registers: [registry],
    collect() {
      refresh();
      this.set(counts ? (now() - countedAt) / 1000 : 0);
    },
  });
}
