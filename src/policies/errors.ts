/**
 * The policy side's error catalogue (the fastify `createError` habit): a stable `code`, the HTTP
 * status the REST API answers with, and a message template. The API maps any PolicyError to
 * `{ code, statusCode, message }`; codes never change meaning.
 */
import { createError, WansteerError, type WansteerErrorClass } from '../base/errors.js';

/** A policy error: always an answer to a request, with the HTTP status the REST API uses. */
export abstract class PolicyError extends WansteerError {
  abstract override readonly statusCode: number;
}

export type PolicyErrorClass = WansteerErrorClass<PolicyError> & { readonly statusCode: number };

/** Defines a policy error class whose message is `template` with each `%s` replaced by an argument. */
export function createPolicyError(code: string, template: string, statusCode: number): PolicyErrorClass {
  return createError(code, template, { statusCode, base: PolicyError }) as PolicyErrorClass;
}

export const PolicyNotFoundError = createPolicyError('WS_POLICY_NOT_FOUND', 'policy %s does not exist', 404);
export const PolicyExistsError = createPolicyError('WS_POLICY_EXISTS', 'policy %s already exists; replace it (PUT) or pick another name', 409);
/** A stale If-Match: someone changed the policy since the caller read it. */
export const PolicyConflictError = createPolicyError(
  'WS_POLICY_CONFLICT',
  'policy %s changed since version %s (now %s); read it again and retry with the new version',
  412,
);
/** The policy's name is not a DNS-1123 label (it is also a Kubernetes object name). */
export const PolicyNameInvalidError = createPolicyError(
  'WS_POLICY_NAME_INVALID',
  'policy name %s is not valid; fix: use lower-case letters, digits and "-", starting and ending with a letter or digit, at most 63 characters',
  400,
);
/** The spec is well-formed JSON but not a valid policy (schema or meaning). */
export const PolicyInvalidError = createPolicyError('WS_POLICY_INVALID', '%s; fix: %s', 422);
export const PolicyUnknownLinkError = createPolicyError('WS_POLICY_UNKNOWN_LINK', 'link %s is not configured on this node; fix: use one of %s', 422);
/** The policy asks for what the kind of its links cannot do (session mode on an internet link, a mix of kinds). */
export const PolicyLinkKindError = createPolicyError('WS_POLICY_LINK_KIND', '%s; fix: %s', 422);
/** Another policy already takes the same sessions (the same DSCP, or the same route). */
export const PolicyDuplicateMatchError = createPolicyError('WS_POLICY_DUPLICATE_MATCH', '%s is already matched by policy %s; fix: %s', 409);
/** The Kubernetes API refused the write for lack of RBAC permission. */
export const PolicyForbiddenError = createPolicyError('WS_POLICY_FORBIDDEN', 'the policy store refused the write: %s', 403);
/** The store cannot be read or written right now (file unreadable or broken, API server down). */
export const PolicyStoreUnavailableError = createPolicyError('WS_POLICY_STORE_UNAVAILABLE', 'the policy store is unavailable: %s', 503);

/** The policy file does not parse or holds an invalid policy (an outside edit); the last good state is kept. */
export const PolicyFileInvalidError = createPolicyError('WS_POLICY_FILE_INVALID', 'policy file %s is not valid: %s', 503);

export const policyErrorCodes = [
  PolicyNotFoundError, PolicyExistsError, PolicyConflictError, PolicyNameInvalidError, PolicyInvalidError,
  PolicyUnknownLinkError, PolicyLinkKindError, PolicyDuplicateMatchError, PolicyForbiddenError, PolicyStoreUnavailableError, PolicyFileInvalidError,
].map((e) => ({ code: e.code, statusCode: e.statusCode }));

export function isPolicyError(err: unknown): err is PolicyError {
  return err instanceof PolicyError;
}
