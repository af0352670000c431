/**
 * The agent's HTTP API as a fastify instance: REST for policies, links, flows and explain, the
 * session intake, health, metrics and the OpenAPI document. One plugin per concern under
 * routes/, each given the services it uses; one error handler (errors.ts); schema-compiled
 * validation (typebox.ts). The listener's bounds (connection caps, deadlines) are set where the
 * server is made (http-listener.ts); every request pays its caller's rate budget before it is
 * parsed (request-cost.ts), and bodies are read by one bounded parser (json-body.ts). Knows
 * nothing of the process: server.ts listens and shuts down.
 */
import fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type RawServerDefault } from 'fastify';
import swagger from '@fastify/swagger';
import { Type } from '@sinclair/typebox';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { PolicyStore } from '../policies/store.js';
import type { SourceStates } from '../steering/source-states.js';
import type { SteeringEngine } from '../steering/types.js';
import type { ConnectionGuard } from './connection-guard.js';
import { handleError, NotFound, toErrorBody } from './errors.js';
import { DEFAULT_HTTP_LIMITS, guardConnections, httpServerOptions, type HttpLimits } from './http-listener.js';
import { defaultBatchBytes, SessionIntake, type IntakeLimits } from './intake.js';
import { BodyBudget, useJsonBodyParser } from './json-body.js';
import { chargeBeforeParsing } from './request-cost.js';
import { explainRoutes } from './routes/explain.js';
import { flowRoutes } from './routes/flows.js';
import { healthRoutes } from './routes/health.js';
import { linkRoutes } from './routes/links.js';
import { metricsRoutes } from './routes/metrics.js';
import { policyRoutes } from './routes/policies.js';
import { sessionRoutes } from './routes/sessions.js';
import { statusRoutes } from './routes/status.js';
import { serializerCompiler, validatorCompiler, type TypeBoxProvider } from './typebox.js';

/** Body limits in bytes. */
export interface BodyLimits {
  /** One session report, or an explain request (a report's request part). */
  report: number;
  /** One batch of reports (default: 2 KiB per report of intake.maxBatch, 64 KiB to 32 MiB). */
  batch: number;
  /** A policy. */
  policy: number;
  /** A route that takes no body (a GET, a DELETE): nothing worth reading. */
  other: number;
}

export interface BuildAppOptions {
  engine: SteeringEngine;
  store: PolicyStore;
  /** The agent's own prom-client registry; /metrics serves it and the intake counts into it. */
  registry: Registry;
  /** Bearer token for policy writes; absent: writes are refused. */
  token?: string;
  /** `intake` of the agent config: rate per client and largest batch. */
  intake: IntakeLimits;
  /** Give the same SessionIntake to startGrpc so both share one rate limit per client. */
  sessions?: SessionIntake;
  /** The agent's pino logger; absent: no logs. */
  logger?: FastifyBaseLogger;
  limits?: Partial<BodyLimits>;
  /** Connection caps, deadlines and the memory for bodies in flight (http-listener.ts). */
  http?: Partial<HttpLimits>;
  /** Where route rules and policies come from now (the agent keeps it); absent: reported as synced. */
  sources?: Pick<SourceStates, 'view'>;
}

export type WansteerApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxProvider> & {
  /** The listener's connection counts (tests and the abuse benchmark read them). */
  readonly connections: ConnectionGuard;
};

const KiB = 1024;
const ALWAYS_SYNCED = { view: () => ({ routes: 'synced', policies: 'synced' }) as const };

export function defaultBodyLimits(maxBatch: number): BodyLimits {
  return { report: 32 * KiB, batch: defaultBatchBytes(maxBatch), policy: 64 * KiB, other: 1 * KiB };
}

export function buildApp(options: BuildAppOptions): WansteerApp {
  const limits = { ...defaultBodyLimits(options.intake.maxBatch), ...options.limits };
  const http = { ...DEFAULT_HTTP_LIMITS, ...options.http };
  const app = fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    ...httpServerOptions(http),
    // A URL that does not decode, a path parameter too long: answered by the one error handler, with a code.
    frameworkErrors: (err, request, reply) => handleError(err, request, reply),
    // A log line per request would cost more than a session report does; errors are logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: limits.other,
    // Our compilers (typebox.ts) from the start, so fastify does not load its ajv-based defaults
    // (its factory types are ajv's: the compilers are fastify's own compiler types, as set*Compiler takes).
    schemaController: { compilersFactory: { buildValidator: () => validatorCompiler as never, buildSerializer: () => serializerCompiler as never } },
  }).withTypeProvider<TypeBoxProvider>();

  // JSON only: a text/plain body is answered 415, not parsed into a string that fails the schema.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request, reply) => {
    const { body } = toErrorBody(NotFound(`no route ${request.method} ${request.url.split('?')[0]}`));
    void reply.code(404).send(body);
  });

  void app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'wansteer agent API', version: 'v1', description: 'Policies, links, flows, explain and session intake of one edge node.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });

  const sessions = options.sessions ?? SessionIntake.create(options.engine, options.intake, options.registry);
  // A caller whose budget cannot pay for a request (or the one it was last refused) is turned away as it connects.
  const connections = guardConnections(app.server, http, (caller) => sessions.turnAway(caller));
  // Every request pays its caller's rate budget before its body is read; bodies are read by one parser.
  app.addHook('onRequest', chargeBeforeParsing(sessions));
  useJsonBodyParser(app, sessions, new BodyBudget(http.bodyBytesInFlight));
  void app.register(sessionRoutes, { intake: sessions, maxBatch: options.intake.maxBatch, reportBytes: limits.report, batchBytes: limits.batch });
  void app.register(policyRoutes, { store: options.store, token: options.token, bodyBytes: limits.policy });
  void app.register(linkRoutes, { engine: options.engine });
  void app.register(flowRoutes, { engine: options.engine });
  void app.register(explainRoutes, { engine: options.engine, bodyBytes: limits.report });
  void app.register(healthRoutes, { engine: options.engine });
  void app.register(statusRoutes, { engine: options.engine, sources: options.sources ?? ALWAYS_SYNCED });
  void app.register(metricsRoutes, { registry: options.registry });

  void app.register(async (docs) => {
    docs.get('/openapi.json', { schema: { hide: true, response: { 200: Type.Unknown() } } }, async () => app.swagger());
  });

  return Object.assign(app, { connections });
}
