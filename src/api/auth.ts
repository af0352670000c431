/**
 * Bearer token for policy writes. Runs as an onRequest hook, so a write without the token is
 * refused before its body is read. The comparison hashes both sides to 32-byte SHA-256 digests
 * and compares those with `timingSafeEqual`: equal lengths whatever was sent, and no early exit
 * that would tell an attacker how much of the token matched.
 *
 * No token configured: writes are refused (403 WS_API_WRITES_DISABLED), never left open.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { onRequestHookHandler } from 'fastify';
import { Unauthorized, WritesDisabled } from './errors.js';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** True when `presented` is the token. Constant time in the token's content. */
export function tokenMatches(expected: Buffer, presented: string): boolean {
  return timingSafeEqual(expected, digest(presented));
}

/** The token from an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1];
}

const challenge = { 'www-authenticate': 'Bearer realm="wansteer"' };

/** The hook write routes add: `onRequest: requireToken(token)`. */
export function requireToken(token: string | undefined): onRequestHookHandler {
  const expected = token === undefined || token === '' ? undefined : digest(token);
  return function checkToken(request, _reply, done) {
    if (expected === undefined) return done(WritesDisabled());
    const presented = bearerToken(request.headers.authorization);
    if (presented === undefined || !tokenMatches(expected, presented)) return done(Unauthorized().withHeaders(challenge));
    done();
  };
}
