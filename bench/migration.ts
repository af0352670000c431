/**
 * Map migration with a million flows (issue 20): how long an agent start takes to move 1M flows
 * into new tables, and how many packets of live steered flows leave by the wrong link meanwhile
 * (target 0).
 *
 * The overlay lab of test/datapath/migration.test.ts (test/helpers/migration-rig.ts): four live
 * UDP flows steered both ways between wan0 and wan1, ~400 packets/s each, counted in the cloud by
 * the link they arrive on, and an unsteered control flow; 1,000,000 synthetic IPv4 flows beside
 * them. The agent (the facade in a driver process) is restarted three times:
 *   grow     datapath.flowTableSize 1,048,576 -> 2,097,152
 *   layout   the layout-2 test object (a flow value 16 -> 24 bytes), same size
 *   shrink   2,097,152 -> 524,288: the most recently seen half a million are kept
 * Each figure is one run (a restart of this size takes seconds; the machine is shared, so read
 * them as their order of magnitude). Wrong packets are counted from just before the old agent
 * exits until the new one has been serving for a moment.
 */
import { testVariants } from '../test/helpers/bpf-variants.js';
import { LIVE_FLOWS, MigrationRig, TO_WAN0, TO_WAN1, type OpenResult } from '../test/helpers/migration-rig.js';
import { type Figure, report, requireRoot } from './lib.js';

const FLOWS = 1_000_000;
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

    const phase = async (name: string, open: Record<string, unknown>, expectFlows: number | null): Promise<OpenResult> => {
      const before = rig.counts();
      const r = await rig.restart(open);
      await rig.flowing(rig.counts()); // serving for a moment: late wrong packets are counted too
      const after = rig.counts();
      const wrong = LIVE_FLOWS.reduce((n, f) => n + after[f.name]!.wrong - before[f.name]!.wrong, 0);
      const right = LIVE_FLOWS.filter((f) => f.policyId !== null).reduce((n, f) => n + after[f.name]!.right - before[f.name]!.right, 0);
      const flows = await rig.dp.call<number>('countFlows');
      if (!r.migration) throw new Error(`${name}: nothing was migrated`);
      if (expectFlows !== null && flows !== expectFlows) throw new Error(`${name}: ${flows} flows after, ${expectFlows} before`);
      const m = r.migration;
      const v4 = m.maps.find((x) => x.name === 'ws_flows4')!;
      console.log(`${name}: ${v4.reasons.join('; ')}; copied ${v4.copied}, dropped ${v4.dropped}; swapped ${m.swapped.join(', ')}`);
      figures.push(
        { name: `${name}: migration (copy, swap, merge, re-pin)`, value: m.totalMs, unit: 'ms' },
        { name: `${name}: of which copying the entries`, value: m.copyMs, unit: 'ms' },
        { name: `${name}: of which swapping the filters`, value: m.swapMs, unit: 'ms' },
        { name: `${name}: Datapath.open (load + migration)`, value: r.openMs, unit: 'ms' },
        { name: `${name}: flows after`, value: flows, unit: 'flows' },
        { name: `${name}: live steered packets meanwhile`, value: right, unit: 'packets' },
        { name: `${name}: packets steered wrongly`, value: wrong, unit: 'packets', target: '<= 0' },
      );
      return r;
    };

    await phase('grow 1M', { flowTableSize: 1 << 21 }, FLOWS + LIVE);
    await phase('layout 1->2 1M', { flowTableSize: 1 << 21, objectPath: steerNext }, FLOWS + LIVE);
    await phase('shrink 1M -> 512k', { flowTableSize: 1 << 19, objectPath: steerNext }, null);
  } finally {
    await rig.destroy();
  }
  report('migration', figures);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
