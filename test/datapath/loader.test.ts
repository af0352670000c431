/** Proves a pin directory that is not on bpffs fails at once with its code and the fix, never hangs. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Datapath, DatapathError } from '../../src/datapath/index.js';

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
