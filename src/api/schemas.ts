/**
 * Wire schemas shared by the REST routes and the gRPC intake: a session report, a batch, an
 * outcome, an error. The report schema checks shape and sizes; the engine checks meaning (an
 * address that parses, the caller's own local address) and answers with a rejected outcome.
 */
import { Type, type Static } from '@sinclair/typebox';
import { PolicyAction } from '../policies/model.js';
import { RejectReasons, UnmatchedReasons } from '../steering/types.js';

/** A WAN link's name: the policy model's own schema (api/ does not reach into config/). */
export const LinkName = PolicyAction.properties.links.items;

const literals = <T extends string>(values: readonly T[]) => Type.Union(values.map((v) => Type.Literal(v)));

/** `10.0.0.5:8080` or `[fd00::5]:8080`, as Envoy writes addresses; the engine parses the numbers. */
export const EndpointAddress = Type.String({
  pattern: '^(\\[[0-9A-Fa-f:.]{2,45}\\]|[0-9.]{7,15}):[0-9]{1,5}$',
  maxLength: 53,
  description: 'ip:port, or [ipv6]:port',
});

/** Header names as Envoy hands them to Lua: lower case. */
const HeaderName = Type.String({ pattern: "^[a-z0-9!#$%&'*+.^_`|~-]+$", maxLength: 256 });
const LabelName = Type.String({ pattern: '^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$', maxLength: 317 });

export const SessionRequestBody = Type.Object(
  {
    authority: Type.String({ minLength: 1, maxLength: 1024 }),
    path: Type.String({ minLength: 1, maxLength: 8192 }),
    method: Type.String({ pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", maxLength: 32 }),
    scheme: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9+.-]*$', maxLength: 16 })),
    /** Only the headers the route rules reference; several values joined by ','. */
    headers: Type.Optional(Type.Record(HeaderName, Type.String({ maxLength: 8192 }), { maxProperties: 64, additionalProperties: false })),
    sourceNamespace: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
    sourceLabels: Type.Optional(Type.Record(LabelName, Type.String({ maxLength: 63 }), { maxProperties: 64, additionalProperties: false })),
    /** The Envoy route the proxy matched, as Istio names it (`route` or `route.match`). */
    routeName: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  },
  { additionalProperties: false },
);

export const SessionReportBody = Type.Object(
  {
    direction: literals(['inbound', 'outbound'] as const),
    protocol: Type.Optional(literals(['tcp', 'udp'] as const)),
    local: EndpointAddress,
    remote: EndpointAddress,
    request: SessionRequestBody,
  },
  { additionalProperties: false },
);
export type SessionReportBody = Static<typeof SessionReportBody>;

export function sessionBatchBody(maxBatch: number) {
  return Type.Object({ sessions: Type.Array(SessionReportBody, { minItems: 1, maxItems: maxBatch }) }, { additionalProperties: false });
}

export const FlowViewBody = Type.Object({
  protocol: Type.Union([Type.Literal('tcp'), Type.Literal('udp'), Type.Integer()]),
  src: Type.String(),
  sport: Type.Integer(),
  dst: Type.String(),
  dport: Type.Integer(),
  policy: Type.String(),
  idleSeconds: Type.Optional(Type.Number()),
});

/**
 * One report's outcome. Flat (not a union) so it serialises without trying variants:
 * steered: policy, link?, dscp?, flow; unmatched: reason, virtualService?, route?;
 * rejected: reason, message.
 */
export const SessionOutcomeBody = Type.Object({
  status: literals(['steered', 'unmatched', 'rejected'] as const),
  reason: Type.Optional(literals([...UnmatchedReasons, ...RejectReasons])),
  message: Type.Optional(Type.String()),
  policy: Type.Optional(Type.String()),
  link: Type.Optional(LinkName),
  dscp: Type.Optional(Type.Integer()),
  flow: Type.Optional(FlowViewBody),
  virtualService: Type.Optional(Type.String()),
  route: Type.Optional(Type.String()),
});

export const BatchResultBody = Type.Object({
  outcomes: Type.Array(SessionOutcomeBody),
  steered: Type.Integer(),
  unmatched: Type.Integer(),
  rejected: Type.Integer(),
});

export const ErrorBodySchema = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String({ description: 'stable error code, e.g. WS_API_VALIDATION' }),
  error: Type.String(),
  message: Type.String(),
  field: Type.Optional(Type.String({ description: 'JSON pointer of the offending field' })),
});

/** Error answers every route may give. */
export const errorResponses = { '4xx': ErrorBodySchema, '5xx': ErrorBodySchema } as const;
