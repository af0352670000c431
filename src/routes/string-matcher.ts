/**
 * Istio `StringMatch` compiled into a predicate over one request value (a header, the path, a
 * query parameter). `undefined` means the value is absent, which only `present` could accept.
 */
import type { StringMatch } from './model.js';
import { compileRe2FullMatch } from './re2/compile.js';

export interface ValueMatcher {
  /** How the matcher reads in an explanation, e.g. `prefix "/reviews"`. */
  readonly describe: string;
  matches(value: string | undefined): boolean;
}

export interface StringMatchOptions {
  /** `ignoreUriCase`: exact and prefix compare ASCII case-insensitively; a regex is unaffected (Istio). */
  readonly ignoreCase?: boolean;
}

export function compileStringMatch(match: StringMatch, options: StringMatchOptions = {}): ValueMatcher {
  const fold = options.ignoreCase === true;
  if ('present' in match) {
    return { describe: 'present', matches: (v) => v !== undefined };
  }
  if ('exact' in match) {
    const want = match.exact;
    return {
      describe: `exact ${JSON.stringify(want)}${fold ? ' (ignoring case)' : ''}`,
      matches: fold
        ? (v) => v !== undefined && v.length === want.length && asciiEqualIgnoringCase(v, want, want.length)
        : (v) => v === want,
    };
  }
  if ('prefix' in match) {
    const want = match.prefix;
    return {
      describe: `prefix ${JSON.stringify(want)}${fold ? ' (ignoring case)' : ''}`,
      matches: fold
        ? (v) => v !== undefined && v.length >= want.length && asciiEqualIgnoringCase(v, want, want.length)
        : (v) => v !== undefined && v.startsWith(want),
    };
  }
  const re = compileRe2FullMatch(match.regex);
  return {
    describe: `regex ${JSON.stringify(match.regex)}`,
    matches: (v) => v !== undefined && re.test(v),
  };
}

/** Envoy's ignore-case comparison folds ASCII letters only. Compares the first `length` units. */
function asciiEqualIgnoringCase(a: string, b: string, length: number): boolean {
  for (let i = 0; i < length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 65 && x <= 90) x += 32;
    if (y >= 65 && y <= 90) y += 32;
    if (x !== y) return false;
  }
  return true;
}
