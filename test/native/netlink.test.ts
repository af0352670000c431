/**
 * The in-process carrier read (native/netlink.ts) against the kernel, inside a lab namespace:
 * flags of real veths as their far end loses carrier and as they are set down, -ENODEV for a
 * missing interface, and answers that match `ip link show`.
 */
import { expect, it } from 'vitest';
import { fromRoot } from '../../src/config/paths.js';
import { IFF_LOWER_UP, IFF_UP } from '../../native/netlink.js';
import { sh, WanLab } from '../helpers/netns.js';
import { describePrivileged } from '../helpers/privilege.js';

const DRIVER = fromRoot('test/native/link-flags-driver.ts');

describePrivileged('rtnetlink link flags (native/netlink.ts)', () => {
  const read = (lab: WanLab, ...names: string[]): Record<string, number> =>
    JSON.parse(lab.exec(lab.edge, [process.execPath, '--import', 'tsx', DRIVER, ...names]));
  const carrier = (flags: number) => ({ up: (flags & IFF_UP) !== 0, lowerUp: (flags & IFF_LOWER_UP) !== 0 });

  it('reads UP and LOWER_UP as the far end and the interface change, and ENODEV for none', () => {
    // Proves the flags the carrier poll acts on, read in the namespace of the reading process.
    const lab = WanLab.create('netlink');
    try {
      let f = read(lab, 'wan0', 'wan1', 'nothere0');
      expect(carrier(f.wan0!)).toEqual({ up: true, lowerUp: true });
      expect(carrier(f.wan1!)).toEqual({ up: true, lowerUp: true });
      expect(f.nothere0).toBe(-19); // -ENODEV

      lab.setCloudLink('c1', false); // carrier lost on wan1, wan1 itself still UP
      f = read(lab, 'wan0', 'wan1');
      expect(carrier(f.wan1!)).toEqual({ up: true, lowerUp: false });
      expect(carrier(f.wan0!)).toEqual({ up: true, lowerUp: true });
      expect(sh('ip', ['-n', lab.edge, '-o', 'link', 'show', 'dev', 'wan1'])).not.toMatch(/LOWER_UP/);

      lab.exec(lab.edge, ['ip', 'link', 'set', 'wan0', 'down']);
      f = read(lab, 'wan0');
      expect(carrier(f.wan0!)).toEqual({ up: false, lowerUp: false });

      lab.setCloudLink('c1', true);
      expect(carrier(read(lab, 'wan1').wan1!)).toEqual({ up: true, lowerUp: true });
    } finally {
      lab.destroy();
    }
  });
});
