/** The Kubernetes side's error catalogue: stable codes, one place. */
import { createError } from '../routes/errors.js';

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
