/**
 * Every HTTP request is charged to its caller's rate budget (the intake's token bucket, one
 * token a session report) before its body is read or parsed, refused ones included: one token,
 * or one per REPORT_BYTES of the body it declares, whichever is more. A caller who sends bodies
 * that are refused (bad JSON, too deep, a schema error) so pays for the bytes it made the agent
 * read, and runs out of budget as fast as one who sends valid reports.
 *
 * The intake then charges a batch the reports it holds beyond what was paid (intake.ts), so a
 * valid batch of n reports costs n tokens, as before.
 */
import type { onRequestHookHandler } from 'fastify';
import { callerAddress } from './caller.js';
import { REPORT_BYTES, type SessionIntake } from './intake.js';

const paid = new WeakMap<object, number>();
/** The route's body limit, where the hook read it (routeOptions builds an object on every read). */
const limits = new WeakMap<object, number>();

/** Tokens for a body of `bytes`: at least one, for the request itself. */
export function tokensFor(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / REPORT_BYTES));
}

/** Tokens `request` has paid so far. */
export function prepaidTokens(request: object): number {
  return paid.get(request) ?? 0;
}

/** The body limit of `request`'s route, as the hook found it (undefined if it did not look). */
export function knownBodyLimit(request: object): number | undefined {
  return limits.get(request);
}

/** Charges `tokens` more to `request` (a body without Content-Length, as it arrives); false: over budget. */
export function chargeMore(intake: SessionIntake, request: { raw: object; socket: { remoteAddress?: string } }, tokens: number): boolean {
  if (!intake.limiter.take(callerAddress(request.socket.remoteAddress), tokens)) return false;
  paid.set(request.raw, prepaidTokens(request.raw) + tokens);
  return true;
}

/** The root onRequest hook. Routes with `config.intake` count a refusal as one rate-limited report. */
export function chargeBeforeParsing(intake: SessionIntake): onRequestHookHandler {
  return function charge(request, _reply, done) {
    const caller = callerAddress(request.socket.remoteAddress);
    const length = request.headers['content-length'];
    let declared = 0;
    if (length !== undefined) {
      // routeOptions is a getter that builds an object: read once, and only when there is a body to price.
      const bodyLimit = request.routeOptions.bodyLimit;
      if (bodyLimit !== undefined) limits.set(request.raw, bodyLimit);
      declared = Math.min(Number(length) || 0, bodyLimit ?? Infinity);
    }
    const tokens = tokensFor(declared);
    if (intake.limiter.take(caller, tokens)) {
      paid.set(request.raw, tokens);
      return done();
    }
    if ((request.routeOptions.config as { intake?: boolean } | undefined)?.intake) intake.countRateLimited('http');
    done(intake.rateLimited(caller, tokens));
  };
}
