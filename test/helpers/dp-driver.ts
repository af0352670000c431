/**
 * Runs the real Datapath facade in another process — inside the edge namespace, where the WAN
 * interfaces are — and serves calls over stdin/stdout as JSON lines:
 *   -> {"id":1,"method":"attach","args":["wan0"]}
 *   <- {"id":1,"ok":true,"result":{...}}
 * `open` (args: LoadOptions) must come first. BigInts travel as strings in results, and as
 * {"$bigint":"…"} in arguments.
 * Started by DatapathDriver in driver-client.ts; never used outside tests and benchmarks.
 */
import { createInterface } from 'node:readline';
import { Datapath } from '../../src/datapath/index.js';
import { fillFlows, type FillFlows } from './synthetic-flows.js';

let dp: Datapath | null = null;

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x instanceof Map ? Object.fromEntries(x) : x));

createInterface({ input: process.stdin }).on('line', (line) => {
  const { id, method, args = [] } = JSON.parse(line, (_k, v: unknown) =>
    v && typeof v === 'object' && typeof (v as { $bigint?: unknown }).$bigint === 'string' ? BigInt((v as { $bigint: string }).$bigint) : v,
  ) as { id: number; method: string; args?: unknown[] };
  try {
    let result: unknown;
    if (method === 'open') {
      const t0 = performance.now();
      dp = Datapath.open(args[0] as Parameters<typeof Datapath.open>[0]);
      const openMs = performance.now() - t0;
      result = { adopted: dp.adopted, flowTableSize: dp.flowTableSize, layoutVersion: dp.layoutVersion, migration: dp.migration, openMs };
    } else if (method === 'fillFlows') {
      if (!dp) throw new Error('open first');
      result = fillFlows(dp, args[0] as FillFlows);
    } else if (method === 'exit') {
      process.stdout.write(json({ id, ok: true }) + '\n', () => process.exit(0));
      return;
    } else {
      if (!dp) throw new Error('open first');
      const f = (dp as unknown as Record<string, unknown>)[method];
      result = typeof f === 'function' ? (f as (...a: unknown[]) => unknown).apply(dp, args) : f;
    }
    process.stdout.write(json({ id, ok: true, result }) + '\n');
  } catch (err) {
    const e = err as Error & { code?: string };
    process.stdout.write(json({ id, ok: false, error: { code: e.code, message: e.message } }) + '\n');
  }
});
