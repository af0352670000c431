/**
 * GET /v1/flows: the flows the agent steers, a page at a time, filtered by policy or link. A
 * page costs what it holds (the datapath walks its table from the cursor and stops when the
 * page is full), whatever the table holds: `next`, when present, fetches the page after.
 */
import type { FastifyPluginCallback, RawServerDefault } from 'fastify';
import { Type } from '@sinclair/typebox';
import { PolicyName } from '../../policies/model.js';
import { FlowCursorError, type SteeringEngine } from '../../steering/types.js';
import { validationError } from '../errors.js';
import { errorResponses, FlowViewBody, LinkName } from '../schemas.js';
import type { TypeBoxProvider } from '../typebox.js';

/** Also the largest page: one page is one bounded piece of work for the event loop. */
export const MAX_FLOW_PAGE = 1000;

const FlowQuery = Type.Object(
  {
    policy: Type.Optional(PolicyName),
    link: Type.Optional(LinkName),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_FLOW_PAGE, default: MAX_FLOW_PAGE })),
    after: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$', description: "the `next` of the page before" })),
  },
  { additionalProperties: false },
);

const FlowPageBody = Type.Object({
  items: Type.Array(FlowViewBody),
  next: Type.Optional(Type.String({ description: 'pass as `after` for the next page; absent on the last page' })),
});

export const flowRoutes: FastifyPluginCallback<{ engine: SteeringEngine }, RawServerDefault, TypeBoxProvider> = (app, { engine }, done) => {
  app.get('/v1/flows', {
    schema: {
      summary: 'Steered flows, a page at a time', tags: ['flows'], querystring: FlowQuery,
      response: { 200: FlowPageBody, ...errorResponses },
    },
  }, async (request) => {
    const { policy, link, limit, after } = request.query;
    try {
      return engine.flows({ ...(policy && { policy }), ...(link && { link }), ...(after && { after }), limit: limit ?? MAX_FLOW_PAGE });
    } catch (err) {
      if (err instanceof FlowCursorError) throw validationError('querystring', '/after', 'is not a cursor this agent handed out (use the `next` of a page)');
      throw err;
    }
  });
  done();
};
