/**
 * The kernel state of internet links over the agent's life: a restart (SIGTERM) or a crash
 * (kill -9) keeps every rule in force and the next agent adopts it — nothing duplicated, an open
 * connection undisturbed — `wansteer cleanup` leaves nothing behind, and a link the agent cannot
 * set up stops it with a coded error naming the field, before anything is installed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeLab, EdgeRig, INTERNET_CLOUD, ISPS, SESSION_PORT } from '../../src/lab/index.js';
import { fromRoot } from '../../src/config/paths.js';
import { describePrivileged } from '../helpers/privilege.js';

const CLASS_10 = 10 << 2;
const CLI = [process.execPath, '--import', 'tsx', fromRoot('src/cli/main.ts')];

/** What the agent has in the edge's kernel: its rules (both families), routes of its tables, its nftables table. */
function kernelState(lab: EdgeLab): { rules: string[]; routes: string[]; table: boolean; chains: string[]; classes: string[] } {
  const rules = ['-4', '-6'].flatMap((f) => lab.exec(lab.edge, ['ip', f, 'rule', 'show']).split('\n').filter((l) => l.includes('proto 87')).map((l) => `${f} ${l.trim()}`));
  const routes = ['-4', '-6'].flatMap((f) =>
    ['3600', '3601'].flatMap((t) => lab.exec(lab.edge, ['ip', f, 'route', 'show', 'table', t]).split('\n').filter(Boolean).map((l) => `${f} ${t} ${l.trim()}`)),
  );
  let table = true;
  let chains: string[] = [];
  let classes: string[] = [];
  try {
    const json = JSON.parse(lab.exec(lab.edge, ['nft', '-j', 'list', 'table', 'inet', 'wansteer'])) as { nftables: { chain?: { name: string } }[] };
    chains = json.nftables.flatMap((i) => (i.chain ? [i.chain.name] : []));
    classes = lab.exec(lab.edge, ['nft', 'list', 'chain', 'inet', 'wansteer', 'classes']).split('\n').filter((l) => l.includes('goto'));
  } catch {
    table = false;
  }
  return { rules, routes, table, chains, classes };
}

describePrivileged('internet links: restart, crash, cleanup', () => {
  let rig: EdgeRig;
  beforeAll(async () => {
    rig = await EdgeRig.start({ tag: 'life' });
    expect(rig.putPolicy('video', { match: { dscp: 10 }, action: { links: ['wan1', 'wan0'], mode: 'redirect' } }).status).toBe(201);
  }, 60_000);
  afterAll(async () => {
    await rig?.stop();
  });

  it('installs one rule per link plus the main-without-default rule, per family, and one route per table and family', () => {
    const s = kernelState(rig.lab);
    expect(s.rules).toHaveLength(6);
    expect(s.routes).toHaveLength(4);
    expect(s.table).toBe(true);
    expect(s.chains).toEqual(expect.arrayContaining(['prerouting', 'output', 'classes', 'postrouting', 'bind_0', 'bind_1']));
    expect(s.classes.map((l) => l.trim())).toEqual(['ip dscp af11 goto bind_1 comment "class 10"', 'ip6 dscp af11 goto bind_1 comment "class 10"']);
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`${signal}: the rules stay in force while the agent is away, the next agent adopts them without a duplicate, and the class rules are kept`, async () => {
      const before = kernelState(rig.lab);
      await rig.stopAgent(signal);
      // Steering goes on while no agent runs.
      expect(rig.exchange('pod0', { tos: CLASS_10 }).seen).toBe(ISPS.isp1.edge4);
      expect(kernelState(rig.lab)).toEqual(before);
      await rig.startAgent();
      expect(kernelState(rig.lab)).toEqual(before);
      expect(rig.exchange('pod0', { tos: CLASS_10 }).seen).toBe(ISPS.isp1.edge4);
      expect(rig.exchange('pod1', { dst: INTERNET_CLOUD.v6, tos: CLASS_10 }).seen).toBe(ISPS.isp1.edge6);
      await rig.api.waitLinks((ls) => ls.every((l) => l.up), 15_000, 'both links up after the restart');
    }, 60_000);
  }

  it('wansteer cleanup removes the rules, routes, nftables table, probe rules and pins: nothing is left', async () => {
    await rig.stopAgent('SIGTERM');
    const out = rig.lab.exec(rig.lab.edge, [...CLI, 'cleanup', '--config', rig.configFile]);
    expect(out).toMatch(/2 internet link/);
    expect(kernelState(rig.lab)).toEqual({ rules: [], routes: [], table: false, chains: [], classes: [] });
    for (const f of ['-4', '-6']) expect(rig.lab.exec(rig.lab.edge, ['ip', f, 'rule', 'show']).split('\n').filter((l) => /^57\d\d:/.test(l))).toEqual([]);
    expect(rig.lab.exec(rig.lab.edge, ['tc', 'filter', 'show', 'dev', 'wan1', 'egress'])).not.toMatch(/ws_egress/);
    expect(() => execFileSync('ls', [rig.pinDir], { stdio: 'pipe' })).toThrow();
    // Without the agent's rules, class 10 takes the default route again.
    expect(rig.exchange('pod0', { tos: CLASS_10 }).seen).toBe(ISPS.isp0.edge4);
    await rig.startAgent();
  }, 60_000);

  describe('a link the agent cannot set up stops it with the field and the fix, and installs nothing', () => {
    const start = (extra: string[], edit: (cfg: string) => string = (c) => c): { code: number; stderr: string } => {
      rig.lab.exec(rig.lab.edge, [...CLI, 'cleanup', '--config', rig.configFile]);
      const file = join(rig.dir, 'bad.yaml');
      writeFileSync(file, edit(execFileSync('cat', [rig.configFile], { encoding: 'utf8' })) + extra.join('\n') + '\n');
      try {
        rig.lab.exec(rig.lab.edge, [...CLI, 'agent', '--config', file]);
        return { code: 0, stderr: '' };
      } catch (err) {
        const e = err as { status: number; stderr: string };
        return { code: e.status, stderr: e.stderr };
      }
    };
    beforeAll(async () => {
      await rig.stopAgent('SIGTERM');
    });
    afterAll(async () => {
      rig.lab.exec(rig.lab.edge, ['ip', 'rule', 'del', 'pref', '9001']).toString();
      await rig.startAgent();
    });

    it('an interface without an address: WS_INTERNET_NO_ADDRESS on links[1].interface', () => {
      rig.lab.exec(rig.lab.edge, ['ip', 'link', 'add', 'wan9', 'type', 'veth', 'peer', 'name', 'wan9p']);
      const r = start([], (c) => c.replace('interface: wan1,', 'interface: wan9,'));
      rig.lab.exec(rig.lab.edge, ['ip', 'link', 'del', 'wan9']);
      expect(r.code).toBe(78);
      expect(r.stderr).toMatch(/links\[1\]\.interface: interface wan9 of internet link wan1 has no global address.*fix: .*\(WS_INTERNET_NO_ADDRESS\)/);
      expect(kernelState(rig.lab)).toEqual({ rules: [], routes: [], table: false, chains: [], classes: [] });
      expect(existsSync(rig.pinDir)).toBe(false); // not even the datapath was loaded
    });

    it('a routing table holding someone else\'s route: WS_INTERNET_TABLE_TAKEN on links[0].table', () => {
      rig.lab.exec(rig.lab.edge, ['ip', 'route', 'add', '198.18.0.0/15', 'dev', 'wan0', 'table', '3600']);
      const r = start([]);
      rig.lab.exec(rig.lab.edge, ['ip', 'route', 'del', '198.18.0.0/15', 'dev', 'wan0', 'table', '3600']);
      expect(r.code).toBe(78);
      expect(r.stderr).toMatch(/links\[0\]\.table: routing table 3600 of link wan0 already holds a route the agent did not make.*WS_INTERNET_TABLE_TAKEN/);
      expect(kernelState(rig.lab).rules).toEqual([]);
    });

    it('a rule priority someone else uses: WS_INTERNET_RULE_TAKEN on internet.rulePriority', () => {
      rig.lab.exec(rig.lab.edge, ['ip', 'rule', 'add', 'pref', '9001', 'from', '10.99.0.0/16', 'lookup', 'main']);
      const r = start([]);
      expect(r.code).toBe(78);
      expect(r.stderr).toMatch(/internet\.rulePriority: priority 9001 already holds a rule the agent did not make.*WS_INTERNET_RULE_TAKEN/);
      expect(kernelState(rig.lab)).toEqual({ rules: [], routes: [], table: false, chains: [], classes: [] });
    });
  });
});
