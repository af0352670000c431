/**
 * The standalone policy file: one YAML document holding every policy, and the store's version
 * counter so versions keep rising across restarts.
 *
 *   apiVersion: wansteer.io/v1alpha1
 *   kind: WanPolicyList
 *   revision: 7                  # the last version handed out
 *   items:
 *     - name: minion-to-lte
 *       version: 7               # the policy's ETag; leave it as it is when editing by hand
 *       spec: { match: ..., action: ... }
 *
 * Parsing checks everything a write would (schema, meaning, links, no duplicate match), so a
 * file that parses holds only policies the API could have written.
 */
import { parseDocument, stringify } from 'yaml';
import { PolicyError, PolicyFileInvalidError } from './errors.js';
import type { WanPolicySpec } from './model.js';
import { validatePolicy } from './validate.js';

export const POLICY_API_VERSION = 'wansteer.io/v1alpha1';
export const POLICY_LIST_KIND = 'WanPolicyList';

export interface PolicyFileItem {
  readonly name: string;
  readonly spec: WanPolicySpec;
  /** Absent for a policy added by hand. */
  readonly version: number | undefined;
}

export interface PolicyFileContent {
  readonly revision: number;
  readonly items: readonly PolicyFileItem[];
}

/** Parses and validates the file's text; throws PolicyFileInvalidError naming the field. */
export function parsePolicyFile(text: string, path: string, links: ReadonlySet<string>, internetLinks?: ReadonlySet<string>): PolicyFileContent {
  const fail = (field: string, reason: string): never => {
    throw new PolicyFileInvalidError(path, field ? `${field}: ${reason}` : reason);
  };
  if (text.trim() === '') return { revision: 0, items: [] };
  const document = parseDocument(text, { prettyErrors: true });
  if (document.errors.length > 0) fail('', `YAML syntax: ${document.errors[0]!.message.split('\n')[0]!}`);
  let root: unknown;
  try {
    // maxAliasCount bounds "billion laughs" expansion: yaml throws instead of building it.
    root = document.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return fail('', `YAML: ${(err as Error).message}`);
  }
  if (!isRecord(root)) return fail('', 'the top level is not a mapping; it must hold apiVersion, kind, revision and items');
  if (root.apiVersion !== POLICY_API_VERSION) fail('apiVersion', `must be ${POLICY_API_VERSION}`);
  if (root.kind !== POLICY_LIST_KIND) fail('kind', `must be ${POLICY_LIST_KIND}`);
  const revision = root.revision ?? 0;
  if (!isCount(revision)) fail('revision', 'must be a whole number of at least 0');
  const rawItems = root.items ?? [];
  if (!Array.isArray(rawItems)) return fail('items', 'must be a list of policies');
  const items: PolicyFileItem[] = [];
  rawItems.forEach((raw: unknown, i) => {
    const at = `items[${i}]`;
    if (!isRecord(raw)) return fail(at, 'must be a mapping with name and spec');
    const extra = Object.keys(raw).find((k) => !['name', 'spec', 'version'].includes(k));
    if (extra) fail(`${at}.${extra}`, 'is not a known field (name, version, spec)');
    if (typeof raw.name !== 'string') return fail(`${at}.name`, 'is missing or not a string');
    if (items.some((item) => item.name === raw.name)) fail(`${at}.name`, `policy ${raw.name} is listed twice`);
    if (raw.version !== undefined && !isCount(raw.version)) fail(`${at}.version`, 'must be a whole number');
    try {
      const spec = validatePolicy(raw.name, raw.spec, { links, ...(internetLinks ? { internetLinks } : {}), others: items });
      items.push({ name: raw.name, spec, version: raw.version as number | undefined });
    } catch (err) {
      if (err instanceof PolicyError) fail(at, `${err.code}: ${err.message}`);
      throw err;
    }
  });
  return { revision: revision as number, items };
}

export function renderPolicyFile(content: PolicyFileContent): string {
  const header = [
    '# wansteer policies (standalone store). Edits are picked up while the agent runs; a broken',
    '# edit is logged and ignored. Leave `version` and `revision` as they are: they are the ETags.',
  ].join('\n');
  const body = stringify({
    apiVersion: POLICY_API_VERSION,
    kind: POLICY_LIST_KIND,
    revision: content.revision,
    items: content.items.map((item) => ({ name: item.name, version: item.version, spec: item.spec })),
  });
  return `${header}\n${body}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
