/**
 * The HTTP API of an agent in reply-by-arrival mode (the cloud end of overlay links): health,
 * readiness, metrics, and what the datapath knows — its links and the flows it learned. No
 * policies and no session intake: at this end the edge's packets are the only input.
 */
import fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Registry } from 'prom-client';
import type { ReplyEnd } from '../steering/reply-end.js';
import { handleError, NotFound, NotReady, toErrorBody } from './errors.js';
import { metricsRoutes } from './routes/metrics.js';
import { errorResponses, LinkName } from './schemas.js';
import { serializerCompiler, validatorCompiler, type TypeBoxProvider } from './typebox.js';

const Status = Type.Object({ status: Type.Literal('ok') });
const Count = Type.Object({ packets: Type.Number(), bytes: Type.Number() });
const ReplyLinkBody = Type.Object({
  name: LinkName,
  interface: Type.String(),
  ifindex: Type.Union([Type.Integer(), Type.Null()]),
  up: Type.Boolean({ description: 'replies of flows arriving on the link go back by it' }),
  reason: Type.Optional(Type.String()),
  arrived: Count,
  replied: Count,
});
const ArrivalBody = Type.Object({
  protocol: Type.Union([Type.String(), Type.Integer()]),
  src: Type.String({ description: 'this end (the reply\'s source)' }),
  sport: Type.Integer(),
  dst: Type.String(),
  dport: Type.Integer(),
  link: Type.String({ description: 'the link the flow last arrived on: its replies leave by it' }),
  idleSeconds: Type.Number(),
});

export interface BuildReplyAppOptions {
  end: Pick<ReplyEnd, 'waitingFor' | 'status' | 'arrivals'>;
  registry: Registry;
  logger?: FastifyBaseLogger;
}

export function buildReplyApp(options: BuildReplyAppOptions) {
  const app = fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    logController: new LogController({ disableRequestLogging: true }),
    schemaController: { compilersFactory: { buildValidator: () => validatorCompiler as never, buildSerializer: () => serializerCompiler as never } },
  }).withTypeProvider<TypeBoxProvider>();
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(toErrorBody(NotFound(`no route ${request.method} ${request.url.split('?')[0]}`)).body);
  });
  const { end } = options;

  app.get('/healthz', { schema: { response: { 200: Status, ...errorResponses } } }, async () => ({ status: 'ok' as const }));
  app.get('/readyz', { schema: { response: { 200: Status, ...errorResponses } } }, async (_request, reply) => {
    const waiting = end.waitingFor();
    if (waiting.length > 0) return reply.code(503).send(toErrorBody(NotReady(waiting.join('; '))).body);
    return { status: 'ok' as const };
  });
  app.get('/v1/links', { schema: { response: { 200: Type.Object({ items: Type.Array(ReplyLinkBody) }), ...errorResponses } } }, async () => ({ items: end.status() }));
  app.get('/v1/arrivals', {
    schema: {
      querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, default: 1000 })) }, { additionalProperties: false }),
      response: { 200: Type.Object({ items: Type.Array(ArrivalBody) }), ...errorResponses },
    },
  }, async (request) => ({ items: end.arrivals(request.query.limit ?? 1000) }));
  void app.register(metricsRoutes, { registry: options.registry });
  return app;
}
