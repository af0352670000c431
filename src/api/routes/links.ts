/** GET /v1/links: each WAN link's config and live health, as the engine sees it now. */
import type { FastifyPluginCallback, RawServerDefault } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { SteeringEngine } from '../../steering/types.js';
import { errorResponses, LinkName } from '../schemas.js';
import type { TypeBoxProvider } from '../typebox.js';

export const LinkStatusBody = Type.Object({
  name: LinkName,
  interface: Type.String(),
  ifindex: Type.Union([Type.Integer(), Type.Null()]),
  up: Type.Boolean({ description: 'carrier and probes agree the link can carry traffic' }),
  activeFor: Type.Array(Type.String(), { description: 'policies whose traffic the link carries now' }),
  rttMs: Type.Optional(Type.Number()),
  lossPercent: Type.Optional(Type.Number()),
  jitterMs: Type.Optional(Type.Number()),
  reason: Type.Optional(Type.String()),
});

export const linkRoutes: FastifyPluginCallback<{ engine: SteeringEngine }, RawServerDefault, TypeBoxProvider> = (app, { engine }, done) => {
  app.get('/v1/links', {
    schema: { summary: 'WAN links and their health', tags: ['links'], response: { 200: Type.Object({ items: Type.Array(LinkStatusBody) }), ...errorResponses } },
  }, async () => ({ items: engine.links() }));
  done();
};
