/**
 * The layer rules of docs/architecture.md, checked on every run: the table there is the one place
 * they are written, and this test reads it. It fails when
 *   - a file in src/ imports from a folder its layer may not import,
 *   - a file outside a folder that has a door imports anything of it but the door,
 *   - anything but datapath/ imports native/,
 *   - files import each other in a circle (two files, or more).
 * Type-only imports count: a circle of types is still a circle a reader must untangle.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');

interface LayerRule {
  folder: string;
  /** The one file others import, relative to the folder; undefined: any file. */
  door: string | undefined;
  mayImport: Set<string>;
}

/** The rules table of docs/architecture.md: | `folder/` | door | may import | ... |. */
function readRules(): Map<string, LayerRule> {
  const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8');
  const section = doc.split('<!-- layer-rules -->')[1];
  if (!section) throw new Error('docs/architecture.md has no <!-- layer-rules --> table');
  const rules = new Map<string, LayerRule>();
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    const folder = /^`([a-z0-9-]+)\/`$/.exec(cells[1] ?? '')?.[1];
    if (!folder) {
      if (rules.size > 0 && !line.startsWith('|')) break;
      continue;
    }
    const door = /^`([^`]+)`$/.exec(cells[2] ?? '')?.[1];
    const mayImport = new Set([...(cells[3] ?? '').matchAll(/`([a-z0-9-]+)\/`/g)].map((m) => m[1]!));
    rules.set(folder, { folder, door, mayImport });
  }
  return rules;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Each relative import of a file, resolved to a repository path (.js → .ts). */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => resolve(dirname(file), spec).replace(/\.js$/, '.ts'));
}

/** `src/<folder>/...` → folder; native/ for the binding; undefined outside both. */
function folderOf(path: string): string | undefined {
  const rel = relative(ROOT, path).split('/');
  if (rel[0] === 'native') return 'native';
  return rel[0] === 'src' && rel.length > 2 ? rel[1] : undefined;
}

const rules = readRules();
const files = sourceFiles(SRC);
const edges = new Map(files.map((f) => [f, importsOf(f)]));
const show = (p: string) => relative(ROOT, p);

describe('architecture (docs/architecture.md, layer rules)', () => {
  it('the rules table names every folder of src/ and only those', () => {
    const folders = readdirSync(SRC).filter((n) => statSync(join(SRC, n)).isDirectory());
    expect([...rules.keys()].sort()).toEqual(folders.sort());
  });

  it('each folder imports only the layers it may, through their doors', () => {
    const broken: string[] = [];
    for (const [file, targets] of edges) {
      const from = folderOf(file)!;
      for (const target of targets) {
        const to = folderOf(target);
        if (!to || to === from) continue;
        if (to === 'native') {
          if (from !== 'datapath') broken.push(`${show(file)} imports native/ (only datapath/ may)`);
          continue;
        }
        const rule = rules.get(from);
        if (!rule?.mayImport.has(to)) {
          broken.push(`${show(file)} imports ${show(target)}: ${from}/ may not import ${to}/`);
          continue;
        }
        const door = rules.get(to)?.door;
        if (door && target !== join(SRC, to, door)) {
          broken.push(`${show(file)} imports ${show(target)}: ${to}/ is entered by its door ${to}/${door}`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it('no circle of imports between files', () => {
    // Tarjan's strongly connected components: any component of two or more files is a circle.
    const index = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const circles: string[][] = [];
    let next = 0;
    const visit = (v: string): void => {
      index.set(v, next);
      low.set(v, next);
      next++;
      stack.push(v);
      onStack.add(v);
      for (const w of edges.get(v) ?? []) {
        if (!edges.has(w)) continue;
        if (!index.has(w)) {
          visit(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (onStack.has(w)) {
          low.set(v, Math.min(low.get(v)!, index.get(w)!));
        }
      }
      if (low.get(v) === index.get(v)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(show(w));
        } while (w !== v);
        if (component.length > 1) circles.push(component.sort());
      }
    };
    for (const f of files) if (!index.has(f)) visit(f);
    expect(circles).toEqual([]);
  });

  it('the checker sees a forbidden import when there is one', () => {
    // The rules are not vacuous: datapath/ may not import steering/, and the parser finds imports.
    expect(rules.get('datapath')?.mayImport.has('steering')).toBe(false);
    expect(importsOf(join(SRC, 'steering/engine.ts')).length).toBeGreaterThan(3);
  });
});
