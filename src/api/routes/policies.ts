/**
 * /v1/policies: WanPolicy CRUD through the PolicyStore. Reads are open; writes need the bearer
 * token. Every policy answer carries its version as a strong ETag.
 *
 * Concurrency: PUT must send If-Match (428 without it): an edit is read-modify-write, and a
 * replace without the version it was based on would silently undo someone else's change.
 * `If-Match: *` overwrites on purpose. DELETE takes If-Match when given. A stale If-Match is
 * answered 412 by the store's conflict error, and nothing changes.
 */
import type { FastifyPluginCallback, RawServerDefault } from 'fastify';
import { Type } from '@sinclair/typebox';
import { PolicyName, WanPolicySpec, type WanPolicy } from '../../policies/model.js';
import { PolicyNotFoundError } from '../../policies/errors.js';
import type { PolicyStore } from '../../policies/store.js';
import { requireToken } from '../auth.js';
import { BadRequest, NameMismatch, PreconditionRequired } from '../errors.js';
import { errorResponses } from '../schemas.js';
import type { TypeBoxProvider } from '../typebox.js';

export interface PolicyRoutesOptions {
  store: PolicyStore;
  token: string | undefined;
  bodyBytes: number;
}

const PolicyBody = Type.Object({
  name: PolicyName,
  spec: WanPolicySpec,
  version: Type.String({ description: 'opaque; the ETag' }),
});
const PolicyList = Type.Object({ items: Type.Array(PolicyBody) });
const NameParams = Type.Object({ name: PolicyName });
const CreateBody = Type.Object({ name: PolicyName, spec: WanPolicySpec }, { additionalProperties: false });
const ReplaceBody = Type.Object(
  { name: Type.Optional(PolicyName), spec: WanPolicySpec },
  { additionalProperties: false, description: 'name, when given, must equal the path name' },
);
const IfMatchHeaders = Type.Object({ 'if-match': Type.Optional(Type.String({ maxLength: 1024 })) });

export const etag = (version: string) => `"${version}"`;

/**
 * The version to compare-and-swap on, from an If-Match header: undefined for `*` (any), else
 * the one listed entity tag that is current, or the first (which the store then finds stale).
 */
export function ifMatchVersion(header: string, current: string | undefined): string | undefined {
  const tags = header.split(',').map((t) => t.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1')).filter((t) => t !== '');
  if (tags.length === 0) throw BadRequest('If-Match names no entity tag');
  if (tags.includes('*')) return undefined;
  return current !== undefined && tags.includes(current) ? current : tags[0];
}

const view = (p: WanPolicy) => ({ name: p.name, spec: p.spec, version: p.version });

export const policyRoutes: FastifyPluginCallback<PolicyRoutesOptions, RawServerDefault, TypeBoxProvider> = (app, opts, done) => {
  const { store } = opts;
  const writeAccess = requireToken(opts.token);

  app.get('/v1/policies', {
    schema: { summary: 'List policies', tags: ['policies'], response: { 200: PolicyList, ...errorResponses } },
  }, async () => ({ items: store.list().map(view) }));

  app.get('/v1/policies/:name', {
    schema: { summary: 'Read one policy', tags: ['policies'], params: NameParams, response: { 200: PolicyBody, ...errorResponses } },
  }, async (request, reply) => {
    const policy = store.get(request.params.name);
    if (!policy) throw new PolicyNotFoundError(request.params.name);
    void reply.header('etag', etag(policy.version));
    return view(policy);
  });

  app.post('/v1/policies', {
    onRequest: writeAccess,
    bodyLimit: opts.bodyBytes,
    schema: {
      summary: 'Create a policy', tags: ['policies'], security: [{ bearer: [] }],
      body: CreateBody, response: { 201: PolicyBody, ...errorResponses },
    },
  }, async (request, reply) => {
    const policy = await store.create(request.body.name, request.body.spec);
    void reply.code(201).header('location', `/v1/policies/${policy.name}`).header('etag', etag(policy.version));
    return view(policy);
  });

  app.put('/v1/policies/:name', {
    onRequest: writeAccess,
    bodyLimit: opts.bodyBytes,
    schema: {
      summary: 'Replace a policy (If-Match required)', tags: ['policies'], security: [{ bearer: [] }],
      params: NameParams, headers: IfMatchHeaders, body: ReplaceBody, response: { 200: PolicyBody, ...errorResponses },
    },
  }, async (request, reply) => {
    const { name } = request.params;
    if (request.body.name !== undefined && request.body.name !== name) throw NameMismatch(request.body.name, name);
    const header = request.headers['if-match'];
    if (header === undefined) throw PreconditionRequired();
    const policy = await store.replace(name, request.body.spec, ifMatchVersion(header, store.get(name)?.version));
    void reply.header('etag', etag(policy.version));
    return view(policy);
  });

  app.delete('/v1/policies/:name', {
    onRequest: writeAccess,
    schema: {
      summary: 'Delete a policy (If-Match optional)', tags: ['policies'], security: [{ bearer: [] }],
      params: NameParams, headers: IfMatchHeaders, response: { 204: Type.Null(), ...errorResponses },
    },
  }, async (request, reply) => {
    const header = request.headers['if-match'];
    const { name } = request.params;
    await store.delete(name, header === undefined ? undefined : ifMatchVersion(header, store.get(name)?.version));
    return reply.code(204).send(null);
  });

  done();
};
