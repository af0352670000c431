// Proves every command survives a reader that goes away (`wansteer status | head -4`): the real
// CLI runs as a child process whose stdout (and in one case stderr) is a pipe already closed at
// the far end, so each write fails with EPIPE. It must finish with its own exit code and no
// "Unhandled 'error' event" stack trace, instead of dying on the first write.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from '../../src/cli/main.js';
import { fixture } from '../api/helpers/app-fixture.js';

const ROOT = join(import.meta.dirname, '../..');

/** Runs `wansteer ...argv` with its stdout (and stderr, if asked) closed before it writes. */
function runClosed(argv: string[], opts: { closeStderr?: boolean } = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...argv], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, WANSTEER_AGENT: '' },
    });
    child.stdout.destroy();
    let stderr = '';
    if (opts.closeStderr) child.stderr.destroy();
    else child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('the CLI with its output pipe closed', () => {
  let app: ReturnType<typeof fixture>['app'];
  let agentUrl: string;

  beforeAll(async () => {
    // An agent's API (over test doubles) for `status` to print a full answer from.
    ({ app } = fixture());
    agentUrl = await app.listen({ host: '127.0.0.1', port: 0 });
  });

  afterAll(async () => {
    await app?.close();
  });

  it('`wansteer status` prints into a closed pipe and exits with its own code (0: ready)', async () => {
    const { code, stderr } = await runClosed(['status', '--agent', agentUrl]);
    expect(stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(code).toBe(0);
  });

  it.each(Object.keys(commands))('`wansteer %s --help` exits 0', async (name) => {
    const { code, stderr } = await runClosed([name, '--help']);
    expect(stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(code).toBe(0);
  });

  it('the usage (no command) exits 2 with both stdout and stderr closed', async () => {
    expect((await runClosed([], { closeStderr: true })).code).toBe(2);
    const unknown = await runClosed(['no-such-command'], { closeStderr: true });
    expect(unknown.code).toBe(2);
  });
});
