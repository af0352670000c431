/**
 * POST /v1/explain: what a session with this request would get, and why: the same answer as
 * `wansteer explain` (the route trace), plus the policy and link the engine would pick. Writes
 * nothing; no token needed.
 */
import type { FastifyPluginCallback, RawServerDefault } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { SteeringEngine } from '../../steering/types.js';
import { errorResponses, SessionRequestBody } from '../schemas.js';
import type { TypeBoxProvider } from '../typebox.js';

const ExplainBody = Type.Composite(
  [
    Type.Omit(SessionRequestBody, ['path', 'method']),
    Type.Object({
      path: Type.Optional(Type.String({ minLength: 1, maxLength: 8192, default: '/' })),
      method: Type.Optional(Type.String({ minLength: 1, maxLength: 32, default: 'GET' })),
      port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65_535, description: 'default: the port in authority' })),
    }),
  ],
  { additionalProperties: false },
);

export const explainRoutes: FastifyPluginCallback<{ engine: SteeringEngine; bodyBytes: number }, RawServerDefault, TypeBoxProvider> = (
  app,
  { engine, bodyBytes },
  done,
) => {
  app.post('/v1/explain', {
    bodyLimit: bodyBytes,
    schema: {
      summary: 'Explain which route and policy a request would get', tags: ['explain'], body: ExplainBody,
      response: { 200: Type.Unknown({ description: 'the route trace (as `wansteer explain --json`) and the steering decision' }), ...errorResponses },
    },
  }, async (request) => {
    const { path, method, ...rest } = request.body;
    return engine.explainSession({ ...rest, path: path ?? '/', method: method ?? 'GET' });
  });
  done();
};
