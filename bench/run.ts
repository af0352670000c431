/** `npm run bench`: run every benchmark, each in its own process, one after the other. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCHES = ['classify', 'datapath', 'throughput', 'internet', 'overlay', 'failover', 'agent', 'envoy', 'envoy-native', 'envoy-istiod', 'cluster', 'migration', 'abuse'];
const only = process.argv.slice(2);
let failed = 0;
for (const name of BENCHES) {
  if (only.length && !only.includes(name)) continue;
  const file = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`bench ${name} failed (exit ${r.status})`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
