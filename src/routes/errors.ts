/**
 * Every error the route-rule side can raise, in one catalogue (base/errors.ts has the mechanism):
 * a stable `code` that logs, tests and API clients can rely on, and a message template.
 */

import { createError } from '../base/errors.js';

// Sources: files and documents. The source prefixes the file name with `located()`.
export const FileReadError = createError('WS_ROUTES_FILE_READ', 'cannot read: %s');
export const FileTooLargeError = createError('WS_ROUTES_FILE_TOO_LARGE', 'file is %s bytes, over the %s byte limit');
export const YamlSyntaxError = createError('WS_ROUTES_YAML_SYNTAX', 'YAML syntax error: %s');

// Objects: shape and meaning of a VirtualService. The validator prefixes the object and field.
export const NotAVirtualServiceError = createError('WS_ROUTES_NOT_A_VIRTUAL_SERVICE', '%s');
export const UnsupportedApiVersionError = createError(
  'WS_ROUTES_UNSUPPORTED_API_VERSION',
  'apiVersion %s is not served (want networking.istio.io/v1, v1beta1 or v1alpha3)',
);
export const WrongTypeError = createError('WS_ROUTES_WRONG_TYPE', 'must be %s, got %s');
export const UnknownFieldError = createError('WS_ROUTES_UNKNOWN_FIELD', 'unknown field %s');
export const MissingFieldError = createError('WS_ROUTES_MISSING_FIELD', '%s is required');
export const InvalidValueError = createError('WS_ROUTES_INVALID_VALUE', '%s');

// Regular expressions (RE2 as Istio writes them, evaluated by V8).
export const InvalidRegexError = createError('WS_ROUTES_INVALID_REGEX', 'invalid RE2 regex %s: %s');
export const UnsupportedRegexError = createError(
  'WS_ROUTES_UNSUPPORTED_REGEX',
  'RE2 regex %s uses %s, which wansteer cannot evaluate exactly as RE2 does',
);

export const routeErrorCodes = [
  FileReadError, FileTooLargeError, YamlSyntaxError, NotAVirtualServiceError, UnsupportedApiVersionError,
  WrongTypeError, UnknownFieldError, MissingFieldError, InvalidValueError, InvalidRegexError, UnsupportedRegexError,
].map((e) => e.code);
