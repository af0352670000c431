/**
 * Translates an RE2 pattern (what Istio and Envoy accept) into JavaScript regex source with the same
 * full-match language, or refuses it with a reason.
 *
 * Why a translator and not `new RegExp(pattern)`: the two dialects disagree. Some RE2 syntax is
 * missing in JavaScript (`(?P<n>…)`, `\Q…\E`, `\z`, `[[:alpha:]]`), some JavaScript syntax is an
 * error in RE2 (look-arounds, back-references, so Istio would reject the object), and some syntax
 * means different things (`\s`, `.`). Because a route match only asks "does the whole value match",
 * greediness and capture groups do not change the answer, which keeps the translation small:
 * every group becomes non-capturing and lazy quantifiers become greedy ones.
 *
 * The output never uses the `u` flag, look-arounds or back-references, so V8 can hand it to its
 * linear-time engine when backtracking explodes (see compile.ts).
 */
import { InvalidRegexError, UnsupportedRegexError } from '../errors.js';
import { POSIX_CLASSES, RE2_SPACE, classChar, complement, rangesToClassBody } from './char-sets.js';

export interface TranslatedRegex {
  /** JavaScript regex source, not yet anchored. */
  readonly source: string;
  /** `i` when the whole pattern is case-insensitive (a leading `(?i)`), else empty. */
  readonly flags: string;
}

/** RE2 rejects repeat counts above this. */
const MAX_REPEAT = 1000;
const JS_SYNTAX = new Set('\\^$.|?*+()[]{}/');

interface GroupFlags {
  readonly dotAll: boolean;
}

export function translateRe2(pattern: string): TranslatedRegex {
  return new Translator(pattern).run();
}

class Translator {
  private pos = 0;
  private readonly out: string[] = [];
  private readonly groups: GroupFlags[] = [];
  private flags: GroupFlags = { dotAll: false };
  private ignoreCase = false;
  /** Whether the last thing emitted is an atom a quantifier may follow. */
  private quantifiable = false;
  private justQuantified = false;
  /** Whether a `?` right now would make the last quantifier lazy (`a*?`) rather than be an error. */
  private lazyAllowed = false;

  constructor(private readonly pattern: string) {}

  run(): TranslatedRegex {
    this.leadingFlags();
    while (this.pos < this.pattern.length) this.step();
    if (this.groups.length > 0) this.invalid('missing closing )');
    return { source: this.out.join(''), flags: this.ignoreCase ? 'i' : '' };
  }

  private invalid(reason: string): never {
    throw new InvalidRegexError(JSON.stringify(this.pattern), reason);
  }

  private unsupported(feature: string): never {
    throw new UnsupportedRegexError(JSON.stringify(this.pattern), feature);
  }

  /** `(?i)` (with s/U) at the very start applies to the whole pattern: JS can express that as a flag. */
  private leadingFlags(): void {
    const m = /^\(\?([isU]+)\)/.exec(this.pattern);
    if (!m || !m[1]!.includes('i')) return;
    this.ignoreCase = true;
    this.flags = { dotAll: m[1]!.includes('s') };
    this.pos = m[0].length;
  }

  private atom(js: string): void {
    this.out.push(js);
    this.quantifiable = true;
    this.justQuantified = false;
  }

  private assertion(js: string): void {
    this.out.push(js);
    this.quantifiable = false;
    this.justQuantified = false;
  }

  private step(): void {
    const ch = this.pattern[this.pos]!;
    switch (ch) {
      case '(':
        return this.openGroup();
      case ')':
        return this.closeGroup();
      case '[':
        return this.atom(this.charClass());
      case '|':
        this.pos++;
        return this.assertion('|');
      case '^':
      case '$':
        this.pos++;
        return this.assertion(ch);
      case '.':
        this.pos++;
        return this.atom(this.flags.dotAll ? '[\\s\\S]' : '[^\\n]');
      case '*':
      case '+':
      case '?':
        this.pos++;
        return this.quantifier(ch);
      case '{': {
        const repeat = /^\{(\d+)(,(\d*))?\}/.exec(this.pattern.slice(this.pos));
        if (!repeat) {
          // RE2 reads a `{` that does not start a valid repeat as a literal.
          this.pos++;
          return this.atom('\\{');
        }
        this.pos += repeat[0].length;
        return this.repeat(repeat[1]!, repeat[2] === undefined ? repeat[1]! : repeat[3]!, repeat[0]);
      }
      case '\\':
        return this.escape();
      default:
        return this.literal();
    }
  }

  private literal(): void {
    const code = this.pattern.codePointAt(this.pos)!;
    const text = String.fromCodePoint(code);
    this.pos += text.length;
    // An astral character is two code units without the `u` flag; group them so a quantifier
    // applies to the whole character, as in RE2.
    this.atom(text.length === 2 ? `(?:${text})` : escapeLiteral(text));
  }

  private quantifier(op: string): void {
    if (this.justQuantified) {
      // `a*?` is a lazy star: the same language for a full match, so the `?` is dropped.
      if (op === '?' && this.lazyAllowed) {
        this.lazyAllowed = false;
        return;
      }
      this.invalid(`bad repetition operator: ${op}`);
    }
    if (!this.quantifiable) this.invalid(`missing argument to repetition operator: ${op}`);
    this.quantified(op);
  }

  private quantified(js: string): void {
    this.out.push(js);
    this.quantifiable = false;
    this.justQuantified = true;
    this.lazyAllowed = true;
  }

  private repeat(minText: string, maxText: string, written: string): void {
    const min = Number(minText);
    const max = maxText === '' ? Infinity : Number(maxText);
    if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT) || min > max) {
      this.invalid(`invalid repeat count: ${written}`);
    }
    if (this.justQuantified) this.invalid(`bad repetition operator: ${written}`);
    if (!this.quantifiable) this.invalid(`missing argument to repetition operator: ${written}`);
    this.quantified(written);
  }

  private openGroup(): void {
    const rest = this.pattern.slice(this.pos);
    let header: RegExpExecArray | null;
    if ((header = /^\(\?P?<([A-Za-z0-9_]+)>/.exec(rest)) || (header = /^\((?!\?)/.exec(rest))) {
      this.pos += header[0].length;
    } else if (rest.startsWith('(?:')) {
      this.pos += 3;
    } else if ((header = /^\(\?(-?)([A-Za-z]*)(-?)([A-Za-z]*)([:)])/.exec(rest))) {
      return this.flagGroup(header);
    } else if (/^\(\?(=|!|<=|<!)/.test(rest)) {
      this.invalid('look-around assertions are not RE2 syntax');
    } else if (rest.startsWith('(?P=')) {
      this.invalid('back-references are not RE2 syntax');
    } else {
      this.invalid(`invalid or unsupported Perl syntax: ${rest.slice(0, 4)}`);
    }
    this.groups.push(this.flags);
    this.assertion('(?:');
  }

  /** `(?flags)` or `(?flags:re)`. Only `s` (dot matches newline) and `U` (ungreedy) can be scoped. */
  private flagGroup(header: RegExpExecArray): void {
    const [written, neg1, set1, neg2, set2, end] = header as unknown as string[];
    const set = neg1 ? '' : set1!;
    const cleared = neg1 ? set1! : neg2 ? set2! : '';
    const all = set + cleared;
    if (neg1 && (neg2 || set2)) this.invalid(`invalid flag group ${written}`);
    for (const f of all) {
      if (!'imsU'.includes(f)) this.invalid(`invalid flag ${f} in ${written}`);
    }
    if (all.includes('i')) this.unsupported('a case-insensitive flag (?i) that is not at the very start');
    if (all.includes('m')) this.unsupported('multi-line mode (?m)');
    const dotAll = set.includes('s') ? true : cleared.includes('s') ? false : this.flags.dotAll;
    this.pos += written!.length;
    if (end === ':') {
      this.groups.push(this.flags);
      this.flags = { dotAll };
      this.assertion('(?:');
    } else {
      this.flags = { dotAll };
      this.quantifiable = false;
      this.justQuantified = false;
    }
  }

  private closeGroup(): void {
    const outer = this.groups.pop();
    if (outer === undefined) this.invalid('unexpected )');
    this.pos++;
    this.flags = outer;
    this.atom(')');
  }

  private escape(): void {
    const next = this.pattern[this.pos + 1];
    if (next === undefined) this.invalid('trailing backslash at end of expression');
    if (next === 'Q') return this.quoted();
    const single = ESCAPE_ATOMS[next];
    if (single !== undefined) {
      this.pos += 2;
      return this.atom(single);
    }
    if (next === 'A' || next === 'z' || next === 'b' || next === 'B') {
      this.pos += 2;
      return this.assertion(next === 'A' ? '^' : next === 'z' ? '$' : `\\${next}`);
    }
    const code = this.escapedChar();
    this.atom(code >= 0x20 && code < 0x7f ? escapeLiteral(String.fromCharCode(code)) : classChar(code));
  }

  /** `\Q…\E`: everything between is literal. */
  private quoted(): void {
    const end = this.pattern.indexOf('\\E', this.pos + 2);
    const text = this.pattern.slice(this.pos + 2, end === -1 ? undefined : end);
    this.pos = end === -1 ? this.pattern.length : end + 2;
    if (text === '') return;
    const chars = Array.from(text);
    // Only the last character is the operand of a following quantifier, as in RE2.
    for (const ch of chars) this.atom(ch.length === 2 ? `(?:${ch})` : escapeLiteral(ch));
  }

  /** Reads an escape that stands for one character; returns its code unit. */
  private escapedChar(): number {
    const rest = this.pattern.slice(this.pos + 1);
    const ch = rest[0]!;
    let m: RegExpExecArray | null;
    if ((m = /^([0-7])([0-7]{0,2})/.exec(rest)) && (m[1] === '0' || m[2] !== '')) {
      // RE2: `\0`, `\12`, `\123` are octal; a lone `\1`..`\7` would be a back-reference.
      this.pos += 1 + m[0].length;
      return parseInt(m[0], 8);
    }
    if (/^[1-9]/.test(rest)) this.invalid('back-references are not RE2 syntax');
    if ((m = /^x\{([0-9A-Fa-f]{1,8})\}/.exec(rest)) || (m = /^x([0-9A-Fa-f]{2})/.exec(rest))) {
      const code = parseInt(m[1]!, 16);
      if (code > 0x10ffff) this.invalid(`invalid escape sequence: \\${m[0]}`);
      if (code > 0xffff) this.unsupported('an escaped character outside the Basic Multilingual Plane');
      this.pos += 1 + m[0].length;
      return code;
    }
    if (ch === 'p' || ch === 'P') this.unsupported('Unicode classes (\\p, \\P)');
    if (ch === 'C') this.unsupported('\\C (any byte)');
    const control = CONTROL_ESCAPES[ch];
    if (control !== undefined) {
      this.pos += 2;
      return control;
    }
    const code = ch.charCodeAt(0);
    if (code < 0x80 && !/[A-Za-z0-9]/.test(ch)) {
      // RE2: an escaped ASCII punctuation character is itself.
      this.pos += 2;
      return code;
    }
    this.invalid(`invalid escape sequence: \\${ch}`);
  }

  /** A bracket expression, translated item by item into one JS class. */
  private charClass(): string {
    this.pos++;
    let negated = false;
    if (this.pattern[this.pos] === '^') {
      negated = true;
      this.pos++;
    }
    const body: string[] = [];
    let first = true;
    for (;;) {
      const ch = this.pattern[this.pos];
      if (ch === undefined) this.invalid('missing closing ]');
      if (ch === ']' && !first) break;
      first = false;
      const set = this.classSet();
      if (set !== undefined) {
        body.push(set);
        continue;
      }
      const lo = this.classChar();
      if (this.pattern[this.pos] === '-' && this.pattern[this.pos + 1] !== ']' && this.pos + 1 < this.pattern.length) {
        this.pos++;
        if (this.classSet(true) !== undefined) this.invalid('invalid character class range');
        const hi = this.classChar();
        if (hi < lo) this.invalid('invalid character class range');
        body.push(`${classChar(lo)}-${classChar(hi)}`);
      } else {
        body.push(classChar(lo));
      }
    }
    this.pos++;
    return `[${negated ? '^' : ''}${body.join('')}]`;
  }

  /** A named set inside a class (`\d`, `\s`, `[:alpha:]`), or undefined if the next item is a character. */
  private classSet(peekOnly = false): string | undefined {
    const rest = this.pattern.slice(this.pos);
    const posix = /^\[:(\^?)([a-z]+):\]/.exec(rest);
    if (posix) {
      const ranges = POSIX_CLASSES[posix[2]!];
      if (!ranges) this.invalid(`invalid character class range: ${posix[0]}`);
      if (!peekOnly) this.pos += posix[0].length;
      return rangesToClassBody(posix[1] ? complement(ranges) : ranges);
    }
    const esc = /^\\([dDwWsS])/.exec(rest);
    if (!esc) return undefined;
    if (!peekOnly) this.pos += 2;
    const kind = esc[1]!;
    if (kind === 's') return rangesToClassBody(RE2_SPACE);
    if (kind === 'S') return rangesToClassBody(complement(RE2_SPACE));
    return `\\${kind}`;
  }

  /** One character inside a class, as a code unit. */
  private classChar(): number {
    if (this.pattern[this.pos] === '\\') {
      const next = this.pattern[this.pos + 1];
      if (next === 'Q' || next === 'E' || next === 'A' || next === 'z' || next === 'b' || next === 'B') {
        this.unsupported(`\\${next} inside a character class`);
      }
      return this.escapedChar();
    }
    const code = this.pattern.codePointAt(this.pos)!;
    if (code > 0xffff) this.unsupported('a character outside the Basic Multilingual Plane inside a class');
    this.pos++;
    return code;
  }
}

const ESCAPE_ATOMS: Readonly<Record<string, string>> = {
  d: '\\d',
  D: '\\D',
  w: '\\w',
  W: '\\W',
  s: `[${rangesToClassBody(RE2_SPACE)}]`,
  S: `[${rangesToClassBody(complement(RE2_SPACE))}]`,
};

const CONTROL_ESCAPES: Readonly<Record<string, number>> = { a: 7, f: 12, t: 9, n: 10, r: 13, v: 11 };

function escapeLiteral(ch: string): string {
  if (JS_SYNTAX.has(ch)) return `\\${ch}`;
  const code = ch.charCodeAt(0);
  return code < 0x20 || code === 0x7f ? classChar(code) : ch;
}
