/** GET /v1/flows: the flows the agent steers, filtered by policy or link, at most `limit`. */
import type { FastifyPluginCallback, RawServerDefault } from 'fastify';
import { Type } from '@sinclair/typebox';
import { PolicyName } from '../../policies/model.js';
import type { SteeringEngine } from '../../steering/types.js';
import { errorResponses, FlowViewBody, LinkName } from '../schemas.js';
import type { TypeBoxProvider } from '../typebox.js';

const DEFAULT_LIMIT = 1000;

const FlowQuery = Type.Object(
  {
    policy: Type.Optional(PolicyName),
    link: Type.Optional(LinkName),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, default: DEFAULT_LIMIT })),
  },
  { additionalProperties: false },
);

export const flowRoutes: FastifyPluginCallback<{ engine: SteeringEngine }, RawServerDefault, TypeBoxProvider> = (app, { engine }, done) => {
  app.get('/v1/flows', {
    schema: {
      summary: 'Steered flows', tags: ['flows'], querystring: FlowQuery,
      response: { 200: Type.Object({ items: Type.Array(FlowViewBody) }), ...errorResponses },
    },
  }, async (request) => {
    const { policy, link, limit } = request.query;
    return { items: engine.flows({ ...(policy && { policy }), ...(link && { link }), limit: limit ?? DEFAULT_LIMIT }) };
  });
  done();
};
