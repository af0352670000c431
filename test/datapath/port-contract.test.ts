/**
 * MemoryDatapath stands in for the kernel datapath in --dry-run and in tests of the layers
 * above; this proves the two give the same answers for the same script of operations (links,
 * policies, DSCP entries, flows of both families, batch writes, deletes, ageing, rejects).
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Datapath, MemoryDatapath, type DatapathPort } from '../../src/datapath/index.js';
import { describePrivileged } from '../helpers/privilege.js';

const T0 = 1_000_000_000_000n;
const SEC = 1_000_000_000n;

/** Run the script on `dp`; return everything it can read back, in a comparable form. */
function script(dp: DatapathPort): unknown {
  const errors: string[] = [];
  const attempt = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      errors.push((e as { code?: string }).code ?? 'no code');
    }
  };
  dp.setLink(0, { ifindex: 1, up: true, nextHop4: '192.0.2.1' });
  dp.setLink(3, { ifindex: 1, up: false, nextHop6: 'fe80::1', nextHop4: '198.51.100.1' });
  dp.setLinkUp(3, true);
  dp.setPolicy(1, { redirectLink: 0 });
  dp.setPolicy(2, { dscp: 46 });
  dp.setPolicy(3, { redirectLink: 3, dscp: 10 });
  dp.deletePolicy(3);
  dp.setDscpPolicy(10, 1);
  dp.setDscpPolicy(12, 2);
  dp.setDscpPolicy(12, null);
  dp.upsertFlow({ protocol: 'tcp', src: '10.0.0.1', sport: 1000, dst: '10.0.0.2', dport: 443 }, 1, T0);
  dp.upsertFlow({ protocol: 'udp', src: 'fd00::1', sport: 53, dst: 'fd00::2', dport: 5353 }, 2, T0);
  // one batch, both families interleaved
  dp.upsertFlows(
    Array.from({ length: 50 }, (_, i) => ({
      key: i % 5 === 4
        ? { protocol: 'udp', src: `fd00:1::${i}`, sport: 2000 + i, dst: 'fd00:9::9', dport: 53 }
        : { protocol: 'tcp', src: `10.1.0.${i}`, sport: 2000 + i, dst: '10.9.9.9', dport: 80 },
      policyId: 1 + (i % 2),
    })),
    T0 + 10n * SEC,
  );
  dp.upsertFlow({ protocol: 'icmp', src: '::ffff:10.0.0.7', dst: '10.0.0.8' }, 2, T0 + 10n * SEC);
  // batches of one (a single report), which the kernel datapath writes as a single write
  dp.upsertFlows([{ key: { protocol: 'tcp', src: '10.2.0.1', sport: 3000, dst: '10.9.9.9', dport: 80 }, policyId: 2 }], T0 + 11n * SEC);
  dp.upsertFlows([{ key: { protocol: 'udp', src: 'fd00:2::1', sport: 3001, dst: 'fd00:9::9', dport: 53 }, policyId: 1 }], T0 + 11n * SEC);
  const deleted = dp.deleteFlows([
    { protocol: 'tcp', src: '10.1.0.0', sport: 2000, dst: '10.9.9.9', dport: 80 },
    { protocol: 'tcp', src: '10.1.0.1', sport: 9999, dst: '10.9.9.9', dport: 80 }, // not there
  ]);
  const aged = dp.ageFlows(5n * SEC, T0 + 12n * SEC); // the two T0 flows are 12 s idle
  attempt(() => dp.setPolicy(5, {}));
  attempt(() => dp.setDscpPolicy(64, 1));
  attempt(() => dp.upsertFlow({ protocol: 'tcp', src: '10.0.0.1', sport: 0, dst: '10.0.0.2', dport: 1 }, 1));
  attempt(() => dp.upsertFlows([{ key: { protocol: 'tcp', src: '10.0.0.1', sport: 1, dst: 'fd00::1', dport: 1 }, policyId: 1 }]));
  attempt(() => dp.setLink(64, { ifindex: 1, up: true }));
  const sortFlows = dp.listFlows().map((f) => JSON.stringify({ ...f, lastSeenNs: String(f.lastSeenNs) })).sort();
  return {
    links: [...dp.listLinks()],
    policies: [...dp.listPolicies()],
    dscp: [...dp.listDscpPolicies()],
    flows: sortFlows,
    policy2Flows: dp.listFlows({ policyId: 2 }).length,
    count: dp.countFlows(),
    byPolicy: [...dp.countFlowsByPolicy()].sort(),
    deleted,
    aged,
    errors,
    lookup: dp.getFlow({ protocol: 'tcp', src: '10.1.0.3', sport: 2003, dst: '10.9.9.9', dport: 80 }),
  };
}

describePrivileged('DatapathPort: MemoryDatapath answers as the kernel datapath does', () => {
  const pinDir = `/sys/fs/bpf/wst-${process.pid}-port`;
  let kernel: Datapath;
  beforeAll(() => {
    kernel = Datapath.open({ pinDir, flowTableSize: 4096 });
  });
  afterAll(() => {
    kernel?.destroy();
    rmSync(pinDir, { recursive: true, force: true });
  });

  it('gives the same tables, counts and errors for the same operations', () => {
    const fromKernel = script(kernel);
    const fromMemory = script(new MemoryDatapath(4096, { lo: 1 }));
    expect(fromMemory).toEqual(fromKernel);
    // and the script really exercised something
    expect((fromKernel as { count: number }).count).toBe(52); // 2 + 50 + 1 + 2 written, 1 deleted, 2 aged out
    expect((fromKernel as { errors: string[] }).errors).toEqual(Array(5).fill('WS_DATAPATH_INVALID'));
  });
});
