/**
 * Proves the loader's checks at start: a pin directory that is not on bpffs fails at once with its
 * code and the fix; pins of an agent before layout stamps are adopted as layout 1 and stamped;
 * without a flowTableSize the pinned tables keep their size; a stamp that is not ours is refused
 * before anything is created.
 */
import { mkdtempSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import * as native from '../../native/libbpf.js';
import { Datapath, DatapathError } from '../../src/datapath/index.js';
import { readStamp } from '../../src/datapath/pins.js';
import { describePrivileged } from '../helpers/privilege.js';

describe('datapath loader: the pin directory', () => {
  it('refuses a pin dir outside bpffs (sysfs, tmpfs, missing parents) with WS_DATAPATH_PIN', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wsload-'));
    try {
      for (const pinDir of [join(dir, 'a/b/c'), '/sys/kernel/wansteer-test', '/proc/wansteer']) {
        const started = Date.now();
        let error: unknown;
        try {
          Datapath.open({ pinDir });
        } catch (err) {
          error = err;
        }
        expect(error, pinDir).toBeInstanceOf(DatapathError);
        expect((error as DatapathError).code).toBe('WS_DATAPATH_PIN');
        expect((error as DatapathError).message).toMatch(/mount -t bpf/);
        expect(Date.now() - started).toBeLessThan(2000);
      }
      // and created nothing on the way
      expect(() => rmSync(join(dir, 'a'))).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describePrivileged('datapath loader: layout stamps', () => {
  const pinDir = `/sys/fs/bpf/wst-loader-${process.pid}`;
  afterEach(() => rmSync(pinDir, { recursive: true, force: true }));

  it('adopts the pins of an agent before stamps as layout 1, as they are, and stamps them', () => {
    const first = Datapath.open({ pinDir, flowTableSize: 4096 });
    first.setPolicy(3, { dscp: 46 });
    first.upsertFlow({ protocol: 'udp', src: '10.0.0.1', sport: 5000, dst: '10.0.0.2', dport: 53 }, 3);
    first.close();
    expect(readStamp(pinDir)).toBe(1);
    unlinkSync(join(pinDir, 'ws_meta')); // what an agent before stamps left
    expect(readStamp(pinDir)).toBeNull();

    const dp = Datapath.open({ pinDir }); // no size asked for: the pinned one stays
    expect({ adopted: dp.adopted, migration: dp.migration, flowTableSize: dp.flowTableSize, layout: dp.layoutVersion })
      .toEqual({ adopted: true, migration: null, flowTableSize: 4096, layout: 1 });
    expect(dp.getFlow({ protocol: 'udp', src: '10.0.0.1', sport: 5000, dst: '10.0.0.2', dport: 53 })).toMatchObject({ policyId: 3 });
    expect(readStamp(pinDir)).toBe(1);
    dp.destroy();
    expect(readdirSync(pinDir)).toEqual([]);
  });

  it('refuses a ws_meta pin that is not a stamp, before creating anything', () => {
    const fd = native.mapCreate(2, 'ws_meta', 4, 8, 1); // an array, but not struct ws_meta
    expect(fd).toBeGreaterThan(0);
    Datapath.open({ pinDir, flowTableSize: 64 }).destroy(); // makes the directory
    expect(native.objPin(fd, join(pinDir, 'ws_meta'))).toBe(0);
    native.closeFd(fd);
    let error: unknown;
    try {
      Datapath.open({ pinDir, flowTableSize: 64 });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(DatapathError);
    expect(error).toMatchObject({ code: 'WS_DATAPATH_LAYOUT', message: expect.stringMatching(/ws_meta is not a wansteer layout stamp.*nothing was changed/) });
    expect(readdirSync(pinDir)).toEqual(['ws_meta']);
  });
});
