/**
 * Reads the VirtualServices out of one YAML text (many documents, `---` separated, or a `kind: List`).
 * Pure: the directory source does the file I/O. A YAML syntax error breaks the whole text (the
 * caller keeps what it had); an invalid object only drops that object.
 */
import { parseAllDocuments } from 'yaml';
import { WansteerError } from '../base/errors.js';
import { FileTooLargeError, YamlSyntaxError } from './errors.js';
import type { VirtualService } from './model.js';
import { isOtherKind, parseVirtualService } from './validate.js';
import { isFields } from './validate-fields.js';

export const DEFAULT_MAX_FILE_BYTES = 4 * 1024 * 1024;

export interface RuleDocuments {
  readonly virtualServices: VirtualService[];
  /** Objects skipped, each with a code and a message naming document and field. */
  readonly invalid: WansteerError[];
  /** Documents of other kinds (DestinationRule, Gateway…), left alone. */
  readonly ignoredKinds: string[];
}

export interface RuleDocumentOptions {
  readonly origin: string;
  readonly defaultNamespace?: string;
  readonly maxBytes?: number;
}

/** Throws FileTooLargeError or YamlSyntaxError for the whole text; never for one bad object. */
export function parseRuleDocuments(text: string, options: RuleDocumentOptions): RuleDocuments {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
  const bytes = Buffer.byteLength(text);
  if (bytes > maxBytes) throw new FileTooLargeError(String(bytes), String(maxBytes)).located(options.origin);
  // Duplicate keys are an error, as in kubectl; toJS's maxAliasCount bounds "billion laughs" expansion.
  const docs = parseAllDocuments(text, { uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: RuleDocuments = { virtualServices: [], invalid: [], ignoredKinds: [] };
  list.forEach((doc, i) => {
    const syntax = doc.errors[0];
    if (syntax) throw new YamlSyntaxError(syntax.message.split('\n')[0]!).located(`${options.origin}#${i + 1}`);
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      throw new YamlSyntaxError((err as Error).message).located(`${options.origin}#${i + 1}`);
    }
    if (value === null || value === undefined) return;
    const items = isFields(value) && typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items) ? value.items : [value];
    items.forEach((item: unknown, j: number) => {
      const origin = items.length > 1 || item !== value ? `${options.origin}#${i + 1}.items[${j}]` : `${options.origin}#${i + 1}`;
      if (isOtherKind(item)) {
        out.ignoredKinds.push(`${origin} ${(item as { kind: string }).kind}`);
        return;
      }
      try {
        out.virtualServices.push(parseVirtualService(item, { origin, defaultNamespace: options.defaultNamespace ?? 'default' }));
      } catch (err) {
        if (!(err instanceof WansteerError)) throw err;
        out.invalid.push(err);
      }
    });
  });
  return out;
}
