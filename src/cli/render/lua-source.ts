/**
 * The Lua that goes into the EnvoyFilter's `default_source_code`. Envoy can only `require` files
 * that are in its image, and the wansteer files are not: so the thin filter
 * (`envoy-filters/wansteer.lua`) is shipped with its two `require` calls replaced in place, the
 * report module by a function that builds it as a local, the configuration by a table literal.
 * The repo keeps the files separate and readable; the tests run both forms.
 */
import { readFile } from 'node:fs/promises';
import { fromRoot } from '../../config/paths.js';

export type Placement = 'sidecar-inbound' | 'sidecar-outbound' | 'gateway';
export type ClassField = 'path' | 'method' | 'scheme';
export const PLACEMENTS: readonly Placement[] = ['sidecar-inbound', 'sidecar-outbound', 'gateway'];

/** What `require("wansteer.config")` returns inside the filter. */
export interface FilterConfig {
  readonly placement: Placement;
  /** The Envoy cluster the report httpCall goes to (for IPv6 sessions: cluster_v6, when set). */
  readonly cluster: string;
  readonly cluster_v6?: string;
  /** `:authority` of the report call. */
  readonly authority: string;
  /** The agent's intake path. */
  readonly path: string;
  readonly timeout_ms: number;
  /** Lower-case header names the route rules match on; only these are reported. */
  readonly headers: readonly string[];
  /**
   * Which of path, method and scheme the route rules read: only those (with the authority, the
   * headers, the peer namespace and the route) tell one request's class from another's, so a
   * connection is reported again only when they change. Absent: all of them.
   */
  readonly class_fields?: readonly ClassField[];
  /** A connection is reported again after this many seconds (default 60): see report.lua. */
  readonly refresh_s?: number;
  /** Connections remembered per Envoy worker, per generation (default 4096). */
  readonly remember_connections?: number;
}

export interface FilterFiles {
  /** envoy-filters/wansteer.lua */
  readonly filter: string;
  /** envoy-filters/wansteer/report.lua */
  readonly module: string;
}

export const FILTER_FILE = 'envoy-filters/wansteer.lua';
export const MODULE_FILE = 'envoy-filters/wansteer/report.lua';

export async function readFilterFiles(): Promise<FilterFiles> {
  const [filter, module] = await Promise.all([readFile(fromRoot(FILTER_FILE), 'utf8'), readFile(fromRoot(MODULE_FILE), 'utf8')]);
  return { filter, module };
}

/** The single script Envoy loads: the filter with its module and configuration inlined. */
export function filterSource(files: FilterFiles, config: FilterConfig): string {
  let source = replaceOnce(files.filter, 'require("wansteer.report")', `(function()\n${files.module.trimEnd()}\nend)()`);
  source = replaceOnce(source, 'require("wansteer.config")', luaLiteral(config));
  const banner = `-- Rendered by \`wansteer render envoyfilter\` from ${FILTER_FILE} and ${MODULE_FILE}: edit those.\n`;
  return banner + source;
}

function replaceOnce(text: string, needle: string, replacement: string): string {
  const at = text.indexOf(needle);
  if (at === -1 || text.indexOf(needle, at + 1) !== -1) {
    throw new Error(`${FILTER_FILE} must contain ${needle} exactly once`);
  }
  // slice, not String.replace: `$&`-like sequences in the Lua text must stay as written.
  return text.slice(0, at) + replacement + text.slice(at + needle.length);
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LUA_KEYWORDS = new Set(
  'and break do else elseif end false for function goto if in local nil not or repeat return then true until while'.split(' '),
);

/** A Lua expression for plain data: strings, finite numbers, booleans, arrays, objects (key order kept). */
export function luaLiteral(value: unknown): string {
  if (typeof value === 'string') return luaString(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`cannot write ${value} as Lua`);
    return String(value);
  }
  if (typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `{ ${value.map(luaLiteral).join(', ')} }`.replace('{  }', '{}');
  if (value !== null && typeof value === 'object') {
    const fields = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${IDENTIFIER.test(k) && !LUA_KEYWORDS.has(k) ? k : `[${luaString(k)}]`} = ${luaLiteral(v)}`);
    return fields.length === 0 ? '{}' : `{ ${fields.join(', ')} }`;
  }
  throw new Error(`cannot write ${String(value)} as Lua`);
}

function luaString(text: string): string {
  let out = '"';
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (code < 0x20 || code === 0x7f) out += `\\${String(code).padStart(3, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}
