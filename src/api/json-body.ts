/**
 * The HTTP API's one JSON body parser. fastify's own reads a whole body, then parses it; this
 * one reads it chunk by chunk and refuses as soon as it can tell, before the body costs memory
 * or CPU:
 *
 *   - a charset other than UTF-8: 415, before a byte is read (JSON is UTF-8, RFC 8259);
 *   - over the route's body limit, declared or as it arrives: 413;
 *   - nesting deeper than any request of this API: 400 WS_API_JSON_TOO_DEEP at that bracket;
 *   - a body without Content-Length: its bytes charged to the caller's rate budget as they
 *     arrive (request-cost.ts charged declared ones up front): 429;
 *   - beyond the first 64 KiB of each body, bytes held are counted against the listener's
 *     budget for bodies in flight: 503 WS_API_OVERLOADED when it is spent. Connections are
 *     capped (http-listener.ts), so bodies in flight hold at most caps × 64 KiB + that budget.
 *
 * A refusal in mid-body closes the connection after the answer (see errors.ts handleError), so
 * the rest of the body is never read. The bytes are parsed by fastify's own JSON parser (its
 * errors, its __proto__ rules) as a Buffer: a batch's ~200 KB as a string would be a large
 * object in V8's heap, promoted and kept until a full GC.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { callerAddress } from './caller.js';
import { BadRequest, JsonTooDeep, Overloaded, PayloadTooLarge, UnsupportedMediaType } from './errors.js';
import { REPORT_BYTES, type SessionIntake } from './intake.js';
import { JsonDepthScanner } from './json-depth.js';
import { chargeMore, knownBodyLimit, prepaidTokens } from './request-cost.js';

/** The first bytes of every body are not counted against the budget: small requests never wait on big ones. */
export const FREE_BODY_BYTES = 64 * 1024;

/** Bytes of bodies held at once, for one listener. */
export class BodyBudget {
  private held = 0;
  constructor(readonly bytes: number) {}

  /** Takes `n` bytes if they are there; takes none otherwise. */
  take(n: number): boolean {
    if (this.held + n > this.bytes) return false;
    this.held += n;
    return true;
  }

  give(n: number): void {
    this.held -= n;
  }

  get inUse(): number {
    return this.held;
  }
}

type Done = (err: Error | null, body?: unknown) => void;
type Payload = NodeJS.ReadableStream & { destroyed?: boolean };

/** Registers the parser for application/json on `app` (replacing fastify's). */
export function useJsonBodyParser(app: FastifyInstance, intake: SessionIntake, budget: BodyBudget): void {
  // fastify types its default JSON parser for strings; it parses a Buffer too (secure-json-parse takes either).
  const parse = app.getDefaultJsonParser(app.initialConfig.onProtoPoisoning ?? 'error', app.initialConfig.onConstructorPoisoning ?? 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', (request: FastifyRequest, payload: Payload, done: Done) => {
    readJsonBody(request, payload, { intake, budget }, (err, bytes) => (err ? done(err) : parse(request, bytes as never, done)));
  });
}

function readJsonBody(request: FastifyRequest, payload: Payload, ctx: { intake: SessionIntake; budget: BodyBudget }, done: (err: Error | null, bytes?: Buffer) => void): void {
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(request.headers['content-type'] ?? '')?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    return done(UnsupportedMediaType(` in UTF-8 (charset=${charset} is not read)`));
  }
  const limit = knownBodyLimit(request.raw) ?? request.routeOptions.bodyLimit ?? FREE_BODY_BYTES;
  const declared = request.headers['content-length'] === undefined ? undefined : Number(request.headers['content-length']);
  if (declared !== undefined && declared > limit) return done(PayloadTooLarge(String(limit)));

  const scanner = new JsonDepthScanner();
  const chunks: Buffer[] = [];
  let received = 0;
  let charged = 0; // bytes counted against the budget
  let finished = false;

  const finish = (err: Error | null) => {
    if (finished) return;
    finished = true;
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', onError);
    payload.removeListener('close', onClose);
    ctx.budget.give(charged);
    charged = 0;
    if (err) done(err);
    // A copy even of one chunk: the parser must not hold a view of the socket's read buffer.
    else done(null, Buffer.concat(chunks, received));
  };

  function onData(chunk: Buffer): void {
    received += chunk.length;
    if (received > limit) return finish(PayloadTooLarge(String(limit)));
    if (!scanner.write(chunk)) return finish(JsonTooDeep(String(scanner.maxDepth)));
    if (declared === undefined) {
      const owed = Math.ceil(received / REPORT_BYTES) - prepaidTokens(request.raw);
      if (owed > 0 && !chargeMore(ctx.intake, request, owed)) {
        return finish(ctx.intake.rateLimited(callerAddress(request.socket.remoteAddress), owed));
      }
    }
    const over = Math.max(0, received - FREE_BODY_BYTES) - charged;
    if (over > 0) {
      if (!ctx.budget.take(over)) return finish(Overloaded('the agent is reading as many request bodies as it holds memory for; retry later'));
      charged += over;
    }
    chunks.push(chunk);
  }
  const onEnd = () => finish(null);
  // The caller went away (or a deadline cut the request): nobody waits for this answer.
  const onError = (err: Error) => finish(BadRequest(`the body could not be read: ${err.message}`));
  const onClose = () => finish(BadRequest('the request was aborted before its body arrived'));

  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', onError);
  payload.on('close', onClose);
  payload.resume();
}
