/**
 * The one error base and the one factory every part of wansteer defines its errors with (the
 * fastify `createError` habit): a stable `code` that logs, metrics, tests and API clients rely
 * on, an HTTP status where the error is an answer to a request, the field it is about, and a
 * message template. Messages may change wording; codes never change meaning.
 *
 *   export const FileReadError = createError('WS_ROUTES_FILE_READ', 'cannot read: %s');
 *   export const PolicyExistsError = createError('WS_POLICY_EXISTS', 'policy %s already exists', { statusCode: 409, base: PolicyError });
 *   throw new FileReadError(reason).located(path);
 *
 * Each domain keeps its own catalogue (routes/errors.ts, policies/errors.ts, api/errors.ts, …);
 * this file holds only the mechanism.
 */

export abstract class WansteerError extends Error {
  abstract readonly code: string;
  /** The HTTP status the API answers with, for errors that answer a request. */
  readonly statusCode?: number;
  /** The field the error is about (`spec.action.dscp`), when it is about one. */
  field: string | undefined;

  /** Prefixes the message with where the problem is (file, object, field path); keeps the code. */
  located(where: string): this {
    this.message = `${where}: ${this.message}`;
    return this;
  }

  /** Records the field and prefixes the message with it. */
  atField(field: string): this {
    this.field = field;
    return this.located(field);
  }
}

export interface WansteerErrorClass<E extends WansteerError = WansteerError> {
  new (...args: string[]): E;
  readonly code: string;
  readonly statusCode: number | undefined;
}

export interface ErrorOptions<E extends WansteerError> {
  /** The HTTP status the API answers with. */
  statusCode?: number;
  /** A domain's own abstract base (PolicyError, ApiError), so callers can tell its errors apart. */
  base?: abstract new (message: string) => E;
  /**
   * false: capture no stack. For errors that are answers made at a caller's rate (a 429 says
   * nothing a stack would add, and capturing one is most of what making an Error costs).
   */
  stack?: boolean;
}

class PlainError extends WansteerError {
  readonly code: string = '';
}

/** Defines an error class whose message is `template` with each `%s` replaced by an argument. */
export function createError<E extends WansteerError = WansteerError>(code: string, template: string, opts: ErrorOptions<E> = {}): WansteerErrorClass<E> {
  const Base = (opts.base ?? PlainError) as unknown as abstract new (message: string) => WansteerError;
  const ErrorClass = class extends Base {
    static readonly code = code;
    static readonly statusCode = opts.statusCode;
    declare readonly code: string;
    declare readonly statusCode: number | undefined;
    constructor(...args: string[]) {
      let next = 0;
      const message = template.replace(/%s/g, () => args[next++] ?? '');
      const limit = Error.stackTraceLimit;
      if (opts.stack === false) Error.stackTraceLimit = 0;
      super(message);
      Error.stackTraceLimit = limit;
      // Plain properties: frameworks (fastify) write statusCode and friends onto errors they pass on.
      Object.assign(this, { code, statusCode: opts.statusCode });
      this.name = code;
      this.field = undefined;
    }
  };
  Object.defineProperty(ErrorClass, 'name', { value: code });
  return ErrorClass as unknown as WansteerErrorClass<E>;
}

/** An error made without a stack (see ErrorOptions.stack), for answers built at run time. */
export function withoutStack<E extends Error>(make: () => E): E {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
