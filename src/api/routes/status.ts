/**
 * GET /v1/status: the node at a glance, as the engine sees it now — ready or what it waits for,
 * where route rules and policies come from (synced, the node's snapshot of the cluster, or still
 * waiting), each link's health and each policy's link. `wansteer status` prints it.
 *
 * Policies here are the engine's: what steers now. With the API server out of reach they are the
 * snapshot's, which GET /v1/policies (the store's) does not show until the cluster is listed.
 */
import type { FastifyPluginCallback, RawServerDefault } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { Sla } from '../../policies/model.js';
import { SOURCE_STATES, type SourceStates } from '../../steering/source-states.js';
import type { SteeringEngine } from '../../steering/types.js';
import { errorResponses, LinkName } from '../schemas.js';
import type { TypeBoxProvider } from '../typebox.js';
import { LinkStatusBody } from './links.js';

const SourceState = Type.Union(SOURCE_STATES.map((s) => Type.Literal(s)));

const PolicyStatusBody = Type.Object({
  name: Type.String(),
  id: Type.Union([Type.Integer(), Type.Null()], { description: 'the policy id in the datapath tables' }),
  links: Type.Array(LinkName, { description: 'preference, as written' }),
  link: Type.Optional(LinkName),
  sla: Type.Optional(Sla),
  slaMet: Type.Optional(Type.Boolean()),
  dscp: Type.Optional(Type.Integer()),
  installed: Type.Boolean({ description: 'it has a datapath entry: its sessions get flows' }),
  reason: Type.String(),
});

const FlowTableBody = Type.Object({
  family: Type.Union([Type.Literal(4), Type.Literal(6)]),
  entries: Type.Integer(),
  maxEntries: Type.Integer({ description: 'datapath.flowTableSize: the LRU evicts beyond it' }),
  evicted: Type.Integer({ description: 'flows the LRU evicted while still active, since the agent started (at most)' }),
});

export const StatusBody = Type.Object({
  ready: Type.Boolean(),
  waitingFor: Type.Array(Type.String()),
  sources: Type.Object({ routes: SourceState, policies: SourceState }),
  links: Type.Array(LinkStatusBody),
  policies: Type.Array(PolicyStatusBody),
  flowTables: Type.Optional(Type.Array(FlowTableBody, { description: 'fill of each flow table, IPv4 and IPv6' })),
});

export const statusRoutes: FastifyPluginCallback<{ engine: SteeringEngine; sources: Pick<SourceStates, 'view'> }, RawServerDefault, TypeBoxProvider> = (
  app,
  { engine, sources },
  done,
) => {
  app.get('/v1/status', {
    schema: { summary: 'The node at a glance: readiness, sources, links, policies', tags: ['status'], response: { 200: StatusBody, ...errorResponses } },
  }, async () => {
    const waitingFor = engine.waitingFor();
    const body: Static<typeof StatusBody> = { ready: waitingFor.length === 0, waitingFor, sources: sources.view(), links: engine.links(), policies: engine.policyStatus() };
    try {
      if (engine.flowTables) body.flowTables = engine.flowTables();
    } catch {
      /* the tables could not be read: status says the rest */
    }
    return body;
  });
  done();
};
