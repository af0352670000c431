/**
 * GET /v1/status: the node at a glance, as the engine sees it now — ready or what it waits for,
 * where route rules and policies come from (synced, the node's snapshot of the cluster, or still
 * waiting), each link's health and each policy's link. `wansteer status` prints it.
 *
 * Policies here are the engine's: what steers now. With the API server out of reach they are the
 * snapshot's, which GET /v1/policies (the store's) does not show until the cluster is listed.
 */
import type { FastifyPluginCallback, RawServerDefault } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Sla } from '../../policies/model.js';
import { SOURCE_STATES, type SourceStates } from '../../steering/source-states.js';
import type { SteeringEngine } from '../../steering/types.js';
import { errorResponses, LinkName } from '../schemas.js';
import type { TypeBoxProvider } from '../typebox.js';
import { LinkStatusBody } from './links.js';

const SourceState = Type.Union(SOURCE_STATES.map((s) => Type.Literal(s)));

const SourceProblemBody = Type.Object({
  failure: Type.String({ description: 'forbidden, unauthorized, not-served, server-error or unreachable' }),
  message: Type.String({ description: "the API server's own words" }),
});

const RefusedBody = Type.Object({ name: Type.String(), code: Type.String(), message: Type.String() });

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

export const StatusBody = Type.Object({
  ready: Type.Boolean(),
  waitingFor: Type.Array(Type.String()),
  sources: Type.Object({ routes: SourceState, policies: SourceState }),
  /** Why a source cannot list or watch now: a source still synced keeps its last picture meanwhile. */
  sourceProblems: Type.Object({ routes: Type.Optional(SourceProblemBody), policies: Type.Optional(SourceProblemBody) }),
  links: Type.Array(LinkStatusBody),
  policies: Type.Array(PolicyStatusBody),
  /** WanPolicies in the cluster that this node leaves out, and why. */
  refusedPolicies: Type.Array(RefusedBody),
});

type StatusSources = Pick<SourceStates, 'view'> & Partial<Pick<SourceStates, 'problems' | 'refused'>>;

export const statusRoutes: FastifyPluginCallback<{ engine: SteeringEngine; sources: StatusSources }, RawServerDefault, TypeBoxProvider> = (
  app,
  { engine, sources },
  done,
) => {
  app.get('/v1/status', {
    schema: { summary: 'The node at a glance: readiness, sources, links, policies', tags: ['status'], response: { 200: StatusBody, ...errorResponses } },
  }, async () => {
    const waitingFor = engine.waitingFor();
    return {
      ready: waitingFor.length === 0,
      waitingFor,
      sources: sources.view(),
      sourceProblems: sources.problems?.() ?? {},
      links: engine.links(),
      policies: engine.policyStatus(),
      refusedPolicies: [...(sources.refused?.() ?? [])],
    };
  });
  done();
};
