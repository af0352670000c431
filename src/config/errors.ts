/**
 * Configuration errors. Bad config is the operator's to fix, not a bug: the agent prints the
 * message (never a stack) and exits with EX_CONFIG. Every problem names the field path
 * (`links[1].nextHop4`), what is wrong with it, and the fix; all problems found are reported
 * at once so one edit-restart round fixes them all.
 */
import { WansteerError } from '../base/errors.js';

export type ConfigErrorCode =
  /** The file cannot be read (missing, permissions, not a file). */
  | 'WS_CONFIG_FILE_READ'
  /** The file is larger than any config (MAX_CONFIG_BYTES): refused before it is read. */
  | 'WS_CONFIG_FILE_TOO_LARGE'
  /** The file is not valid YAML/JSON, or its top level is not a mapping. */
  | 'WS_CONFIG_SYNTAX'
  /** An unknown flag, a flag without its value, or a value of the wrong form. */
  | 'WS_CONFIG_FLAG'
  /** A field is missing, of the wrong type, out of range, or inconsistent with another. */
  | 'WS_CONFIG_INVALID';

export interface ConfigProblem {
  /** Where: a field path (`links[1].nextHop4`), a flag (`--flow-table-size`) or the file. */
  readonly field: string;
  /** What is wrong, e.g. `"10.0.0" is not an IPv4 address`. */
  readonly problem: string;
  /** What to do, e.g. `give the IPv4 address of the next hop, e.g. 192.0.2.1`. */
  readonly fix: string;
}

export class ConfigError extends WansteerError {
  /** sysexits.h EX_CONFIG: what the CLI exits with on bad config. */
  static readonly exitCode = 78;
  override readonly name = 'ConfigError';

  constructor(
    readonly code: ConfigErrorCode,
    readonly problems: readonly ConfigProblem[],
    /** The config file the problems were found in, if any. */
    readonly source?: string,
  ) {
    super(formatProblems(code, problems, source));
    // The first problem's field: what tests and callers key on.
    this.field = problems[0]?.field ?? '';
  }
}

function formatProblems(code: ConfigErrorCode, problems: readonly ConfigProblem[], source: string | undefined): string {
  const where = source ? ` in ${source}` : '';
  const lines = problems.map((p) => `  ${p.field}: ${p.problem}; fix: ${p.fix}`);
  const head = problems.length === 1 ? `invalid configuration${where} (${code}):` : `invalid configuration${where} (${code}), ${problems.length} problems:`;
  return [head, ...lines].join('\n');
}
