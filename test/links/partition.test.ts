/**
 * Failover while cut off from the control plane: `wansteer agent` in the edge of the two-link
 * lab takes its rules and policies from a cluster whose API server cannot be reached, on a node
 * that rebooted meanwhile (no pinned maps), with the node's cluster snapshot in its state
 * directory. It is ready at once, steers new sessions by the snapshot, and still moves a steered
 * flow off wan1 when wan1 loses its carrier, and back after the hysteresis.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '../helpers/privilege.js';
import { FailoverLab, ms } from './failover-lab.js';

describePrivileged('link failover with the API server out of reach (cluster mode, node snapshot)', () => {
  let rig: FailoverLab;
  let stream: ChildProcess | undefined;

  beforeAll(async () => {
    rig = await FailoverLab.start('partition', { rules: 'cluster-cut-off' });
  }, 120_000);

  afterAll(async () => {
    stream?.kill('SIGKILL');
    await rig?.stop();
  });

  it('steers by the snapshot and moves flows off a link that loses its carrier', async () => {
    expect(rig.log).toMatch(/steering by this node's snapshot of the cluster until the API server answers/);
    expect(rig.http({ path: '/readyz' })[0]?.status).toBe(200);
    stream = rig.steer(47001, 'plain', 8); // throws unless the report was steered
    await rig.arrival(47001, 'c1', 0n, 10_000);

    const fault = rig.carrier(false);
    const moved = await rig.arrival(47001, 'c0', fault, 15_000);
    console.log(`cut off from the API server, carrier loss: fault -> first packet on wan0: ${ms(moved - fault).toFixed(1)} ms`);
    // Moved by the carrier watch (how fast is bench/failover.ts's business; a loaded machine takes longer).
    expect(rig.links().find((l) => l.name === 'wan1')).toMatchObject({ up: false, reason: 'no carrier' });
    await expect.poll(() => rig.log, { timeout: 10_000 }).toMatch(/"kind":"failover","from":"wan1","to":"wan0","reason":"no carrier"/);

    const recover = rig.carrier(true);
    await rig.arrival(47001, 'c1', recover, 20_000);
    // Back after the hysteresis: 10 answered probes first (said by the monitor, not timed).
    await expect.poll(() => rig.log, { timeout: 10_000 }).toMatch(/"link":"wan1","up":true,"reason":"10 probes answered in a row"/);
    // Cut off all along (the lists hang on a TEST-NET address), and ready on its snapshot.
    expect(rig.log).not.toMatch(/"msg":"wansteer agent ready"/);
    expect(rig.http({ path: '/readyz' })[0]?.status).toBe(200);
  }, 90_000);
});
