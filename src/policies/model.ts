/**
 * WanPolicy: which sessions a policy takes and what the datapath does with their packets.
 * One schema (TypeBox) serves the REST API's validation, the file store, the CRD's OpenAPI
 * schema and the TypeScript type, so the four cannot disagree.
 *
 *   name: minion-to-lte
 *   match: { route: { virtualService: default/cloud-app, route: minion } }
 *   action: { links: [wan1, wan0], mode: redirect }
 *
 *   name: voice-ef
 *   match: { dscp: 10 }                       # mark mode: upstream sockets carry DSCP 10
 *   action: { links: [wan0], dscp: 46, mode: both }
 */
import { Type, type Static } from '@sinclair/typebox';
import { LinkName } from '../config/schema.js';

/** DNS-1123 label: a policy's name is also a Kubernetes object name. */
export const PolicyName = Type.String({ pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', minLength: 1, maxLength: 63 });

export const Dscp = Type.Integer({ minimum: 0, maximum: 63 });

/** Sessions that a VirtualService routes by one of its http routes. */
export const RouteMatch = Type.Object(
  {
    /** `namespace/name` of the VirtualService. */
    virtualService: Type.String({ pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$', maxLength: 317 }),
    /** The http route's `name`; or give `routeIndex`; neither: any route of the VirtualService. */
    route: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
    routeIndex: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
  },
  { additionalProperties: false },
);

export const PolicyMatch = Type.Union([
  Type.Object({ route: RouteMatch }, { additionalProperties: false }),
  /** Mark mode: packets that arrive with this DSCP (set by the upstream socket's IP_TOS). */
  Type.Object({ dscp: Dscp }, { additionalProperties: false }),
]);

/** Optional service level a link must meet to be chosen (link health, issue 6). */
export const Sla = Type.Object(
  {
    maxRttMs: Type.Optional(Type.Number({ minimum: 0, maximum: 60_000 })),
    maxLossPercent: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    maxJitterMs: Type.Optional(Type.Number({ minimum: 0, maximum: 60_000 })),
  },
  { additionalProperties: false },
);

export const PolicyAction = Type.Object(
  {
    /** Ordered preference: the first healthy link is used. Required for redirect/both. */
    links: Type.Array(LinkName, { minItems: 0, maxItems: 16, uniqueItems: true }),
    /** DSCP to set on the session's packets. Required for mark/both. */
    dscp: Type.Optional(Dscp),
    /** redirect: move to the link; mark: set the DSCP only; both. */
    mode: Type.Union([Type.Literal('redirect'), Type.Literal('mark'), Type.Literal('both')]),
    sla: Type.Optional(Sla),
  },
  { additionalProperties: false },
);

/** The user-editable part of a policy: what the REST API takes and the CRD's spec holds. */
export const WanPolicySpec = Type.Object(
  {
    match: PolicyMatch,
    action: PolicyAction,
    /** Free text for people. */
    description: Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { additionalProperties: false },
);

export type WanPolicySpec = Static<typeof WanPolicySpec>;
export type PolicyMatch = Static<typeof PolicyMatch>;
export type PolicyAction = Static<typeof PolicyAction>;
export type RouteMatch = Static<typeof RouteMatch>;
export type Sla = Static<typeof Sla>;

/** A stored policy: its name, spec, and the version the store gave it (the REST ETag). */
export interface WanPolicy {
  name: string;
  spec: WanPolicySpec;
  /** Opaque; changes on every write. File store: a counter; cluster: metadata.resourceVersion. */
  version: string;
}
