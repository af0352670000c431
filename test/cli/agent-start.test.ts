/**
 * Proves `wansteer agent` stops a start that cannot succeed with a coded message and exit 78,
 * never a stack: a missing token file or rules directory before the datapath is set up (the
 * config asks for the kernel datapath, whose pin directory is never created), and a policy file
 * that is a YAML alias bomb with the policy store's 503 code.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wansteer-agent-start-'));
  mkdirSync(join(dir, 'rules'));
  writeFileSync(join(dir, 'token'), 'start-token\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the agent with `config` (YAML lines); its exit code and stderr. */
function agent(name: string, lines: string[]): { status: number | null; stderr: string } {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, ['links: [{ name: wan0, interface: wan0 }]', 'defaultLink: wan0', 'listen: { http: "127.0.0.1:1" }', `stateDir: ${join(dir, 'state')}`, 'log: { level: fatal }', ...lines].join('\n') + '\n');
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'agent', '--config', file], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, WANSTEER_CONFIG: '' } });
  return { status: r.status, stderr: r.stderr };
}

describe('wansteer agent: a start that cannot succeed', () => {
  it('a missing token file: exit 78 naming auth.tokenFile, before the datapath is set up', () => {
    const pinDir = join(dir, 'pins-token');
    const r = agent('token', [`auth: { tokenFile: ${join(dir, 'absent-token')} }`, `rules: { source: directory, directory: ${join(dir, 'rules')} }`, `datapath: { pinDir: ${pinDir} }`]);
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/WS_CONFIG_FILE_READ/);
    expect(r.stderr).toMatch(/auth\.tokenFile \(.*absent-token\): does not exist; fix: /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(pinDir)).toBe(false);
  });

  it('a missing rules directory: exit 78 naming rules.directory, before the datapath is set up', () => {
    const pinDir = join(dir, 'pins-rules');
    const r = agent('rules', [`auth: { tokenFile: ${join(dir, 'token')} }`, `rules: { source: directory, directory: ${join(dir, 'no-rules')} }`, `datapath: { pinDir: ${pinDir} }`]);
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/rules\.directory \(.*no-rules\): does not exist; fix: create the directory/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(pinDir)).toBe(false);
  });

  it('a policy file that is a YAML alias bomb: exit 78 with WS_POLICY_FILE_INVALID, not expanded', () => {
    const policies = join(dir, 'policies.yaml');
    const levels = ['apiVersion: wansteer.io/v1alpha1', 'kind: WanPolicyList', 'x0: &x0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) levels.push(`x${i}: &x${i} [${Array(9).fill(`*x${i - 1}`).join(',')}]`);
    writeFileSync(policies, [...levels, 'items: *x8'].join('\n') + '\n');
    const r = agent('bomb', [`rules: { source: directory, directory: ${join(dir, 'rules')} }`, `policies: { store: file, file: ${policies} }`, 'datapath: { dryRun: true }']);
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/policy file .*policies\.yaml is not valid: YAML: .*alias.* \(WS_POLICY_FILE_INVALID\)/i);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
