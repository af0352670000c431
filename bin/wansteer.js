#!/usr/bin/env -S node --max-semi-space-size=4 --no-allocation-site-pretenuring
// Runs the built CLI if there is one, else the TypeScript source through tsx (no build needed).
//
// The node flags on the first line fix the size of V8's young generation. They apply when this
// file is executed (`wansteer agent`, `bin/wansteer.js agent`); `node bin/wansteer.js` must pass
// them itself. Without them Node sizes the young generation from the memory it finds, and both
// ends hurt the agent (bench/agent.ts): in a 512 MiB pod (deploy/base) it gets 1 MB semi-spaces,
// and its p99 at 5k reports/s was 14 ms and its HTTP intake peaked at 17k/s (targets: 2 ms,
// 20k/s); on a large host it gets 16 MB ones, which stay resident after any burst of reports:
// 32 MB of the ~120 MB it held after 100k sessions (target: 100). With 4 MB semi-spaces: 91-95 MB
// after 100k sessions, p99 at 5k/s 1.0-2.6 ms, 24-26k reports/s over HTTP. Allocation-site
// pretenuring is off because with semi-spaces this small it sent the objects of each
// 1000-report batch straight to the old generation (12 MB per 100k reports, then a full GC)
// instead of letting them die young.
import { existsSync } from 'node:fs';
const built = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(built)) (await import('tsx/esm/api')).register();
await (await import(existsSync(built) ? built.href : new URL('../src/cli/main.ts', import.meta.url).href)).runFromBin();
