/** GET /metrics: the agent's prom-client registry in the Prometheus text format. */
import type { FastifyPluginCallback, RawServerDefault } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Registry } from 'prom-client';
import { errorResponses } from '../schemas.js';
import type { TypeBoxProvider } from '../typebox.js';

export const metricsRoutes: FastifyPluginCallback<{ registry: Registry }, RawServerDefault, TypeBoxProvider> = (app, { registry }, done) => {
  app.get('/metrics', {
    schema: { summary: 'Prometheus metrics', tags: ['metrics'], response: { 200: Type.String(), ...errorResponses } },
  }, async (_request, reply) => {
    const text = await registry.metrics();
    void reply.type(registry.contentType);
    return text;
  });
  done();
};
