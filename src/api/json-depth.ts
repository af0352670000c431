/**
 * How deep a JSON text nests, read as its bytes arrive, so that a body nesting deeper than any
 * request of this API needs is refused at the bracket that goes too deep, before it is buffered
 * whole and long before it is parsed (a 1.8 MB `[[[[…]]]]` cost the parser and the schema check
 * over a second). Only brackets outside strings count; the scan does not validate the JSON, the
 * parser does that afterwards.
 */

/** No request of this API nests deeper than 6 (a batch: body, sessions, report, request, headers). */
export const MAX_JSON_DEPTH = 16;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;

export class JsonDepthScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(readonly maxDepth = MAX_JSON_DEPTH) {}

  /** Reads the next bytes of the text; false once the nesting has gone deeper than maxDepth. */
  write(chunk: Uint8Array): boolean {
    let { depth, inString, escaped } = this;
    const max = this.maxDepth;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (inString) {
        if (escaped) escaped = false;
        else if (c === BACKSLASH) escaped = true;
        else if (c === QUOTE) inString = false;
      } else if (c === QUOTE) {
        inString = true;
      } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
        if (++depth > max) {
          this.depth = depth;
          return false;
        }
      } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
        depth--;
      }
    }
    this.depth = depth;
    this.inString = inString;
    this.escaped = escaped;
    return true;
  }
}
