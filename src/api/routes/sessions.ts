/**
 * Session intake over HTTP: what the Envoy Lua filter calls. No bearer token (a sidecar cannot
 * hold one); the engine's spoof check is the protection, with the socket's remote address as
 * the caller.
 *
 *   POST /v1/sessions        one report  -> 200 its outcome; a rejected report is a 4xx error
 *   POST /v1/sessions:batch  {sessions}  -> 200 one outcome per report, in order, and counts
 *
 * Bodies are read by json-body.ts (as one Buffer, refused early when too deep or too large),
 * and 200 answers are written by outcome-json.ts: a batch's body and answer are ~200 KB each,
 * and as strings both would be large objects in V8's heap, promoted to the old generation by
 * the first scavenge that finds them alive and kept there until the next full GC. As Buffers
 * their bytes live outside the heap and go as soon as the batch is done.
 *
 * The request paid its caller's rate budget before its body was read (request-cost.ts); the
 * intake charges what the reports cost beyond that.
 */
import type { FastifyPluginCallback, FastifyReply, RawServerDefault } from 'fastify';
import type { SessionReport } from '../../steering/types.js';
import { callerAddress } from '../caller.js';
import { rejectionError } from '../errors.js';
import type { SessionIntake } from '../intake.js';
import { batchResultJson, JSON_CONTENT_TYPE, outcomeJson } from '../outcome-json.js';
import { prepaidTokens } from '../request-cost.js';
import { BatchResultBody, errorResponses, sessionBatchBody, SessionOutcomeBody, SessionReportBody } from '../schemas.js';
import type { TypeBoxProvider } from '../typebox.js';

export interface SessionRoutesOptions {
  intake: SessionIntake;
  maxBatch: number;
  /** Body limits in bytes. */
  reportBytes: number;
  batchBytes: number;
}

/** When each request arrived (monotonic ns): report-to-datapath latency runs from here. */
const arrivals = new WeakMap<object, bigint>();
const receivedAt = (request: object): bigint | undefined => arrivals.get(request);

export const sessionRoutes: FastifyPluginCallback<SessionRoutesOptions, RawServerDefault, TypeBoxProvider> = (app, opts, done) => {
  const { intake } = opts;
  app.addHook('onRequest', (request, _reply, next) => {
    arrivals.set(request, process.hrtime.bigint());
    next();
  });

  app.post(
    '/v1/sessions',
    {
      bodyLimit: opts.reportBytes,
      config: { intake: true },
      schema: {
        summary: 'Report one session',
        tags: ['sessions'],
        body: SessionReportBody,
        response: { 200: SessionOutcomeBody, ...errorResponses },
      },
    },
    async (request, reply) => {
      const caller = callerAddress(request.socket.remoteAddress);
      const outcome = intake.report([request.body as SessionReport], caller, 'http', receivedAt(request), prepaidTokens(request.raw))[0]!;
      if (outcome.status === 'rejected') throw rejectionError(outcome.reason, outcome.message);
      return sendJson(reply, outcomeJson(outcome));
    },
  );

  // `::` is fastify's escape for a literal colon (AIP-136 custom method).
  app.post(
    '/v1/sessions::batch',
    {
      bodyLimit: opts.batchBytes,
      config: { intake: true },
      schema: {
        summary: 'Report many sessions in one call',
        tags: ['sessions'],
        body: sessionBatchBody(opts.maxBatch),
        response: { 200: BatchResultBody, ...errorResponses },
      },
    },
    async (request, reply) => {
      const caller = callerAddress(request.socket.remoteAddress);
      const outcomes = intake.report(request.body.sessions as SessionReport[], caller, 'http', receivedAt(request), prepaidTokens(request.raw));
      let steered = 0;
      let rejected = 0;
      for (let i = 0; i < outcomes.length; i++) {
        const s = outcomes[i]!.status;
        if (s === 'steered') steered++;
        else if (s === 'rejected') rejected++;
      }
      return sendJson(reply, batchResultJson({ outcomes, steered, unmatched: outcomes.length - steered - rejected, rejected }));
    },
  );

  done();
};

/** Send an answer already written as JSON bytes; the route's response schema still documents it. */
function sendJson(reply: FastifyReply, bytes: Buffer): FastifyReply {
  return reply.type(JSON_CONTENT_TYPE).send(bytes);
}
