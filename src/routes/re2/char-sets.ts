/**
 * ASCII character sets that RE2 defines differently from JavaScript, as code-unit ranges that can be
 * written into a JS character class. RE2's `\s` is `[\t\n\f\r ]` (no `\v`, no Unicode spaces), and
 * its POSIX classes (`[[:alpha:]]`) do not exist in JavaScript at all.
 */

export type CodeRange = readonly [number, number];

const c = (ch: string): number => ch.charCodeAt(0);
const one = (ch: string): CodeRange => [c(ch), c(ch)];
const span = (lo: string, hi: string): CodeRange => [c(lo), c(hi)];

/** RE2 `\s`. */
export const RE2_SPACE: readonly CodeRange[] = [[9, 10], [12, 13], [32, 32]];

/** RE2 / POSIX bracket classes, `[:name:]`. */
export const POSIX_CLASSES: Readonly<Record<string, readonly CodeRange[]>> = {
  alnum: [span('0', '9'), span('A', 'Z'), span('a', 'z')],
  alpha: [span('A', 'Z'), span('a', 'z')],
  ascii: [[0, 0x7f]],
  blank: [one('\t'), one(' ')],
  cntrl: [[0, 0x1f], [0x7f, 0x7f]],
  digit: [span('0', '9')],
  graph: [[0x21, 0x7e]],
  lower: [span('a', 'z')],
  print: [[0x20, 0x7e]],
  punct: [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e]],
  space: [[9, 13], [32, 32]],
  upper: [span('A', 'Z')],
  word: [span('0', '9'), span('A', 'Z'), span('a', 'z'), one('_')],
  xdigit: [span('0', '9'), span('A', 'F'), span('a', 'f')],
};

/** The ranges not in `ranges`, over the 16-bit code units a non-unicode JS regex sees. */
export function complement(ranges: readonly CodeRange[]): CodeRange[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: CodeRange[] = [];
  let next = 0;
  for (const [lo, hi] of sorted) {
    if (lo > next) out.push([next, lo - 1]);
    next = Math.max(next, hi + 1);
  }
  if (next <= 0xffff) out.push([next, 0xffff]);
  return out;
}

/** Writes a code unit so that it means itself inside a JS character class. */
export function classChar(code: number): string {
  return `\\u${code.toString(16).padStart(4, '0')}`;
}

export function rangesToClassBody(ranges: readonly CodeRange[]): string {
  return ranges.map(([lo, hi]) => (lo === hi ? classChar(lo) : `${classChar(lo)}-${classChar(hi)}`)).join('');
}
