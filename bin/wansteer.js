#!/usr/bin/env -S node --max-semi-space-size=4 --no-allocation-site-pretenuring --initial-old-space-size=40
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
// instead of letting them die young. The old generation starts at 40 MB: from V8's default start
// (its limit 28-36 MB over a ~20 MB heap, 9 MB of slack), 400 gRPC calls opening at once set off
// six full collections in 270 ms (7-9 ms pauses plus marking steps up to 19 ms), and a caller
// beside them waited 10-11 ms at p99 (bench/abuse.ts); with 40 MB, one collection and 3.3 ms.
// The price is RSS: 98-105 MB after 100k sessions against 90-91 MB without (alternating runs,
// 2026-12-03; README, "The agent"), over the 100 MB target, until the abuse case allocates less.
import { existsSync } from 'node:fs';
const built = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(built)) (await import('tsx/esm/api')).register();
await (await import(existsSync(built) ? built.href : new URL('../src/cli/main.ts', import.meta.url).href)).runFromBin();
