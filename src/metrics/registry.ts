/**
 * The agent's metrics: one prom-client Registry of its own (not the global one), with one
 * collector per file in this folder. Every value is computed at scrape time from the engine's
 * plain-number stats and the datapath's BPF counters; nothing on the session path touches
 * prom-client.
 *
 *   const registry = createRegistry({ engine, datapath, ageing });
 *   app.get('/metrics', async () => registry.metrics());   // content type: registry.contentType
 */
import { Registry } from 'prom-client';
import type { DatapathPort } from '../datapath/index.js';
import type { FlowAgeing } from '../steering/ageing.js';
import type { PolicyStatus } from '../steering/engine.js';
import type { SteeringStats } from '../steering/stats.js';
import type { SourceStates } from '../steering/source-states.js';
import type { SteeringEngine } from '../steering/types.js';
import { registerConnectionResets, type ConnectionResetSource } from './connection-resets.js';
import { registerEventLoop } from './event-loop.js';
import { registerFlowEvictions } from './flow-evictions.js';
import { registerFlowTable } from './flow-table.js';
import { registerFlowsAged } from './flows-aged.js';
import { registerLinkChanges, type LinkChangeSource } from './link-changes.js';
import { registerLinkHealth } from './link-health.js';
import { registerLinkState } from './link-state.js';
import { registerLinkTraffic } from './link-traffic.js';
import { registerPassReasons } from './pass-reasons.js';
import { registerPolicyFlows, type PolicyFlowsOptions } from './policy-flows.js';
import { registerPolicySessions } from './policy-sessions.js';
import { registerPolicyTraffic } from './policy-traffic.js';
import { registerRefusedPolicies } from './refused-policies.js';
import { registerReportLatency } from './report-latency.js';
import { ScrapeCache } from './scrape-cache.js';
import { registerSessions } from './sessions.js';
import { registerSourceFailure } from './source-failure.js';
import { registerSourceState } from './source-state.js';
import { registerWriteErrors } from './write-errors.js';

export interface MetricsSources {
  /** The steering engine (src/steering/engine.ts Engine). */
  engine: SteeringStats & Pick<SteeringEngine, 'links'> & { policyStatus(): PolicyStatus[] } & Partial<LinkChangeSource> & Partial<ConnectionResetSource>;
  datapath: Pick<DatapathPort, 'counters' | 'countFlows' | 'countFlowsByPolicy' | 'flowTableSize' | 'flowTables'>;
  ageing?: Pick<FlowAgeing, 'aged' | 'errors'>;
  /** Bounds on the per-policy flow walk (see policy-flows.ts). */
  policyFlows?: PolicyFlowsOptions;
  /** Where route rules and policies come from now (the agent keeps it). */
  sources?: SourceStates;
  /** Milliseconds clock for the scrape caches (tests). */
  now?: () => number;
  /** Measure the event loop's longest delay between scrapes (the agent: yes). */
  eventLoop?: boolean;
}

export function createRegistry(sources: MetricsSources): Registry {
  const registry = new Registry();
  const { engine, datapath } = sources;
  const scrape = new ScrapeCache(datapath, sources.now);
  registerLinkTraffic(registry, engine, scrape);
  registerLinkState(registry, engine);
  registerLinkHealth(registry, engine);
  if (engine.linkChanges) registerLinkChanges(registry, engine as LinkChangeSource);
  if (engine.connectionResets) registerConnectionResets(registry, engine as ConnectionResetSource);
  registerPolicyTraffic(registry, engine, scrape);
  registerPolicySessions(registry, engine);
  registerPolicyFlows(registry, engine, datapath, scrape, { ...(sources.now ? { now: sources.now } : {}), ...sources.policyFlows });
  registerSessions(registry, engine);
  registerReportLatency(registry, engine.latency);
  registerFlowTable(registry, datapath, scrape);
  registerFlowEvictions(registry, datapath, scrape);
  registerWriteErrors(registry, engine);
  registerPassReasons(registry, scrape);
  if (sources.ageing) registerFlowsAged(registry, sources.ageing);
  if (sources.eventLoop) registerEventLoop(registry);
  if (sources.sources) {
    registerSourceState(registry, sources.sources);
    registerSourceFailure(registry, sources.sources);
    registerRefusedPolicies(registry, sources.sources);
  }
  return registry;
}
