/**
 * The nftables table and ip rules of internet links, as layout.ts writes them, loaded into a real
 * kernel (a namespace of the test's own): the script parses, one transaction replaces the class
 * rules, and the class map read back from the kernel is the one written (what a restarted agent
 * adopts).
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import { classesScript, internetLayout, parseClasses, ruleLines, rulesetScript, type InternetLayout } from '../../src/datapath/internet/layout.js';
import { describePrivileged } from '../helpers/privilege.js';

const NS = `wst${process.pid}-layout`;
const inNs = (argv: string[], input?: string) => execFileSync('nsenter', [`--net=/run/netns/${NS}`, '--', ...argv], { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });

describePrivileged('internet links: the rules as the kernel takes them', () => {
  let layout: InternetLayout;
  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', NS]);
    const config = resolveConfig(
      {
        links: [
          { name: 'tunnel', interface: 'wg0' },
          { name: 'fibre', interface: 'wan0', addressing: 'internet', nextHop4: '192.0.2.1' },
          { name: 'lte', interface: 'wwan0', addressing: 'internet', table: 4100 },
        ],
        defaultLink: 'fibre',
      },
      { argv: [], env: {}, hostname: () => 'n' },
    );
    layout = internetLayout(config.links, config.internet)!;
  });
  afterAll(() => {
    execFileSync('ip', ['netns', 'del', NS]);
  });

  it('gives internet links their index\'s mark and table, and skips overlay links', () => {
    expect(layout.links.map((l) => [l.name, l.id, l.table, l.mark.toString(16)])).toEqual([
      ['fibre', 1, 3601, '2000000'],
      ['lte', 2, 4100, '3000000'],
    ]);
  });

  it('loads into nftables, and the class map read back is the one written, after a second transaction too', () => {
    inNs(['nft', '-f', '-'], rulesetScript(layout, new Map([[10, 2], [46, 1]])));
    const read = () => parseClasses(inNs(['nft', '-j', 'list', 'chain', 'inet', 'wansteer', 'classes']));
    expect([...read()].sort()).toEqual([[10, 2], [46, 1]]);
    inNs(['nft', '-f', '-'], classesScript(layout, new Map([[10, 1], [63, 2], [64, 1], [5, 9]])));
    expect([...read()].sort()).toEqual([[10, 1], [63, 2]]); // out-of-range DSCP and unknown link dropped
    // Replacing the whole table again (an agent restart) is one transaction as well.
    inNs(['nft', '-f', '-'], rulesetScript(layout, read()));
    expect([...read()].sort()).toEqual([[10, 1], [63, 2]]);
  });

  it('writes rules ip takes, the first keeping marked traffic on main\'s specific routes', () => {
    inNs(['ip', '-batch', '-'], ruleLines(layout).join('\n') + '\n');
    const rules = inNs(['ip', 'rule', 'show']);
    expect(rules).toMatch(/9000:\s+not from all fwmark 0\/0x3f000000 lookup main suppress_prefixlength 0 proto 87/);
    expect(rules).toMatch(/9002:\s+from all fwmark 0x2000000\/0x3f000000 lookup 3601 proto 87/);
    expect(rules).toMatch(/9003:\s+from all fwmark 0x3000000\/0x3f000000 lookup 4100 proto 87/);
  });
});
