// Proves that the directory source loads every rule file, isolates a broken file (its last good
// rules stay, other files are untouched), drops a deleted file's rules, and reloads on change.
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectoryRuleSource } from '../../src/routes/directory-source.js';
import { RuleSet } from '../../src/routes/rule-set.js';

const vsYaml = (name: string, host = name) => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name} }
spec:
  hosts: [${host}]
  http: [{ name: r, route: [{ destination: { host: ${host} } }] }]
`;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wansteer-rules-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const names = (set: RuleSet) => set.virtualServices().map((v) => v.name).sort();

describe('DirectoryRuleSource', () => {
  it('loads all YAML files and multi-document files, ignoring other files', async () => {
    await writeFile(join(dir, 'a.yaml'), `${vsYaml('a')}---${vsYaml('b')}`);
    await writeFile(join(dir, 'c.yml'), vsYaml('c'));
    await writeFile(join(dir, 'README.md'), 'not rules');
    const ruleSet = new RuleSet();
    const report = await new DirectoryRuleSource({ directory: dir, ruleSet }).load();
    expect(names(ruleSet)).toEqual(['a', 'b', 'c']);
    expect(report).toMatchObject({ files: 2, virtualServices: 3, brokenFiles: [], invalidObjects: [] });
  });

  it('reports a broken file by name and reason, keeps its last good rules and other files\' rules', async () => {
    await writeFile(join(dir, 'a.yaml'), vsYaml('a'));
    await writeFile(join(dir, 'b.yaml'), vsYaml('b'));
    const ruleSet = new RuleSet();
    const source = new DirectoryRuleSource({ directory: dir, ruleSet });
    await source.load();
    await writeFile(join(dir, 'b.yaml'), 'spec: [half-saved');
    await writeFile(join(dir, 'new.yaml'), ': : :');
    const report = await source.load();
    expect(names(ruleSet)).toEqual(['a', 'b']);
    expect(report.brokenFiles.map((p) => [p.file, p.code])).toEqual([
      [join(dir, 'b.yaml'), 'WS_ROUTES_YAML_SYNTAX'],
      [join(dir, 'new.yaml'), 'WS_ROUTES_YAML_SYNTAX'],
    ]);
    expect(report.brokenFiles[0]!.message).toContain(`${join(dir, 'b.yaml')}#1: YAML syntax error`);
    expect(source.skipped.get('WS_ROUTES_YAML_SYNTAX')).toBe(2);
  });

  it('skips an invalid object without touching the valid ones in the same file', async () => {
    await writeFile(join(dir, 'a.yaml'), `${vsYaml('a')}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: bad }\nspec: { hosts: 7 }\n`);
    const ruleSet = new RuleSet();
    const report = await new DirectoryRuleSource({ directory: dir, ruleSet }).load();
    expect(names(ruleSet)).toEqual(['a']);
    expect(report.invalidObjects).toEqual([expect.objectContaining({ code: 'WS_ROUTES_WRONG_TYPE', file: join(dir, 'a.yaml') })]);
  });

  it('refuses a file over the size limit without reading it', async () => {
    await writeFile(join(dir, 'huge.yaml'), `${vsYaml('huge')}#${'x'.repeat(10_000)}\n`);
    const ruleSet = new RuleSet();
    const report = await new DirectoryRuleSource({ directory: dir, ruleSet, maxFileBytes: 1000 }).load();
    expect(names(ruleSet)).toEqual([]);
    expect(report.brokenFiles.map((p) => p.code)).toEqual(['WS_ROUTES_FILE_TOO_LARGE']);
  });

  it('drops the rules of a deleted file', async () => {
    await writeFile(join(dir, 'a.yaml'), vsYaml('a'));
    await writeFile(join(dir, 'b.yaml'), vsYaml('b'));
    const ruleSet = new RuleSet();
    const source = new DirectoryRuleSource({ directory: dir, ruleSet });
    await source.load();
    await unlink(join(dir, 'b.yaml'));
    await source.load();
    expect(names(ruleSet)).toEqual(['a']);
  });

  it('reloads when a file changes while watching', async () => {
    await writeFile(join(dir, 'a.yaml'), vsYaml('a'));
    const ruleSet = new RuleSet();
    const source = new DirectoryRuleSource({ directory: dir, ruleSet, debounceMs: 20 });
    await source.start();
    try {
      const changed = new Promise<void>((resolve) => ruleSet.onChange(() => names(ruleSet).includes('z') && resolve()));
      await writeFile(join(dir, 'z.yaml'), vsYaml('z'));
      await changed;
      expect(names(ruleSet)).toEqual(['a', 'z']);
    } finally {
      source.stop();
    }
  });

  it('reports a missing directory as a broken source instead of throwing', async () => {
    const report = await new DirectoryRuleSource({ directory: join(dir, 'nope'), ruleSet: new RuleSet() }).load();
    expect(report.brokenFiles.map((p) => p.code)).toEqual(['WS_ROUTES_FILE_READ']);
  });
});
