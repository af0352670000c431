/**
 * Every error the API answers with, in one catalogue (the fastify `createError` habit): a stable
 * `code` clients and tests rely on, the HTTP status, and a message template. Messages may change
 * wording; codes never change meaning. gRPC maps the same codes onto its status codes (grpc.ts).
 *
 * Errors raised below the API (the policy store's) are not re-coded: anything carrying `code` and
 * `statusCode` is answered as it says. Anything else is a bug and answers 500 WS_API_INTERNAL with
 * a generic message; the detail goes to the log only.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { createError, WansteerError } from '../base/errors.js';
import type { RejectReason } from '../steering/types.js';

/**
 * An answer, not a bug, made with no stack (base/errors.ts `stack: false`): capturing one is the
 * costliest part of making an Error, and refusals come at an attacker's rate (a stack says
 * nothing about a 429).
 */
export abstract class ApiError extends WansteerError {
  abstract override readonly statusCode: number;
  /** For the log only, never the client (e.g. the engine's reason behind a 503). */
  detail: string | undefined;
  /** Extra response headers (Retry-After, WWW-Authenticate). */
  headers: Readonly<Record<string, string>> | undefined;

  withHeaders(headers: Readonly<Record<string, string>>): this {
    this.headers = headers;
    return this;
  }
}

export interface ApiErrorClass {
  (...args: string[]): ApiError;
  readonly code: string;
  readonly statusCode: number;
}

/** A catalogue entry: a function making the answer, its message `template` with each `%s` filled in. */
function defineError(code: string, statusCode: number, template: string): ApiErrorClass {
  const Answer = createError(code, template, { statusCode, base: ApiError, stack: false });
  return Object.assign((...args: string[]) => new Answer(...args), { code, statusCode });
}

/** Answers a code with a message made at run time (one class per code and status, made once). */
const adHoc = new Map<string, ApiErrorClass>();
function answer(code: string, statusCode: number, message: string, field?: string): ApiError {
  const key = `${code} ${statusCode}`;
  let make = adHoc.get(key);
  if (!make) adHoc.set(key, (make = defineError(code, statusCode, '%s')));
  const err = make(message);
  if (field !== undefined) err.field = field;
  return err;
}

// 4xx: the request is wrong; the message says what to fix.
export const BadRequest = defineError('WS_API_BAD_REQUEST', 400, '%s');
export const MalformedJson = defineError('WS_API_MALFORMED_JSON', 400, 'the body is not valid JSON: %s');
/** Refused while reading, before it is parsed: nesting is what makes a small body expensive. */
export const JsonTooDeep = defineError('WS_API_JSON_TOO_DEEP', 400, 'the body nests deeper than %s levels');
/** Node's HTTP parser refused the request (request line, header syntax, a PROXY header, …). */
export const MalformedRequest = defineError('WS_API_MALFORMED_REQUEST', 400, 'not a valid HTTP/1.1 request: %s');
/** Built by `validationError` (it carries `field`). */
export const VALIDATION = { code: 'WS_API_VALIDATION', statusCode: 400 } as const;
export const NameMismatch = defineError('WS_API_NAME_MISMATCH', 400, 'body name %s differs from the path name %s');
export const BadAddress = defineError('WS_API_BAD_ADDRESS', 400, '%s');
export const Unauthorized = defineError('WS_API_UNAUTHORIZED', 401, 'a valid bearer token is required');
export const WritesDisabled = defineError('WS_API_WRITES_DISABLED', 403, 'writes are disabled: the agent has no API token configured');
export const SpoofedLocal = defineError('WS_API_SPOOFED_LOCAL', 403, '%s');
export const NotFound = defineError('WS_API_NOT_FOUND', 404, '%s');
export const PreconditionFailed = defineError('WS_API_PRECONDITION_FAILED', 412, 'If-Match %s does not match the current version');
export const RequestTimeout = defineError('WS_API_REQUEST_TIMEOUT', 408, '%s');
export const PayloadTooLarge = defineError('WS_API_PAYLOAD_TOO_LARGE', 413, 'the body is over the %s byte limit');
export const UnsupportedMediaType = defineError('WS_API_UNSUPPORTED_MEDIA_TYPE', 415, 'send application/json%s');
export const PreconditionRequired = defineError('WS_API_PRECONDITION_REQUIRED', 428, 'send If-Match with the ETag you read (or * to overwrite)');
export const RateLimited = defineError('WS_API_RATE_LIMITED', 429, 'over the budget of %s session reports (or requests) per second for %s');
export const HeadersTooLarge = defineError('WS_API_HEADERS_TOO_LARGE', 431, 'the request headers are over the %s byte limit');

// 5xx: fixed messages with no detail in them; the cause is logged.
export const Internal = defineError('WS_API_INTERNAL', 500, 'internal error');
export const DatapathUnavailable = defineError('WS_API_DATAPATH_ERROR', 503, 'the datapath could not take the session');
export const NotReady = defineError('WS_API_NOT_READY', 503, 'not ready: %s');
/** Connection caps (total, per address): said before the connection is closed. */
export const TooManyConnections = defineError('WS_API_TOO_MANY_CONNECTIONS', 503, '%s');
/** The memory the agent sets aside for request bodies (or gRPC messages) in flight is taken. */
export const Overloaded = defineError('WS_API_OVERLOADED', 503, '%s');

export function validationError(where: string, field: string, message: string): ApiError {
  return answer(VALIDATION.code, VALIDATION.statusCode, `${where} ${field || '/'}: ${message}`, field || '/');
}

/** A session report the engine rejected, as an error for the single-report routes. */
export function rejectionError(reason: RejectReason, message: string): ApiError {
  switch (reason) {
    case 'bad-address':
      return BadAddress(message);
    case 'spoofed-local':
      return SpoofedLocal(message);
    case 'rate-limited':
      return answer(RateLimited.code, RateLimited.statusCode, message);
    case 'datapath-error': {
      const err = DatapathUnavailable();
      err.detail = message;
      return err;
    }
  }
}

/** Every code this catalogue defines (docs and tests list them). */
export const apiErrorCodes = [
  BadRequest, MalformedJson, JsonTooDeep, MalformedRequest, VALIDATION, NameMismatch, BadAddress, Unauthorized, WritesDisabled,
  SpoofedLocal, NotFound, RequestTimeout, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, PreconditionRequired,
  RateLimited, HeadersTooLarge, Internal, DatapathUnavailable, NotReady, TooManyConnections, Overloaded,
].map((e) => e.code);

/** The JSON every error answer carries. */
export interface ErrorBody {
  statusCode: number;
  code: string;
  error: string;
  message: string;
  field?: string;
}

const REASON: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  408: 'Request Timeout', 409: 'Conflict', 412: 'Precondition Failed', 413: 'Payload Too Large',
  415: 'Unsupported Media Type', 422: 'Unprocessable Entity', 428: 'Precondition Required', 429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error', 503: 'Service Unavailable',
};

function hasCodeAndStatus(err: unknown): err is { code: string; statusCode: number; message: string; field?: unknown } {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  return typeof e?.code === 'string' && typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode <= 599;
}

/** Turns fastify's own errors (body parsing, limits) into catalogue errors. */
function fromFastify(err: FastifyError, bodyLimit: number | undefined): ApiError | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return MalformedJson(err.message);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return PayloadTooLarge(bodyLimit === undefined ? 'configured' : String(bodyLimit));
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return UnsupportedMediaType();
  }
  // The JSON parser's own SyntaxError (fastify passes it on with statusCode 400).
  if (err instanceof SyntaxError && err.statusCode === 400) return MalformedJson(err.message);
  if (err.code?.startsWith('FST_') && err.statusCode !== undefined && err.statusCode < 500) {
    return answer(BadRequest.code, err.statusCode, err.message);
  }
  return undefined;
}

/** Answers `err` as the catalogue says: codes and 4xx messages pass through, 5xx details never do. */
export function toErrorBody(err: unknown, bodyLimit?: number): { body: ErrorBody; headers?: Readonly<Record<string, string>> } {
  const known = err instanceof ApiError ? err : fromFastify(err as FastifyError, bodyLimit) ?? err;
  if (!hasCodeAndStatus(known)) {
    return { body: { statusCode: 500, code: Internal.code, error: REASON[500]!, message: 'internal error' } };
  }
  const statusCode = known.statusCode;
  const body: ErrorBody = {
    statusCode,
    code: known.code,
    error: REASON[statusCode] ?? (statusCode < 500 ? 'Client Error' : 'Server Error'),
    // Catalogue 5xx messages are fixed text; anyone else's may carry paths or errnos.
    message: statusCode < 500 || known instanceof ApiError ? known.message : 'internal error',
  };
  // The policy store's errors name their field too (`spec.action.links`).
  if (typeof known.field === 'string' && statusCode < 500) body.field = known.field;
  if (known instanceof ApiError && known.headers) return { body, headers: known.headers };
  return { body };
}

/**
 * The one error handler: see the file comment. A request refused before its body was read
 * (rate budget, token, a limit met in mid-body) closes its connection after the answer, so the
 * rest of the body is never read.
 */
export function handleError(this: unknown, err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const { body, headers } = toErrorBody(err, request.routeOptions.bodyLimit);
  if (body.statusCode >= 500) request.log.error({ err }, 'request failed');
  else request.log.debug({ code: body.code, message: body.message }, 'request refused');
  if (headers) void reply.headers(headers);
  if (request.raw.complete === false && hasBody(request)) void reply.header('connection', 'close');
  void reply.code(body.statusCode).send(body);
}

function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return (length !== undefined && length !== '0') || request.headers['transfer-encoding'] !== undefined;
}
