/**
 * `wansteer status`: the running agent's view of its node, from its GET /v1/status — ready or
 * what it waits for, where route rules and policies come from, each link's health and the
 * policies it carries, each policy's link and why.
 *
 * Exit codes: 0 ready, 1 not ready, 2 bad usage, 3 the agent could not be asked.
 */
import { parseArgs } from 'node:util';
import type { Static } from '@sinclair/typebox';
import type { StatusBody } from '../api/routes/status.js';
import type { CliIo } from './explain.js';

export const EXIT_READY = 0;
export const EXIT_NOT_READY = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 3;

const DEFAULT_AGENT = 'http://127.0.0.1:9090';

export const statusHelp = `Usage: wansteer status [--agent URL] [--json]

Shows what the node's agent is doing: whether it is ready (and if not, what it waits for),
where its route rules and policies come from, each WAN link's health, and which link each
policy's traffic takes now.

  --agent URL     the agent's HTTP API (default ${DEFAULT_AGENT}, or WANSTEER_AGENT)
  --timeout MS    give up after this long (default 3000)
  --json          the agent's answer as JSON
  -h, --help      this text

Exit status: 0 ready, 1 not ready, 2 bad usage, 3 the agent could not be asked.
`;

const OPTIONS = {
  agent: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export type Status = Static<typeof StatusBody>;

export async function runStatus(argv: readonly string[], io: CliIo): Promise<number> {
  let values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; strict: true; allowPositionals: false }>>['values'];
  try {
    values = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (err) {
    io.stderr(`wansteer status: ${(err as Error).message}\n\n${statusHelp}`);
    return EXIT_USAGE;
  }
  if (values.help) {
    io.stdout(statusHelp);
    return 0;
  }
  const base = (values.agent ?? process.env.WANSTEER_AGENT ?? DEFAULT_AGENT).replace(/\/+$/, '');
  const timeoutMs = Number(values.timeout ?? 3000);
  if (!/^https?:\/\/[^/\s]+$/.test(base) || !Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    io.stderr(`wansteer status: --agent must be http(s)://HOST:PORT and --timeout a whole number of ms\n`);
    return EXIT_USAGE;
  }

  let status: Status;
  try {
    const res = await fetch(`${base}/v1/status`, { signal: AbortSignal.timeout(timeoutMs) });
    if (res.status !== 200) throw new Error(`it answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
    status = (await res.json()) as Status;
  } catch (err) {
    const why = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : describeFetchError(err);
    io.stderr(`wansteer status: could not ask the agent at ${base}: ${why}\n(is \`wansteer agent\` running, and listening there? see listen.http in its config, or pass --agent)\n`);
    return EXIT_UNREACHABLE;
  }
  io.stdout(values.json ? `${JSON.stringify(status, null, 2)}\n` : renderStatus(status, base));
  return status.ready ? EXIT_READY : EXIT_NOT_READY;
}

function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}

const SOURCE_TEXT = {
  synced: 'synced',
  snapshot: "from this node's snapshot of the cluster",
  waiting: 'waiting for the first list',
} as const;

type SourceProblem = NonNullable<Status['sourceProblems']['policies']>;

/**
 * A source's line: its state and, when it fails now, why in the API server's words — a refusal
 * (`forbidden: … cannot list resource "wanpolicies" …`) is not a server out of reach.
 */
function sourceText(state: Status['sources']['routes'], problem: SourceProblem | undefined): string {
  if (!problem) return state === 'snapshot' ? `${SOURCE_TEXT.snapshot} (the API server has not answered)` : SOURCE_TEXT[state];
  const why = `${problem.failure}: ${problem.message}`;
  return state === 'synced' ? `synced, keeping the last list: now failing with ${why}` : `${SOURCE_TEXT[state]} (${why})`;
}

/** The status as text for people: a headline, the sources, a table of links, a table of policies. */
export function renderStatus(s: Status, base: string): string {
  const out: string[] = [];
  out.push(`wansteer agent at ${base}: ${s.ready ? 'ready' : `NOT READY: ${s.waitingFor.join('; ')}`}`);
  const problems = s.sourceProblems ?? {};
  out.push(`  route rules: ${sourceText(s.sources.routes, problems.routes)}`);
  out.push(`  policies:    ${sourceText(s.sources.policies, problems.policies)}`);
  out.push('');
  out.push(
    ...table([
      ['LINK', 'INTERFACE', 'STATE', 'RTT', 'LOSS', 'JITTER', 'CARRIES', 'WHY'],
      ...s.links.map((l) => [
        l.name, l.interface, l.up ? 'up' : 'DOWN', unit(l.rttMs, 'ms'), unit(l.lossPercent, '%'), unit(l.jitterMs, 'ms'),
        l.activeFor.join(', ') || '-', l.reason ?? '',
      ]),
    ]),
  );
  out.push('');
  if (s.policies.length === 0) out.push('no policies');
  else {
    out.push(
      ...table([
        ['POLICY', 'PREFERENCE', 'NOW ON', 'DSCP', 'SLA', 'WHY'],
        ...s.policies.map((p) => [
          p.name, p.links.join(', ') || '-', p.link ?? (p.installed ? '(its path)' : '-'), p.dscp === undefined ? '-' : String(p.dscp),
          slaText(p), p.reason,
        ]),
      ]),
    );
  }
  const refused = s.refusedPolicies ?? [];
  if (refused.length > 0) {
    out.push('');
    out.push(`REFUSED: ${refused.length} WanPolic${refused.length === 1 ? 'y' : 'ies'} left out on this node (also Events on each object)`);
    out.push(...table([['POLICY', 'CODE', 'WHY'], ...refused.map((r) => [r.name, r.code, r.message])]));
  }
  return `${out.join('\n')}\n`;
}

/** `-` without an SLA, else its bounds and whether the link carrying the policy meets them. */
function slaText(p: Status['policies'][number]): string {
  if (!p.sla) return '-';
  const bounds = [
    p.sla.maxRttMs !== undefined ? `rtt<=${p.sla.maxRttMs}ms` : '',
    p.sla.maxLossPercent !== undefined ? `loss<=${p.sla.maxLossPercent}%` : '',
    p.sla.maxJitterMs !== undefined ? `jitter<=${p.sla.maxJitterMs}ms` : '',
  ].filter(Boolean).join(' ');
  return `${p.slaMet === false ? 'NOT MET' : 'met'} (${bounds})`;
}

function unit(value: number | undefined, u: string): string {
  return value === undefined ? '-' : `${value} ${u}`;
}

/** Rows padded into columns; the last column is not padded. */
function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}
