// Proves that RE2 patterns are evaluated with RE2's full-match language in V8, that what RE2
// rejects is rejected, that what V8 cannot mirror exactly is refused, and that a backtracking
// bomb cannot stall classification.
import { describe, expect, it } from 'vitest';
import { compileRe2FullMatch } from '../../src/routes/re2/compile.js';

const fullMatch = (pattern: string, value: string): boolean => compileRe2FullMatch(pattern).test(value);

describe('RE2 translated for V8', () => {
  it.each([
    // [what it proves, pattern, value, expected]
    ['a match must cover the whole value', 'v[0-9]', 'v1x', false],
    ['alternation is anchored as a whole, not per branch', 'a|ab', 'ab', true],
    ['(?P<name>…) named groups are RE2 syntax', '(?P<user>[a-z]+)', 'jason', true],
    ['\\Q…\\E quotes metacharacters', '\\Qa.b*\\E', 'a.b*', true],
    ['\\z is the end of text', 'ab\\z', 'ab', true],
    ['POSIX classes work inside brackets', '[[:digit:]]+', '2024', true],
    ['negated POSIX classes', '[[:^digit:]]+', 'abc', true],
    ['RE2 \\s has no vertical tab (JS \\s does)', '\\s', '\v', false],
    ['RE2 \\s has no non-breaking space (JS \\s does)', 'a\\sb', 'a\u00a0b', false],
    ['RE2 . matches \\r (JS . does not)', 'a.b', 'a\rb', true],
    ['. does not match \\n', 'a.b', 'a\nb', false],
    ['(?s) lets . match \\n', '(?s)a.b', 'a\nb', true],
    ['leading (?i) makes the whole pattern case-insensitive', '(?i)JaSoN', 'jason', true],
    ['] first in a class is a literal', '[]x]+', ']x]', true],
    ['{,n} is a literal in RE2', 'a{,2}', 'a{,2}', true],
    ['lazy quantifiers do not change a full match', 'a+?b', 'aaab', true],
    ['octal escapes', '\\101', 'A', true],
    ['\\x{…} escapes', '\\x{263A}', '☺', true],
    ['escaped punctuation is itself', '\\-\\#\\<', '-#<', true],
    ['an astral literal is one character for a quantifier', '😀{2}', '😀😀', true],
  ])('%s', (_what, pattern, value, expected) => {
    expect(fullMatch(pattern, value)).toBe(expected);
  });

  it.each([
    ['look-ahead', '(?=a)a'],
    ['look-behind', '(?<=a)b'],
    ['back-reference', '(a)\\1'],
    ['named back-reference', '(?P<x>a)(?P=x)'],
    ['double repetition', 'a**'],
    ['repetition without operand', '+a'],
    ['repeat count over 1000', 'a{1001}'],
    ['unclosed group', '(ab'],
    ['stray )', 'ab)'],
    ['unclosed class', '[ab'],
    ['reversed range', '[z-a]'],
    ['unknown escape', '\\y'],
    ['trailing backslash', 'ab\\'],
    ['unknown POSIX class', '[[:nope:]]'],
  ])('rejects %s like RE2 does (WS_ROUTES_INVALID_REGEX)', (_what, pattern) => {
    expect(() => compileRe2FullMatch(pattern)).toThrowError(expect.objectContaining({ code: 'WS_ROUTES_INVALID_REGEX' }));
  });

  it.each([
    ['scoped (?i:…)', 'a(?i:b)'],
    ['(?i) after the start', 'a(?i)b'],
    ['multi-line mode', '(?m)^a$'],
    ['Unicode classes', '\\p{Greek}+'],
    ['\\C', 'a\\C'],
  ])('refuses %s, which V8 cannot evaluate exactly as RE2 (WS_ROUTES_UNSUPPORTED_REGEX)', (_what, pattern) => {
    expect(() => compileRe2FullMatch(pattern)).toThrowError(expect.objectContaining({ code: 'WS_ROUTES_UNSUPPORTED_REGEX' }));
  });

  it('answers a catastrophic-backtracking pattern on a hostile value (linear-time fallback is on)', () => {
    // Without the V8 fallback this takes minutes (2^40 paths); the test timeout would fail it.
    expect(fullMatch('(a+)+', `${'a'.repeat(40)}!`)).toBe(false);
    expect(fullMatch('(x|xx)+y', 'x'.repeat(60))).toBe(false);
  }, 20_000);
});
