/** The Kubernetes side's error catalogue: stable codes, one place. */
import { createError } from '../base/errors.js';

export const ListFailedError = createError('WS_K8S_LIST_FAILED', 'list %s failed: %s');
export const WatchFailedError = createError('WS_K8S_WATCH_FAILED', 'watch %s failed: %s');
export const NoServedVersionError = createError('WS_K8S_NO_SERVED_VERSION', 'the API server serves none of %s (tried %s)');

/** The HTTP status of a failed API call, however the client reported it. */
export function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown; status?: unknown };
  for (const v of [e.statusCode, e.code, e.status]) if (typeof v === 'number') return v;
  return undefined;
}

/** 410 Gone: the resourceVersion we hold is too old; only a fresh list helps. */
export function isExpired(err: unknown): boolean {
  return httpStatusOf(err) === 410;
}

/**
 * Why a list, watch or write failed, in the API server's own words: the `message` of the Status
 * it answered with (`wanpolicies.wansteer.io is forbidden: User "system:serviceaccount:…"
 * cannot list resource "wanpolicies" …`), else the error's first line. client-node's ApiException
 * puts `HTTP-Code: 403` on its first line and the Status in `body`, so without this a refusal
 * would read as a bare status code.
 */
export function apiMessageOf(err: unknown): string {
  const body = (err as { body?: unknown } | null)?.body;
  const status = typeof body === 'string' ? parseJson(body) : body;
  const message = (status as { message?: unknown } | undefined)?.message;
  if (typeof message === 'string' && message !== '') return message;
  const code = httpStatusOf(err);
  const text = err instanceof Error ? err.message.split('\n')[0]! : String(err);
  // A bare status text (client-node's Watch gives only `Forbidden`): say which status it was.
  return code !== undefined && !text.includes(String(code)) ? `${text} (HTTP ${code})` : text;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined; // not JSON: a proxy's error page
  }
}

/**
 * What kind of failure a source is in, for metrics and for what a person should check: the API
 * server answered with a refusal (`unauthorized`: the credentials; `forbidden`: the RBAC), does
 * not serve the resource (`not-served`: the CRD), failed itself (`server-error`), or did not
 * answer at all (`unreachable`).
 */
export type SourceFailure = 'unauthorized' | 'forbidden' | 'not-served' | 'server-error' | 'unreachable';

export const SOURCE_FAILURES: readonly SourceFailure[] = ['unauthorized', 'forbidden', 'not-served', 'server-error', 'unreachable'];

export function failureOf(err: unknown): SourceFailure {
  if ((err as { code?: unknown } | null)?.code === NoServedVersionError.code) return 'not-served';
  const status = httpStatusOf(err) ?? (err as { status?: unknown } | null)?.status;
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not-served';
  if (typeof status === 'number' && status >= 400) return 'server-error';
  return 'unreachable';
}

/** A refusal: retrying with the same credentials cannot help until someone changes them or the RBAC. */
export function isRefusal(err: unknown): boolean {
  const failure = failureOf(err);
  return failure === 'unauthorized' || failure === 'forbidden';
}
