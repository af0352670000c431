/**
 * Runs the Lua filter under test/envoy/harness.lua in LuaJIT and returns what it did, one
 * event per line of the harness's output. Scenarios are plain objects, written as a Lua table.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { luaLiteral, type FilterConfig } from '../../src/cli/render/lua-source.js';
import { fromRoot } from '../../src/config/paths.js';

export const LUAJIT = '/usr/bin/luajit';
export const HARNESS = fromRoot('test/envoy/harness.lua');
export const FILTER = fromRoot('envoy-filters/wansteer.lua');

export interface RequestScenario {
  /** In order; a name may repeat (a header with several values). */
  headers?: [string, string][];
  stream_info?: Record<string, string>;
  peer_uri_sans?: string[];
  /** Make these handle methods raise, as a broken or different Envoy might. */
  raise?: Record<string, string>;
  /** Record every handle method the filter calls for this request (events of kind `call`). */
  trace?: boolean;
  /** Seconds since the run started, as os.time() tells during this request (default: the previous request's). */
  at?: number;
}

export interface Scenario {
  /** Default: the repo's filter file with `config` as wansteer.config. */
  source?: string;
  config?: FilterConfig;
  clusters?: string[];
  requests: RequestScenario[];
}

export type HarnessEvent =
  | { event: 'loaded' }
  | { event: 'load-error'; message: string }
  | { event: 'httpCall'; request: number; form: string; cluster: string; headers: Record<string, string>; body: string; timeout_ms: number; asynchronous: boolean }
  | { event: 'log'; request: number; level: string; message: string }
  | { event: 'header-mutation'; request: number; op: string; key: string }
  | { event: 'script-error'; request: number; message: string }
  | { event: 'stale-handle'; request: number; method: string }
  | { event: 'call'; request: number; method: string }
  | { event: 'respond' | 'body'; request: number }
  | { event: 'request-end'; request: number; suspended: string[]; headers_before: unknown; headers_after: unknown }
  | { event: 'globals'; added: string[] };

export async function runFilter(scenario: Scenario): Promise<HarnessEvent[]> {
  const dir = await mkdtemp(join(tmpdir(), 'wansteer-lua-'));
  try {
    const table: Record<string, unknown> = {
      clusters: scenario.clusters ?? [...new Set([scenario.config?.cluster ?? 'wansteer-agent', scenario.config?.cluster_v6 ?? 'wansteer-agent'])],
      requests: scenario.requests,
    };
    if (scenario.source !== undefined) {
      table.source = scenario.source;
      // Nothing to require from: the rendered source must stand alone.
      table.package_path = '';
    } else {
      if (!scenario.config) throw new Error('a scenario needs a config or a source');
      await mkdir(join(dir, 'wansteer'));
      await writeFile(join(dir, 'wansteer', 'config.lua'), `return ${luaLiteral(scenario.config)}\n`);
      table.script = FILTER;
      table.package_path = `${fromRoot('envoy-filters')}/?.lua;${dir}/?.lua`;
    }
    const file = join(dir, 'scenario.lua');
    await writeFile(file, `return ${luaLiteral(table)}\n`);
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(LUAJIT, [HARNESS, file], { timeout: 10_000 }, (err, out, errOut) => {
        // Exit 1 with a load-error event is an outcome the tests look at, not a failure here.
        if (err && !out.includes('"load-error"')) reject(new Error(`luajit failed: ${err.message}\n${errOut}`));
        else resolve(out);
      });
    });
    return stdout
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as HarnessEvent);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function eventsOf<K extends HarnessEvent['event']>(events: HarnessEvent[], kind: K): Extract<HarnessEvent, { event: K }>[] {
  return events.filter((e): e is Extract<HarnessEvent, { event: K }> => e.event === kind);
}

/** The reports the filter sent, parsed. */
export function reportsOf(events: HarnessEvent[]): unknown[] {
  return eventsOf(events, 'httpCall').map((call) => JSON.parse(call.body));
}
