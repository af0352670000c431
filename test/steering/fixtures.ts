/**
 * Shared fixtures for the steering and metrics tests: an agent config with two links (fibre,
 * lte), route rules with boss and minion routes, policies for them, and a datapath wrapper that
 * counts writes and can pretend to have been adopted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentConfig } from '../../src/config/schema.js';
import { MemoryDatapath, type DatapathPort } from '../../src/datapath/index.js';
import type { WanPolicy, WanPolicySpec } from '../../src/policies/model.js';
import { RouteTable } from '../../src/routes/route-table.js';
import { parseVirtualService } from '../../src/routes/validate.js';
import type { Logger } from '../../src/base/logger.js';
import { Engine } from '../../src/steering/engine.js';
import type { SessionReport } from '../../src/steering/types.js';

export const IFINDEX = { eth1: 11, wwan0: 12, eth2: 13 };

export function makeConfig(stateDir: string, over: Partial<AgentConfig> = {}): AgentConfig {
  return {
    links: [
      { name: 'fibre', interface: 'eth1', nextHop4: '192.0.2.1', nextHop6: '2001:DB8::1' },
      { name: 'lte', interface: 'wwan0' },
    ],
    defaultLink: 'fibre',
    internet: { tableBase: 3600, rulePriority: 9000, markMask: 0x3f000000 },
    datapath: { pinDir: '/nonexistent', flowTableSize: 4096, flowIdleSeconds: 300, dryRun: true },
    listen: {},
    auth: {},
    intake: { allowedProxies: ['10.0.0.200', '::ffff:10.0.0.201'], ratePerClient: 5000, maxBatch: 1000 },
    rules: { source: 'directory', directory: '/nonexistent' },
    policies: { store: 'file', file: '/nonexistent' },
    stateDir,
    log: { level: 'info' },
    ...over,
  };
}

const vs = (name: string, spec: unknown) =>
  parseVirtualService(
    { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace: 'default' }, spec },
    { origin: 'test', defaultNamespace: 'default' },
  );

/** cloud-app: `boss` (header x-user: boss), `minion` (everything else). api: one route `only-post` (POST). */
export function routes(): RouteTable {
  return new RouteTable([
    vs('cloud-app', {
      hosts: ['cloud-app'],
      http: [
        { name: 'boss', match: [{ headers: { 'x-user': { exact: 'boss' } } }], route: [{ destination: { host: 'cloud-app' } }] },
        { name: 'minion', route: [{ destination: { host: 'cloud-app' } }] },
      ],
    }),
    vs('api', { hosts: ['api'], http: [{ name: 'only-post', match: [{ method: { exact: 'POST' } }], route: [{ destination: { host: 'api' } }] }] }),
    vs('plain', { hosts: ['plain'], http: [{ route: [{ destination: { host: 'plain' } }] }] }),
  ]);
}

let version = 0;
export const policy = (name: string, spec: WanPolicySpec): WanPolicy => ({ name, spec, version: String(++version) });

export const BOSS = policy('boss-to-fibre', {
  match: { route: { virtualService: 'default/cloud-app', route: 'boss' } },
  action: { links: ['fibre', 'lte'], mode: 'redirect' },
});
export const MINION = policy('minion-to-lte', {
  match: { route: { virtualService: 'default/cloud-app', route: 'minion' } },
  action: { links: ['lte', 'fibre'], mode: 'both', dscp: 10 },
});
export const VOICE = policy('voice-ef', { match: { dscp: 46 }, action: { links: ['fibre'], mode: 'both', dscp: 46 } });
export const NOWHERE = policy('nowhere', {
  match: { route: { virtualService: 'default/api', route: 'only-post' } },
  action: { links: ['satellite'], mode: 'redirect' },
});

export function report(local: string, remote: string, headers: Record<string, string> = {}, authority = 'cloud-app'): SessionReport {
  return { direction: 'outbound', local, remote, request: { authority, path: '/', method: 'GET', headers } };
}

export const boss = (sport: number, src = '10.0.0.5') => report(`${src}:${sport}`, '198.51.100.9:443', { 'x-user': 'boss' });
export const minion = (sport: number, src = '10.0.0.5') => report(`${src}:${sport}`, '198.51.100.9:443', { 'x-user': 'bob' });

/** Every datapath call by method name, counted. */
export type Calls = Record<string, number>;

/**
 * `dp` seen through a proxy that counts calls per method and, when `adopted`, says it found
 * pinned state (MemoryDatapath never does): what a restarted agent sees.
 */
export function tracked(dp: DatapathPort, opts: { adopted?: boolean } = {}): { port: DatapathPort; calls: Calls; reset(): void } {
  const calls: Calls = {};
  const port = new Proxy(dp, {
    get(target, prop, receiver) {
      if (prop === 'adopted' && opts.adopted !== undefined) return opts.adopted;
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        calls[String(prop)] = (calls[String(prop)] ?? 0) + 1;
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { port, calls, reset: () => Object.keys(calls).forEach((k) => delete calls[k]) };
}

export const writes = (c: Calls) =>
  (c.setLink ?? 0) + (c.setLinkUp ?? 0) + (c.setPolicy ?? 0) + (c.deletePolicy ?? 0) + (c.setDscpPolicy ?? 0) + (c.upsertFlow ?? 0) + (c.upsertFlows ?? 0) + (c.deleteFlows ?? 0);

export function memoryDatapath(interfaces: Record<string, number> = IFINDEX): MemoryDatapath {
  return new MemoryDatapath(4096, interfaces);
}

/** A recording logger: the messages, by level. */
export function recordingLogger(): Logger & { lines: { level: string; msg: string; fields: object }[] } {
  const lines: { level: string; msg: string; fields: object }[] = [];
  const at = (level: string) => (fields: object, msg: string) => void lines.push({ level, msg, fields });
  return { lines, info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') };
}

export function tempStateDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'wst-steer-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** An engine with routes and the usual policies, started. */
export function startedEngine(
  dp: DatapathPort,
  stateDir: string,
  opts: { policies?: WanPolicy[]; config?: Partial<AgentConfig>; logger?: Logger; clock?: () => bigint } = {},
): Engine {
  const engine = new Engine({
    datapath: dp,
    config: makeConfig(stateDir, opts.config),
    attach: false,
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  engine.setRoutes(routes());
  engine.setPolicies(opts.policies ?? [BOSS, MINION, VOICE]);
  engine.start();
  return engine;
}
