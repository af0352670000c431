/** Builds the API over the test doubles, with a fresh registry and a token, for app.inject tests. */
import { Registry } from 'prom-client';
import { buildApp, type BuildAppOptions } from '../../../src/api/app.js';
import { EngineDouble } from './engine-double.js';
import { PolicyStoreDouble } from './store-double.js';

export const TOKEN = 's3cret-token-for-tests';
export const auth = { authorization: `Bearer ${TOKEN}` };

export function fixture(overrides: Partial<BuildAppOptions> = {}) {
  const engine = new EngineDouble();
  const store = new PolicyStoreDouble();
  const registry = new Registry();
  const app = buildApp({ engine, store, registry, token: TOKEN, intake: { ratePerClient: 5000, maxBatch: 100 }, ...overrides });
  return { app, engine, store, registry };
}

/** A session report from the sidecar at 10.0.0.5 (inject with remoteAddress 10.0.0.5). */
export function report(overrides: Record<string, unknown> = {}) {
  return {
    direction: 'outbound',
    local: '10.0.0.5:43210',
    remote: '192.0.2.10:443',
    request: { authority: 'boss.example', path: '/api/orders', method: 'GET', headers: { 'x-user': 'boss' } },
    ...overrides,
  };
}
