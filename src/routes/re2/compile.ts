/**
 * Compiles an RE2 pattern to a JavaScript RegExp that answers Envoy's question: does the regex
 * match the *whole* value (Envoy's `safe_regex` is a full match, not a search)?
 */
import { setFlagsFromString } from 'node:v8';
import { InvalidRegexError } from '../errors.js';
import { translateRe2 } from './translate.js';

let linearFallbackEnabled = false;

/**
 * RE2 runs in linear time; V8's default engine backtracks, and a pattern such as `(a+)+` against a
 * hostile header value could stall the agent for minutes. V8 can switch a regex to its linear-time
 * engine once backtracking gets excessive; that is off by default, so we turn it on before the
 * first route regex is compiled. It applies to regexes without look-arounds, back-references and
 * the `u` flag, which is exactly what translateRe2 produces.
 */
export function enableLinearRegexFallback(): void {
  if (linearFallbackEnabled) return;
  setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
  linearFallbackEnabled = true;
}

/** Validation and every table rebuild compile the same patterns; a RegExp without g/y is stateless. */
const cache = new Map<string, RegExp>();
const CACHE_LIMIT = 10_000;

export function compileRe2FullMatch(pattern: string): RegExp {
  let re = cache.get(pattern);
  if (re === undefined) {
    re = compileUncached(pattern);
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(pattern, re);
  }
  return re;
}

function compileUncached(pattern: string): RegExp {
  enableLinearRegexFallback();
  const { source, flags } = translateRe2(pattern);
  try {
    return new RegExp(`^(?:${source})$`, flags);
  } catch (err) {
    // The translator should have caught everything RE2 rejects; V8 has the last word.
    throw new InvalidRegexError(JSON.stringify(pattern), (err as Error).message);
  }
}
