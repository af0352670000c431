// Proves that a writer killed with SIGKILL at any moment never leaves a torn policy file: after
// each of 25 kills at random points in a tight write loop, the file parses, validates, and holds
// a complete state (all eight policies, each description whole), and versions never go back.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePolicyFile } from '../../src/policies/policy-file.js';
import { packageRoot } from '../../src/config/paths.js';

const KILLS = 25;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wansteer-crash-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Starts the writer, lets it write for `ms` after its first write in the loop, then SIGKILLs it. */
async function writeThenKill(path: string, ms: number): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/policies/fixtures/policy-writer.ts', path], {
    cwd: packageRoot(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('wrote') && resolve());
    child.on('exit', () => reject(new Error(`writer exited before writing: ${stderr}`)));
  });
  await new Promise((resolve) => setTimeout(resolve, ms));
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
}

describe('FilePolicyStore under kill -9', () => {
  it(`the file is always whole after ${KILLS} kills mid-write`, async () => {
    const path = join(dir, 'policies.yaml');
    let lastRevision = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      await writeThenKill(path, 1 + Math.floor(Math.random() * 80));
      const content = parsePolicyFile(await readFile(path, 'utf8'), path, new Set(['fibre', 'lte']));
      const names = content.items.map((i) => i.name);
      expect(names.slice(0, 8)).toEqual(['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7']);
      expect(names.length === 8 || (names.length === 9 && names[8] === 'extra')).toBe(true);
      for (const item of content.items) expect(item.spec.description).toMatch(/^iteration \d+ x{900}$/);
      // The last write's version is the file's revision: nothing half-applied.
      expect(Math.max(...content.items.map((i) => i.version ?? 0))).toBeLessThanOrEqual(content.revision);
      expect(content.revision).toBeGreaterThanOrEqual(lastRevision);
      lastRevision = content.revision;
    }
    // The writer got somewhere every time (each run waits for its first write): the revision rose
    // by at least one per kill. How many writes fit between kills is the machine's speed, not asserted.
    expect(lastRevision).toBeGreaterThanOrEqual(8 + KILLS);
  }, 180_000);
});
