/** /healthz: the process serves. /readyz: the engine can steer (datapath writable, sources synced). */
import type { FastifyPluginCallback, RawServerDefault } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { SteeringEngine } from '../../steering/types.js';
import { NotReady, toErrorBody } from '../errors.js';
import { errorResponses } from '../schemas.js';
import type { TypeBoxProvider } from '../typebox.js';

const Status = Type.Object({ status: Type.Literal('ok') });

export const healthRoutes: FastifyPluginCallback<{ engine: SteeringEngine }, RawServerDefault, TypeBoxProvider> = (app, { engine }, done) => {
  app.get('/healthz', {
    schema: { summary: 'Liveness', tags: ['health'], response: { 200: Status, ...errorResponses } },
  }, async () => ({ status: 'ok' as const }));

  app.get('/readyz', {
    schema: { summary: 'Readiness', tags: ['health'], response: { 200: Status, ...errorResponses } },
  }, async (_request, reply) => {
    // Answered, not thrown: a probe polling during start-up is not an error worth a log line.
    const waiting = engine.waitingFor();
    if (waiting.length > 0) return reply.code(503).send(toErrorBody(NotReady(waiting.join('; '))).body);
    return { status: 'ok' as const };
  });
  done();
};
