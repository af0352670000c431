/**
 * Flags and environment variables that override the config file. Each names one field; the
 * environment variable is the flag's name upper-cased under WANSTEER_ (`--pin-dir` →
 * `WANSTEER_PIN_DIR`). Precedence: flag > environment > file > schema default.
 */
import { ConfigError, type ConfigProblem } from './errors.js';

type ValueKind = 'string' | 'integer' | 'boolean';

interface OverrideSpec {
  readonly flag: string;
  readonly kind: ValueKind;
  /** Writes the value into the raw config document. */
  readonly apply: (doc: Record<string, unknown>, value: string | number | boolean) => void;
  /** The field the override sets, for error messages. */
  readonly field: string;
}

const setIn = (path: readonly string[]) => (doc: Record<string, unknown>, value: unknown): void => {
  let node = doc;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    node = (typeof next === 'object' && next !== null && !Array.isArray(next) ? next : (node[key] = {})) as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
};

/** Every override flag. `--config` is not here: it picks the file rather than a field. */
export const CONFIG_OVERRIDES: readonly OverrideSpec[] = [
  { flag: 'node-name', kind: 'string', field: 'nodeName', apply: setIn(['nodeName']) },
  { flag: 'listen-http', kind: 'string', field: 'listen.http', apply: setIn(['listen', 'http']) },
  { flag: 'listen-grpc', kind: 'string', field: 'listen.grpc', apply: setIn(['listen', 'grpc']) },
  { flag: 'pin-dir', kind: 'string', field: 'datapath.pinDir', apply: setIn(['datapath', 'pinDir']) },
  { flag: 'flow-table-size', kind: 'integer', field: 'datapath.flowTableSize', apply: setIn(['datapath', 'flowTableSize']) },
  { flag: 'dry-run', kind: 'boolean', field: 'datapath.dryRun', apply: setIn(['datapath', 'dryRun']) },
  { flag: 'token-file', kind: 'string', field: 'auth.tokenFile', apply: setIn(['auth', 'tokenFile']) },
  // A directory or a file flag also chooses the source: it replaces whatever the file said.
  { flag: 'rules-dir', kind: 'string', field: 'rules.directory', apply: (d, v) => (d.rules = { source: 'directory', directory: v }) },
  { flag: 'policies-file', kind: 'string', field: 'policies.file', apply: (d, v) => (d.policies = { store: 'file', file: v }) },
  { flag: 'log-level', kind: 'string', field: 'log.level', apply: setIn(['log', 'level']) },
];

export const CONFIG_FILE_FLAG = 'config';

export const envNameOf = (flag: string): string => `WANSTEER_${flag.toUpperCase().replace(/-/g, '_')}`;

/** Which flag or variable set a field, so a bad value is reported under the name the operator typed. */
export type OverrideOrigins = Map<string, string>;

export interface ParsedOverrides {
  /** `--config` / WANSTEER_CONFIG, if given. */
  readonly configFile: string | undefined;
  /** Applies the overrides to a raw document; returns field → origin. */
  apply(doc: Record<string, unknown>): OverrideOrigins;
}

type Env = Readonly<Record<string, string | undefined>>;

export function parseOverrides(argv: readonly string[], env: Env): ParsedOverrides {
  const problems: ConfigProblem[] = [];
  const fromFlags = parseFlags(argv, problems);
  const chosen: { spec: OverrideSpec; value: string | number | boolean; origin: string }[] = [];
  for (const spec of CONFIG_OVERRIDES) {
    const flagValue = fromFlags.get(spec.flag);
    const envName = envNameOf(spec.flag);
    const envValue = env[envName];
    const [raw, origin] = flagValue !== undefined ? [flagValue, `--${spec.flag}`] : envValue !== undefined && envValue !== '' ? [envValue, envName] : [undefined, ''];
    if (raw === undefined) continue;
    const value = convert(raw, spec.kind);
    if (value === undefined) {
      problems.push({ field: origin, problem: `${JSON.stringify(raw)} is not ${spec.kind === 'integer' ? 'an integer' : 'true or false'}`, fix: spec.kind === 'integer' ? `give a whole number, e.g. ${origin}=1048576` : `use true or false (or leave ${origin} out)` });
      continue;
    }
    chosen.push({ spec, value, origin });
  }
  if (problems.length > 0) throw new ConfigError('WS_CONFIG_FLAG', problems);
  const configFlag = fromFlags.get(CONFIG_FILE_FLAG);
  return {
    configFile: configFlag !== undefined ? String(configFlag) : env[envNameOf(CONFIG_FILE_FLAG)] || undefined,
    apply(doc) {
      const origins: OverrideOrigins = new Map();
      for (const { spec, value, origin } of chosen) {
        spec.apply(doc, value);
        origins.set(spec.field, origin);
      }
      return origins;
    },
  };
}

/** `--name value`, `--name=value`; a boolean flag alone means true. An unknown name is said so, value or not. */
function parseFlags(argv: readonly string[], problems: ConfigProblem[]): Map<string, string | true> {
  const booleans = new Set(CONFIG_OVERRIDES.filter((o) => o.kind === 'boolean').map((o) => o.flag));
  const known = new Set([CONFIG_FILE_FLAG, ...CONFIG_OVERRIDES.map((o) => o.flag)]);
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      problems.push({ field: arg, problem: 'is not a flag', fix: 'write flags as --name value or --name=value' });
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    if (!known.has(name)) {
      problems.push({ field: `--${name}`, problem: 'is an unknown flag', fix: `use one of ${[...known].map((f) => `--${f}`).join(', ')}` });
      // Its value, if it has one, goes with it (not reported again as "not a flag").
      if (eq === -1 && i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) i++;
      continue;
    }
    if (eq !== -1) flags.set(name, arg.slice(eq + 1));
    else if (booleans.has(name)) flags.set(name, true);
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) flags.set(name, argv[++i]!);
    else problems.push({ field: `--${name}`, problem: 'has no value', fix: `write --${name} VALUE or --${name}=VALUE` });
  }
  return flags;
}

function convert(raw: string | true, kind: ValueKind): string | number | boolean | undefined {
  if (raw === true) return kind === 'boolean' ? true : undefined;
  if (kind === 'string') return raw;
  if (kind === 'integer') return /^[0-9]+$/.test(raw.trim()) ? Number(raw.trim()) : undefined;
  const word = raw.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(word)) return true;
  if (['false', '0', 'no', 'off'].includes(word)) return false;
  return undefined;
}
