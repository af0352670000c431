/**
 * Session intake over gRPC (proto/wansteer/v1/intake.proto): the same reports, schema, rate
 * limit, spoof check and counts as HTTP, through the same SessionIntake. The caller is the
 * connection's peer address.
 *
 * ReportStream is the high-rate path: reports are checked as they arrive and handed to the
 * engine in batches, when `streamBatch` have gathered or `streamFlushMs` after the first of a
 * batch arrived, whichever is first. (Waiting for the event loop to turn is not enough: grpc-js
 * hands a stream's messages over one per turn.) At high rates batches fill before the timer; at
 * low rates a report waits at most `streamFlushMs`.
 *
 * The listener and every call are bounded (grpc-listener.ts, grpc-calls.ts): connections,
 * streams, message size, memory held by partial messages, a deadline for each message, a rate
 * budget token per call.
 *
 * proto3 sends no presence for a string: a client that writes `protocol: ""` (protobufjs does)
 * means the default. Empty optional strings are read as absent, so `""` is tcp, as the .proto says.
 */
import { type Logger } from '../base/logger.js';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Registry } from 'prom-client';
import type { SessionOutcome, SessionReport, SteeringEngine } from '../steering/types.js';
import { grpcPeerAddress } from './caller.js';
import { rejectionError, toErrorBody } from './errors.js';
import { guardCalls } from './grpc-calls.js';
import { DEFAULT_GRPC_LIMITS, grpcServerOptions, listenGrpc, type GrpcLimits } from './grpc-listener.js';
import { defaultBatchBytes, SessionIntake, type IntakeLimits } from './intake.js';
import { sessionBatchBody, SessionReportBody } from './schemas.js';
import { compileChecker } from './typebox.js';

const PROTO = 'proto/wansteer/v1/intake.proto';

/** Field names camelCase (the REST JSON's), 64-bit numbers as JS numbers, unset fields absent. */
export const protoLoaderOptions: protoLoader.Options = { keepCase: false, longs: Number, enums: String, defaults: false, oneofs: true };

/** The .proto's path, from src/ under tsx or from dist/. */
export function intakeProtoPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, PROTO);
    if (existsSync(candidate)) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error(`wansteer: cannot find ${PROTO}`);
    dir = up;
  }
}

/** The loaded package, for servers and clients: `loadIntakeProto().wansteer.v1.SessionIntake`. */
export function loadIntakeProto(): grpc.GrpcObject {
  return grpc.loadPackageDefinition(protoLoader.loadSync(intakeProtoPath(), protoLoaderOptions));
}

export interface GrpcIntakeOptions {
  engine: SteeringEngine;
  /** host:port or [v6]:port; port 0 picks one. */
  listen: string;
  /** The `intake` section of the agent config. */
  config: { intake: IntakeLimits };
  /** The HTTP app's SessionIntake, so both transports share one rate limit per client. */
  sessions?: SessionIntake;
  /** Where the intake counters go when `sessions` is not given. */
  registry?: Registry;
  logger?: Logger;
  /** Largest message in bytes (default as the HTTP batch body limit). */
  maxMessageBytes?: number;
  /** Reports per engine call on a stream (default 256, at most intake.maxBatch). */
  streamBatch?: number;
  /** Longest a stream's report waits for its batch to fill, in ms (default 1). */
  streamFlushMs?: number;
  /** Connection caps, streams, read slots, deadlines (grpc-listener.ts). */
  limits?: Partial<GrpcLimits>;
}

export interface GrpcIntake {
  readonly port: number;
  /** Open connections (tests and the abuse benchmark read them). */
  readonly connections: { readonly connections: number };
  /** Stops accepting, lets calls in flight finish for up to `graceMs` (default 5 s), then cuts them. */
  close(graceMs?: number): Promise<void>;
}

/** The gRPC status for an HTTP status of the catalogue. */
export function grpcStatusFor(httpStatus: number): grpc.status {
  switch (httpStatus) {
    case 400: case 413: case 415: case 422: return grpc.status.INVALID_ARGUMENT;
    case 401: return grpc.status.UNAUTHENTICATED;
    case 403: return grpc.status.PERMISSION_DENIED;
    case 404: return grpc.status.NOT_FOUND;
    case 409: return grpc.status.ALREADY_EXISTS;
    case 412: case 428: return grpc.status.FAILED_PRECONDITION;
    case 429: return grpc.status.RESOURCE_EXHAUSTED;
    case 503: return grpc.status.UNAVAILABLE;
    default: return grpc.status.INTERNAL;
  }
}

/** A catalogue error as a gRPC error: the code (and field) in the trailing metadata, the message in details. */
function toGrpcError(err: unknown, logger: Logger | undefined): grpc.ServiceError {
  const { body } = toErrorBody(err);
  if (body.statusCode >= 500) logger?.error({ err }, 'grpc intake call failed');
  const metadata = new grpc.Metadata();
  metadata.set('ws-error-code', body.code);
  if (body.field !== undefined) metadata.set('ws-error-field', body.field);
  return Object.assign(new Error(body.message), { code: grpcStatusFor(body.statusCode), details: body.message, metadata });
}

/** Optional strings proto3 cannot send as absent: empty means not given. */
const OPTIONAL_STRINGS = ['protocol'] as const;
const OPTIONAL_REQUEST_STRINGS = ['scheme', 'sourceNamespace'] as const;

/** `report` with proto3's empty optional strings removed (a copy when there are any). */
export function withoutProtoDefaults(report: SessionReport): SessionReport {
  const r = report as unknown as Record<string, unknown> & { request?: Record<string, unknown> };
  const emptyTop = OPTIONAL_STRINGS.filter((k) => r[k] === '');
  const emptyRequest = r.request ? OPTIONAL_REQUEST_STRINGS.filter((k) => r.request![k] === '') : [];
  if (emptyTop.length === 0 && emptyRequest.length === 0) return report;
  const out: Record<string, unknown> = { ...r };
  for (const k of emptyTop) delete out[k];
  if (emptyRequest.length > 0) {
    const request = { ...r.request };
    for (const k of emptyRequest) delete request[k];
    out.request = request;
  }
  return out as unknown as SessionReport;
}

interface StreamSummary {
  received: number;
  steered: number;
  unmatched: number;
  rejected: number;
  rejectedByReason: Record<string, number>;
  firstError?: string;
}

export async function startGrpc(options: GrpcIntakeOptions): Promise<GrpcIntake> {
  const { engine, logger } = options;
  const { maxBatch } = options.config.intake;
  const intake = options.sessions ?? SessionIntake.create(engine, options.config.intake, options.registry);
  const checkReport = compileChecker(SessionReportBody, 'report');
  const checkBatch = compileChecker(sessionBatchBody(maxBatch), 'batch');
  const streamBatch = Math.max(1, Math.min(options.streamBatch ?? 256, maxBatch));
  const streamFlushMs = options.streamFlushMs ?? 1;
  const maxMessageBytes = options.maxMessageBytes ?? defaultBatchBytes(maxBatch);
  const limits = { ...DEFAULT_GRPC_LIMITS, ...options.limits };

  const service = (loadIntakeProto().wansteer as grpc.GrpcObject).v1 as grpc.GrpcObject;
  const definition = (service.SessionIntake as grpc.ServiceClientConstructor).service;

  // Each call paid one token of its caller's budget at its start (grpc-calls.ts).
  const report: grpc.handleUnaryCall<SessionReport, { outcome: SessionOutcome }> = (call, callback) => {
    const receivedAtNs = process.hrtime.bigint();
    try {
      const message = withoutProtoDefaults(call.request);
      const invalid = checkReport(message);
      if (invalid) {
        intake.countInvalid('grpc');
        return callback(toGrpcError(invalid, logger));
      }
      const outcome = intake.report([message], grpcPeerAddress(call.getPeer()), 'grpc', receivedAtNs, 1)[0]!;
      if (outcome.status === 'rejected') return callback(toGrpcError(rejectionError(outcome.reason, outcome.message), logger));
      callback(null, { outcome });
    } catch (err) {
      callback(toGrpcError(err, logger));
    }
  };

  const reportBatch: grpc.handleUnaryCall<{ sessions: SessionReport[] }, object> = (call, callback) => {
    const receivedAtNs = process.hrtime.bigint();
    try {
      const batch = { ...call.request, sessions: call.request.sessions?.map(withoutProtoDefaults) };
      const invalid = checkBatch(batch);
      if (invalid) {
        intake.countInvalid('grpc', call.request.sessions?.length ?? 1);
        return callback(toGrpcError(invalid, logger));
      }
      const outcomes = intake.report(batch.sessions, grpcPeerAddress(call.getPeer()), 'grpc', receivedAtNs, 1);
      let steered = 0;
      let rejected = 0;
      for (const o of outcomes) {
        if (o.status === 'steered') steered++;
        else if (o.status === 'rejected') rejected++;
      }
      callback(null, { outcomes, steered, unmatched: outcomes.length - steered - rejected, rejected });
    } catch (err) {
      callback(toGrpcError(err, logger));
    }
  };

  const reportStream: grpc.handleClientStreamingCall<SessionReport, StreamSummary> = (call, callback) => {
    const caller = grpcPeerAddress(call.getPeer());
    const summary: StreamSummary = { received: 0, steered: 0, unmatched: 0, rejected: 0, rejectedByReason: {} };
    const reject = (reason: string, n: number) => {
      summary.rejected += n;
      summary.rejectedByReason[reason] = (summary.rejectedByReason[reason] ?? 0) + n;
    };
    let pending: SessionReport[] = [];
    /** The call's own token (paid at its start) covers its first report. */
    let prepaid = 1;
    /** When the oldest report in `pending` arrived: its latency is the batch's worst. */
    let pendingSince = 0n;
    let timer: NodeJS.Timeout | undefined;
    let failed: unknown;
    let answered = false;
    const answer = (err: unknown) => {
      if (answered) return;
      answered = true;
      if (err !== undefined) callback(toGrpcError(err, logger));
      else callback(null, summary);
    };

    const flush = () => {
      if (timer !== undefined) {
        clearTimeout(timer);
        timer = undefined;
      }
      if (pending.length === 0 || failed !== undefined) return;
      const batch = pending;
      pending = [];
      try {
        const { outcomes, limited } = intake.reportAdmitting(batch, caller, 'grpc', pendingSince, prepaid);
        prepaid = 0;
        if (limited > 0) reject('rate-limited', limited);
        for (const o of outcomes) {
          if (o.status === 'steered') summary.steered++;
          else if (o.status === 'unmatched') summary.unmatched++;
          else reject(o.reason, 1);
        }
      } catch (err) {
        failed = err;
        answer(err);
      }
    };

    call.on('data', (received: SessionReport) => {
      if (failed !== undefined) return;
      summary.received++;
      const message = withoutProtoDefaults(received);
      const invalid = checkReport(message);
      if (invalid) {
        intake.countInvalid('grpc');
        reject('invalid', 1);
        summary.firstError ??= invalid.message;
        return;
      }
      if (pending.length === 0) pendingSince = process.hrtime.bigint();
      pending.push(message);
      if (pending.length >= streamBatch) flush();
      else timer ??= setTimeout(flush, streamFlushMs);
    });
    call.on('end', () => {
      flush();
      answer(failed);
    });
    // A cancelled stream: what arrived was valid, so it still goes to the engine.
    call.on('error', () => flush());
  };

  const server = new grpc.Server({ ...grpcServerOptions(limits, maxMessageBytes), interceptors: [guardCalls(intake, limits)] });
  server.addService(definition, { report, reportBatch, reportStream });
  // A caller whose budget cannot pay for a call (or the ask it was last refused) is turned away as it connects.
  const listener = await listenGrpc(server, options.listen, limits, (caller) => intake.turnAway(caller));

  return {
    port: listener.port,
    connections: listener.connections,
    close: async (graceMs = 5_000) => {
      // Stop accepting now; the listener is closed once grpc-js has let go of its connections.
      const closed = listener.close();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await closed;
    },
  };
}
