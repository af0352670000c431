/**
 * Map migration with a million flows (issue 20): how long an agent start takes to move 1M flows
 * into new tables, and how many packets of live steered flows leave by the wrong link meanwhile
 * (target 0).
 *
 * The overlay lab of test/datapath/migration.test.ts (test/helpers/migration-rig.ts): four live
 * UDP flows steered both ways between wan0 and wan1, ~400 packets/s each, counted in the cloud by
 * the link they arrive on, and an unsteered control flow; 1,000,000 synthetic IPv4 flows beside
 * them. The agent (the facade in a driver process) is restarted eight times:
 *   grow          datapath.flowTableSize 1,048,576 -> 2,097,152 (entries copied chunk by chunk)
 *   shrink back   2,097,152 -> 1,048,576: all fit, but near the size, so sorted by recency
 *                 (these two three times: the median)
 *   layout        the layout-2 test object (a flow value 16 -> 24 bytes), same size
 *   shrink        -> 524,288: the most recently seen half a million are kept
 * Times are the migration's own (copy, swap, merge, re-pin; MigrationReport.totalMs) and
 * Datapath.open's (with the load). The machine is shared: read them as their order of magnitude.
 * Wrong packets are counted from just before the old agent exits until the new one has been
 * serving for a moment.
 */
import { testVariants } from '../test/helpers/bpf-variants.js';
import { LIVE_FLOWS, MigrationRig, TO_WAN0, TO_WAN1, type OpenResult } from '../test/helpers/migration-rig.js';
import { type Figure, median, report, requireRoot } from './lib.js';

const FLOWS = 1_000_000;
const ROUNDS = 3;
const LIVE = LIVE_FLOWS.filter((f) => f.policyId !== null).length;

async function main(): Promise<void> {
  if (!requireRoot('migration')) return;
  const { steerNext } = testVariants();
  const rig = await MigrationRig.start('migbench', { flowTableSize: 1 << 20 });
  const figures: Figure[] = [];
  try {
    const t = performance.now();
    await rig.dp.call('fillFlows', { count: FLOWS, family: 4, policyIds: [TO_WAN0, TO_WAN1] });
    console.log(`wrote ${FLOWS.toLocaleString('en-US')} flows in ${Math.round(performance.now() - t)} ms`);
    rig.startStreams();
    await rig.flowing(Object.fromEntries(LIVE_FLOWS.map((f) => [f.name, { right: 0 }])));

    let wrongTotal = 0;
    let steeredTotal = 0;
    let migrations = 0;
    /** One restart with `open`; checks the flow count after, counts packets by link meanwhile. */
    const phase = async (name: string, open: Record<string, unknown>, expectFlows: number | null): Promise<{ totalMs: number; swapMs: number; openMs: number }> => {
      const before = rig.counts();
      const r = await rig.restart(open);
      await rig.flowing(rig.counts()); // serving for a moment: late wrong packets are counted too
      const after = rig.counts();
      wrongTotal += LIVE_FLOWS.reduce((n, f) => n + after[f.name]!.wrong - before[f.name]!.wrong, 0);
      steeredTotal += LIVE_FLOWS.filter((f) => f.policyId !== null).reduce((n, f) => n + after[f.name]!.right - before[f.name]!.right, 0);
      migrations++;
      const flows = await rig.dp.call<number>('countFlows');
      if (!r.migration) throw new Error(`${name}: nothing was migrated`);
      if (expectFlows !== null && flows !== expectFlows) throw new Error(`${name}: ${flows} flows after, ${expectFlows} before`);
      const v4 = r.migration.maps.find((x) => x.name === 'ws_flows4')!;
      console.log(`${name}: ${v4.reasons.join('; ')}; copied ${v4.copied}, dropped ${v4.dropped}; ${Math.round(r.migration.totalMs)} ms`);
      return { totalMs: r.migration.totalMs, swapMs: r.migration.swapMs, openMs: r.openMs };
    };

    const grow: number[] = [];
    const back: number[] = [];
    const swaps: number[] = [];
    const opens: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const g = await phase('grow', { flowTableSize: 1 << 21 }, FLOWS + LIVE);
      const b = await phase('shrink back', { flowTableSize: 1 << 20 }, FLOWS + LIVE);
      grow.push(g.totalMs);
      back.push(b.totalMs);
      swaps.push(g.swapMs, b.swapMs);
      opens.push(g.openMs);
    }
    const layout = await phase('layout 1 -> 2', { flowTableSize: 1 << 20, objectPath: steerNext }, FLOWS + LIVE);
    const half = await phase('shrink to 512k', { flowTableSize: 1 << 19, objectPath: steerNext }, null);
    figures.push(
      { name: `1M flows, table 1,048,576 -> 2,097,152: migration (median of ${ROUNDS})`, value: median(grow), unit: 'ms' },
      { name: `  Datapath.open with it (load + migration, median)`, value: median(opens), unit: 'ms' },
      { name: `1M flows, table 2,097,152 -> 1,048,576, all kept (median of ${ROUNDS})`, value: median(back), unit: 'ms' },
      { name: '1M flows, value layout 1 -> 2 (16 -> 24 bytes)', value: layout.totalMs, unit: 'ms' },
      { name: '1M flows into 524,288: newest kept', value: half.totalMs, unit: 'ms' },
      { name: `swap of both filters (median of ${swaps.length})`, value: median(swaps), unit: 'ms' },
      { name: `live steered packets during the ${migrations} restarts`, value: steeredTotal, unit: 'packets' },
      { name: `packets steered wrongly, all ${migrations} restarts`, value: wrongTotal, unit: 'packets', target: '<= 0' },
    );
  } finally {
    await rig.destroy();
  }
  report('migration', figures);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
