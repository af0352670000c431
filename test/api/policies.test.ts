// Proves /v1/policies: CRUD through the store, ETag / If-Match compare-and-swap, the bearer
// token on writes, and that bad input is a 4xx with its code and changes nothing.
import { describe, expect, it } from 'vitest';
import { ifMatchVersion } from '../../src/api/routes/policies.js';
import { auth, fixture, TOKEN } from './helpers/app-fixture.js';

const spec = { match: { route: { virtualService: 'default/cloud-app', route: 'boss' } }, action: { links: ['fibre', 'lte'], mode: 'redirect' } };
const markSpec = { match: { dscp: 10 }, action: { links: ['fibre'], dscp: 46, mode: 'both' } };

async function created(name = 'boss-fibre') {
  const f = fixture();
  const res = await f.app.inject({ method: 'POST', url: '/v1/policies', headers: auth, payload: { name, spec } });
  expect(res.statusCode).toBe(201);
  return { ...f, etag: res.headers.etag as string };
}

describe('policies CRUD', () => {
  it('creates with 201, Location and ETag, then lists and reads it back', async () => {
    // Proves the create/read round trip and the ETag on both answers.
    const { app, etag } = await created();
    expect(etag).toBe('"1"');
    const one = await app.inject({ url: '/v1/policies/boss-fibre' });
    expect(one.statusCode).toBe(200);
    expect(one.headers.etag).toBe(etag);
    expect(one.json()).toEqual({ name: 'boss-fibre', spec, version: '1' });
    const list = await app.inject({ url: '/v1/policies' });
    expect(list.json()).toEqual({ items: [{ name: 'boss-fibre', spec, version: '1' }] });
  });

  it('answers Location on create', async () => {
    // Proves the created resource's address is given.
    const { app } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/policies', headers: auth, payload: { name: 'voice', spec: markSpec } });
    expect(res.headers.location).toBe('/v1/policies/voice');
  });

  it('answers an unknown policy with 404 WS_POLICY_NOT_FOUND', async () => {
    // Proves a read of a missing name has the same code as a write of one (the store's).
    const { app } = fixture();
    const res = await app.inject({ url: '/v1/policies/nope' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'WS_POLICY_NOT_FOUND' });
  });

  it('replaces with the current ETag and answers the new one', async () => {
    // Proves If-Match with the current version goes through and the version moves on.
    const { app, etag } = await created();
    const res = await app.inject({ method: 'PUT', url: '/v1/policies/boss-fibre', headers: { ...auth, 'if-match': etag }, payload: { spec: markSpec } });
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('"2"');
    expect(res.json().spec).toEqual(markSpec);
  });

  it('refuses a stale If-Match with 412 from the store and changes nothing', async () => {
    // Proves the lost-update guard: a second writer with the old ETag is refused.
    const { app, store, etag } = await created();
    await app.inject({ method: 'PUT', url: '/v1/policies/boss-fibre', headers: { ...auth, 'if-match': etag }, payload: { spec: markSpec } });
    const stale = await app.inject({ method: 'PUT', url: '/v1/policies/boss-fibre', headers: { ...auth, 'if-match': etag }, payload: { spec } });
    expect(stale.statusCode).toBe(412);
    expect(stale.json()).toMatchObject({ code: 'WS_POLICY_CONFLICT' });
    expect(store.get('boss-fibre')?.spec).toEqual(markSpec);
  });

  it('requires If-Match on PUT (428) and takes * as a deliberate overwrite', async () => {
    // Proves the If-Match policy: missing is 428 WS_API_PRECONDITION_REQUIRED, * replaces whatever is there.
    const { app } = await created();
    const missing = await app.inject({ method: 'PUT', url: '/v1/policies/boss-fibre', headers: auth, payload: { spec: markSpec } });
    expect(missing.statusCode).toBe(428);
    expect(missing.json()).toMatchObject({ code: 'WS_API_PRECONDITION_REQUIRED' });
    const star = await app.inject({ method: 'PUT', url: '/v1/policies/boss-fibre', headers: { ...auth, 'if-match': '*' }, payload: { spec: markSpec } });
    expect(star.statusCode).toBe(200);
  });

  it('refuses a body name that differs from the path', async () => {
    // Proves PUT cannot rename by accident.
    const { app, etag } = await created();
    const res = await app.inject({ method: 'PUT', url: '/v1/policies/boss-fibre', headers: { ...auth, 'if-match': etag }, payload: { name: 'other', spec } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'WS_API_NAME_MISMATCH' });
  });

  it('deletes with or without If-Match, and refuses a stale one', async () => {
    // Proves DELETE's optional If-Match: stale is 412 and keeps the policy, current or absent deletes.
    const { app, store, etag } = await created();
    const stale = await app.inject({ method: 'DELETE', url: '/v1/policies/boss-fibre', headers: { ...auth, 'if-match': '"99"' } });
    expect(stale.statusCode).toBe(412);
    expect(store.get('boss-fibre')).toBeDefined();
    const ok = await app.inject({ method: 'DELETE', url: '/v1/policies/boss-fibre', headers: { ...auth, 'if-match': etag } });
    expect(ok.statusCode).toBe(204);
    expect(store.get('boss-fibre')).toBeUndefined();
    await app.inject({ method: 'POST', url: '/v1/policies', headers: auth, payload: { name: 'voice', spec: markSpec } });
    expect((await app.inject({ method: 'DELETE', url: '/v1/policies/voice', headers: auth })).statusCode).toBe(204);
    expect((await app.inject({ method: 'DELETE', url: '/v1/policies/voice', headers: auth })).statusCode).toBe(404);
  });

  it('reads If-Match lists, weak tags and * as RFC 9110 writes them', () => {
    // Proves the header parsing: the current tag in a list wins, only an unquoted * means any,
    // weak tags never match (strong comparison), anything that is not a list of tags is refused.
    expect(ifMatchVersion('"3", "7"', '7')).toBe('7');
    expect(ifMatchVersion('"3","7"', '8')).toBe('3');
    expect(ifMatchVersion('W/"5", "5"', '5')).toBe('5');
    expect(ifMatchVersion('*', '5')).toBeUndefined();
    expect(ifMatchVersion('"*"', '5')).toBe('*');
    expect(() => ifMatchVersion('W/"5"', '5')).toThrow(expect.objectContaining({ code: 'WS_API_PRECONDITION_FAILED', statusCode: 412 }));
    expect(() => ifMatchVersion(' , ', '5')).toThrow(/no entity tag/);
    for (const bad of ['5', '"5', '"5" "6"', 'W/5']) expect(() => ifMatchVersion(bad, '5')).toThrow(expect.objectContaining({ code: 'WS_API_BAD_REQUEST' }));
  });

  it.each([
    ['a weak tag of the current version', 'W/"1"', 'WS_API_PRECONDITION_FAILED'],
    ['a quoted "*"', '"*"', 'WS_POLICY_CONFLICT'],
  ])('refuses If-Match with %s (412) and changes nothing', async (_what, header, code) => {
    // Proves If-Match compares strongly over HTTP: neither form replaces the policy.
    const { app, store } = await created();
    const res = await app.inject({ method: 'PUT', url: '/v1/policies/boss-fibre', headers: { ...auth, 'if-match': header }, payload: { spec: markSpec } });
    expect(res.statusCode).toBe(412);
    expect(res.json()).toMatchObject({ code });
    expect(store.get('boss-fibre')?.spec).toEqual(spec);
  });
});

describe('policy writes need the bearer token', () => {
  it.each([
    ['no Authorization header', {}],
    ['a wrong token of the same length', { authorization: `Bearer ${'x'.repeat(TOKEN.length)}` }],
    ['a wrong token of another length', { authorization: 'Bearer short' }],
    ['another scheme', { authorization: `Basic ${TOKEN}` }],
  ])('refuses %s with 401 WS_API_UNAUTHORIZED and stores nothing', async (_what, headers) => {
    // Proves each way of not holding the token is refused the same way (the digest compare runs for any length).
    const { app, store } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/policies', headers, payload: { name: 'boss-fibre', spec } });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ code: 'WS_API_UNAUTHORIZED' });
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(store.list()).toEqual([]);
  });

  it('refuses PUT and DELETE without the token too, and lets reads through', async () => {
    // Proves every write route has the hook and no read route does.
    const { app } = await created();
    expect((await app.inject({ method: 'PUT', url: '/v1/policies/boss-fibre', headers: { 'if-match': '*' }, payload: { spec } })).statusCode).toBe(401);
    expect((await app.inject({ method: 'DELETE', url: '/v1/policies/boss-fibre' })).statusCode).toBe(401);
    expect((await app.inject({ url: '/v1/policies' })).statusCode).toBe(200);
  });

  it('refuses every write when no token is configured (403 WS_API_WRITES_DISABLED)', async () => {
    // Proves an agent without a token file is read-only, not open.
    const { app } = fixture({ token: undefined });
    const res = await app.inject({ method: 'POST', url: '/v1/policies', headers: auth, payload: { name: 'boss-fibre', spec } });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: 'WS_API_WRITES_DISABLED' });
  });

  it('checks the token before reading the body', async () => {
    // Proves an unauthenticated oversize body is a 401, not a 413: nothing is parsed for strangers.
    const { app } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/policies', payload: { name: 'x', spec, pad: 'a'.repeat(200_000) } });
    expect(res.statusCode).toBe(401);
  });
});

describe('policy input is validated', () => {
  it.each([
    ['DSCP 64 in a mark match', { name: 'voice', spec: { ...markSpec, match: { dscp: 64 } } }, '/spec/match/dscp'],
    ['DSCP 64 in the action', { name: 'voice', spec: { ...markSpec, action: { ...markSpec.action, dscp: 64 } } }, '/spec/action/dscp'],
    ['a name that is not DNS-1123', { name: 'Boss_Fibre', spec }, '/name'],
    ['an unknown mode', { name: 'x', spec: { ...spec, action: { links: ['fibre'], mode: 'teleport' } } }, '/spec/action/mode'],
    ['an unknown field', { name: 'x', spec: { ...spec, colour: 'red' } }, '/spec/colour'],
  ])('refuses %s with 400 WS_API_VALIDATION naming the field', async (_what, payload, field) => {
    // Proves the schema is checked before the store and the answer names the field.
    const { app, store } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/policies', headers: auth, payload });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'WS_API_VALIDATION', field });
    expect(store.list()).toEqual([]);
  });

  it('passes the store\'s 422 for an unknown link through with its code', async () => {
    // Proves errors with code and statusCode from below the API are answered as they say.
    const { app, store } = fixture();
    const res = await app.inject({ method: 'POST', url: '/v1/policies', headers: auth, payload: { name: 'x', spec: { ...spec, action: { links: ['satellite'], mode: 'redirect' } } } });
    expect(res.statusCode).toBe(422);
    expect(res.json()).toMatchObject({ code: 'WS_POLICY_UNKNOWN_LINK', field: 'spec.action.links', message: expect.stringContaining('satellite') });
    expect(store.list()).toEqual([]);
  });

  it('refuses malformed JSON and an oversize policy, then keeps serving', async () => {
    // Proves the parser and body-limit errors are coded 4xx on the policy routes too.
    const { app } = fixture({ limits: { policy: 2048 } });
    const bad = await app.inject({ method: 'POST', url: '/v1/policies', headers: { ...auth, 'content-type': 'application/json' }, payload: '{"name":' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'WS_API_MALFORMED_JSON' });
    const big = await app.inject({ method: 'POST', url: '/v1/policies', headers: auth, payload: { name: 'x', spec: { ...spec, description: 'd'.repeat(4000) } } });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toMatchObject({ code: 'WS_API_PAYLOAD_TOO_LARGE' });
    expect((await app.inject({ url: '/v1/policies' })).statusCode).toBe(200);
  });
});
