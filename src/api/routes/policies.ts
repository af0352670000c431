/**
 * /v1/policies: WanPolicy CRUD through the PolicyStore. Reads are open; writes need the bearer
 * token. Every policy answer carries its version as a strong ETag.
 *
 * Concurrency: PUT must send If-Match (428 without it): an edit is read-modify-write, and a
 * replace without the version it was based on would silently undo someone else's change.
 * `If-Match: *` overwrites on purpose. DELETE takes If-Match when given. A stale If-Match is
 * answered 412 by the store's conflict error, and nothing changes; so is a weak one, which never
 * matches (RFC 9110's strong comparison).
 */
import type { FastifyPluginCallback, RawServerDefault } from 'fastify';
import { Type } from '@sinclair/typebox';
import { PolicyName, WanPolicySpec, type WanPolicy } from '../../policies/model.js';
import { PolicyNotFoundError } from '../../policies/errors.js';
import type { PolicyStore } from '../../policies/store.js';
import { requireToken } from '../auth.js';
import { BadRequest, NameMismatch, PreconditionFailed, PreconditionRequired } from '../errors.js';
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

/** One entity-tag of a list (RFC 9110 §8.8.3): optional W/, a quoted opaque tag, then a comma or the end. */
const ENTITY_TAG = /[ \t]*(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(?:,|$)/y;

/**
 * The version to compare-and-swap on, from an If-Match header (RFC 9110 §13.1.1): undefined for
 * an unquoted `*` (any version), else the one listed entity tag that is current, or the first
 * (which the store then finds stale). If-Match compares strongly: a weak tag (`W/"11"`) never
 * matches, so a list of only weak tags is 412; `"*"` quoted is a tag like any other, not the
 * wildcard. Anything else is not an If-Match header: 400.
 */
export function ifMatchVersion(header: string, current: string | undefined): string | undefined {
  if (header.trim() === '*') return undefined;
  const strong: string[] = [];
  let weak = 0;
  ENTITY_TAG.lastIndex = 0;
  while (ENTITY_TAG.lastIndex < header.length) {
    const at = ENTITY_TAG.lastIndex;
    const m = ENTITY_TAG.exec(header);
    if (!m) {
      // Empty list elements (`"1", , "2"`) are allowed by the list syntax; anything else is not a tag.
      const rest = header.slice(at);
      if (rest.trim() === '') break;
      const skip = /^[ \t]*,/.exec(rest);
      if (!skip) throw BadRequest(`If-Match is not * or a list of entity tags ("1", W/"1"): ${JSON.stringify(rest.slice(0, 40))}`);
      ENTITY_TAG.lastIndex = at + skip[0].length;
      continue;
    }
    if (m[1]) weak++;
    else strong.push(m[2]!);
  }
  if (strong.length === 0) {
    if (weak > 0) throw PreconditionFailed(`${header.trim()} (weak: If-Match compares strongly, so a weak tag never matches)`);
    throw BadRequest('If-Match names no entity tag');
  }
  return current !== undefined && strong.includes(current) ? current : strong[0];
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
