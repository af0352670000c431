/**
 * Loads the agent's configuration: the YAML (or JSON) file, schema defaults, then environment
 * variables, then flags on top; validated by the schema and by semantic checks. Any problem
 * throws one ConfigError listing every problem with its field and fix.
 *
 *   const config = await loadConfig({ argv: process.argv.slice(3), env: process.env });
 */
import { open } from 'node:fs/promises';
import { hostname } from 'node:os';
import { Kind, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { ConfigError, type ConfigProblem } from './errors.js';
import { parseOverrides, type OverrideOrigins } from './overrides.js';
import { AgentConfig, linkTable, PROBE_PROFILES, type ProbeProfile } from './schema.js';
import { fractionalIntegers, schemaProblems } from './schema-errors.js';
import { semanticProblems } from './semantic.js';

export const DEFAULT_CONFIG_FILE = '/etc/wansteer/config.yaml';

/** A config is a few KB; anything past this is not one, and is refused before it is read or parsed. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

export interface LoadConfigOptions {
  /** The config file; wins over --config and WANSTEER_CONFIG. Default: /etc/wansteer/config.yaml. */
  readonly file?: string;
  /** Flags (without the command words), e.g. ['--config', 'x.yaml', '--dry-run']. */
  readonly argv?: readonly string[];
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** For nodeName when neither file nor flags give it. */
  readonly hostname?: () => string;
}

export async function loadConfig(options: LoadConfigOptions = {}): Promise<AgentConfig> {
  const overrides = parseOverrides(options.argv ?? [], options.env ?? {});
  const file = options.file ?? overrides.configFile ?? DEFAULT_CONFIG_FILE;
  const text = await readBounded(file);
  return resolveConfig(parseDocument(text, file), { argv: options.argv, env: options.env, hostname: options.hostname, source: file });
}

/**
 * The file's text, read no further than MAX_CONFIG_BYTES + 1: a 100 MB file (or a device that
 * never ends) is refused by its size, not read whole and handed to the YAML parser.
 */
async function readBounded(file: string): Promise<string> {
  const fix = 'pass the config file with --config PATH (or WANSTEER_CONFIG=PATH), and check it is readable by the agent';
  let bytes: Buffer;
  try {
    const handle = await open(file, 'r');
    try {
      const info = await handle.stat();
      if (info.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      if (info.size > MAX_CONFIG_BYTES) throw tooLarge(file, info.size);
      bytes = Buffer.alloc(MAX_CONFIG_BYTES + 1);
      let filled = 0;
      for (;;) {
        const { bytesRead } = await handle.read(bytes, filled, bytes.length - filled, null);
        if (bytesRead === 0) break;
        filled += bytesRead;
        if (filled > MAX_CONFIG_BYTES) throw tooLarge(file, filled);
      }
      bytes = bytes.subarray(0, filled);
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError('WS_CONFIG_FILE_READ', [{ field: file, problem: readProblem(err), fix }]);
  }
  return bytes.toString('utf8');
}

function tooLarge(file: string, size: number): ConfigError {
  const shown = size > MAX_CONFIG_BYTES ? `over ${MAX_CONFIG_BYTES} bytes` : `${size} bytes`;
  return new ConfigError('WS_CONFIG_FILE_TOO_LARGE', [{ field: file, problem: `is ${shown}; a config is a few KB (at most ${MAX_CONFIG_BYTES} bytes)`, fix: 'check --config names the agent config, not another file' }]);
}

export interface ResolveConfigOptions extends Omit<LoadConfigOptions, 'file'> {
  /** Where the document came from, for messages. */
  readonly source?: string;
}

/** The pure part of loadConfig: a parsed document plus overrides → a valid AgentConfig. */
export function resolveConfig(document: unknown, options: ResolveConfigOptions = {}): AgentConfig {
  const overrides = parseOverrides(options.argv ?? [], options.env ?? {});
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new ConfigError('WS_CONFIG_SYNTAX', [{ field: '(top level)', problem: 'is not a mapping of fields', fix: 'start the file with fields such as links: and defaultLink:' }], options.source);
  }
  const raw = structuredClone(document) as Record<string, unknown>;
  const origins = overrides.apply(raw);
  raw.nodeName ??= (options.hostname ?? hostname)();
  // Convert first: YAML hands `flowTableSize: "2048"` or a link named `1` over with the other type.
  // Convert truncates fractions where a whole number is wanted: those are reported, not rounded.
  const fractions = fractionalIntegers(AgentConfig, raw, fixHint);
  if (fractions.length > 0) throw new ConfigError('WS_CONFIG_INVALID', fractions.map((p) => tagOrigin(p, origins)), options.source);
  const candidate = withDefaults(withProbeProfiles(Value.Convert(AgentConfig, raw)));
  const shapeProblems = schemaProblems(AgentConfig, candidate, fixHint);
  if (shapeProblems.length > 0) throw new ConfigError('WS_CONFIG_INVALID', shapeProblems.map((p) => tagOrigin(p, origins)), options.source);
  const config = candidate as AgentConfig;
  const meaningProblems = semanticProblems(config);
  if (meaningProblems.length > 0) throw new ConfigError('WS_CONFIG_INVALID', meaningProblems.map((p) => tagOrigin(p, origins)), options.source);
  // Every internet link knows its routing table from here on (the monitor's probes use it too).
  config.links.forEach((l, i) => {
    if (l.addressing === 'internet') l.table = linkTable(config, i);
  });
  return config;
}

function parseDocument(text: string, file: string): unknown {
  try {
    // JSON is YAML; one parser serves both, and reports line and column.
    // maxAliasCount bounds "billion laughs" expansion (yaml's default, said here on purpose).
    return parseYaml(text, { prettyErrors: true, maxAliasCount: 100 }) ?? {};
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    throw new ConfigError('WS_CONFIG_SYNTAX', [{ field: file, problem: `is not valid YAML: ${message}`, fix: 'correct the syntax at the line and column shown' }]);
  }
}

/**
 * Schema defaults. Value.Default would merge a union's default into a value the user gave
 * (`policies: {store: cluster}` would gain the file store's `file`), so a given union-typed
 * field gets the defaults of the variant it names instead.
 */
function withDefaults(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null) return raw;
  const given = raw as Record<string, unknown>;
  const unions = Object.entries(AgentConfig.properties).filter(([key, s]) => (s as TSchema)[Kind] === 'Union' && given[key] !== undefined);
  const rest = Object.fromEntries(Object.entries(given).filter(([key]) => !unions.some(([u]) => u === key)));
  const out = Value.Default(AgentConfig, rest) as Record<string, unknown>;
  for (const [key, schema] of unions) {
    const variant = ((schema as TSchema).anyOf as TSchema[]).find((v) => matchesDiscriminator(v, given[key]));
    out[key] = variant ? Value.Default(variant, given[key]) : given[key];
  }
  return out;
}

/** A link's `probe.profile` fills the timings its probe does not give, before the schema's defaults. */
function withProbeProfiles(raw: unknown): unknown {
  const links = (raw as { links?: unknown }).links;
  if (!Array.isArray(links)) return raw;
  for (const link of links) {
    const probe = (link as { probe?: Record<string, unknown> } | null)?.probe;
    const name = probe?.profile;
    if (typeof name !== 'string' || !Object.hasOwn(PROBE_PROFILES, name)) continue;
    for (const [field, value] of Object.entries(PROBE_PROFILES[name as ProbeProfile])) probe![field] ??= value;
  }
  return raw;
}

function matchesDiscriminator(variant: TSchema, value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  return Object.entries(variant.properties as Record<string, TSchema>).some(
    ([key, s]) => s[Kind] === 'Literal' && (value as Record<string, unknown>)[key] === s.const,
  );
}

/** A problem in a field that a flag or variable set is reported under that flag's name too. */
function tagOrigin(problem: ConfigProblem, origins: OverrideOrigins): ConfigProblem {
  const origin = origins.get(problem.field);
  return origin ? { ...problem, field: `${problem.field} (from ${origin})` } : problem;
}

function readProblem(err: unknown): string {
  const code = (err as { code?: string }).code;
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EACCES') return 'is not readable (permission denied)';
  if (code === 'EISDIR') return 'is a directory, not a file';
  return `cannot be read: ${err instanceof Error ? err.message : String(err)}`;
}

/** Fixes worded for the fields people most often get wrong. */
function fixHint(pattern: string): string | undefined {
  return FIX_HINTS[pattern];
}

const FIX_HINTS: Record<string, string> = {
  links: 'list the WAN links, e.g. links: [{ name: fibre, interface: eth1 }, { name: lte, interface: wwan0 }]',
  'links[].name': 'name the link with letters, digits, "-", "_" or "." (at most 32, starting with a letter or digit), e.g. fibre',
  'links[].interface': 'give the interface name as `ip link` shows it, e.g. eth1 (at most 15 characters, no "/", ":" or spaces)',
  'links[].nextHop4': 'give the IPv4 address of the next-hop router on this link, e.g. 192.0.2.1, or leave nextHop4 out',
  'links[].nextHop6': 'give the IPv6 address of the next-hop router on this link, e.g. fe80::1, or leave nextHop6 out',
  'links[].probe.target': 'give the address of a host running `wansteer reflector` (TWAMP-light) reached over this link',
  'links[].probe.port': 'give the UDP port the reflector answers on (`wansteer reflector --listen HOST:PORT`), from 1 to 65535, or leave port out for 862',
  mode: 'use steer (the edge, the default) or reply-by-arrival (the cloud end of overlay links)',
  defaultLink: 'name the link unsteered traffic takes: one of links[].name',
  'listen.http': 'write host:port, e.g. 0.0.0.0:9440 or [::]:9440',
  'listen.grpc': 'write host:port, e.g. 0.0.0.0:9441 or [::]:9441',
  'rules.source': 'use directory (with directory: PATH) or cluster',
  'rules.directory': 'give the directory holding VirtualService YAML files, e.g. /etc/wansteer/rules',
  'policies.store': 'use file (with file: PATH) or cluster (with namespace: NAME)',
  'policies.file': 'give the policy file path, e.g. /var/lib/wansteer/policies.yaml',
};
