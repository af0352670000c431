/**
 * Shared benchmark plumbing: describe the machine, print a table, write
 * bench/results/<name>.json as {"benchmark","date","machine","figures":[{name,value,unit,target}]}.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, release } from 'node:os';

export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** The goal as text, e.g. "<= 30" or ">= 200000"; omitted for context figures. */
  target?: string;
}

export function machine(): string {
  const c = cpus();
  return `${c[0]?.model.trim() ?? 'unknown CPU'}, ${c.length} cores, Linux ${release()}, Node ${process.version}`;
}

function meets(value: number, target?: string): string {
  if (!target) return '';
  const m = /^(<=|>=|<|>)\s*(-?[\d.]+)$/.exec(target.trim());
  if (!m) return '';
  const t = Number(m[2]);
  const ok = m[1] === '<=' ? value <= t : m[1] === '>=' ? value >= t : m[1] === '<' ? value < t : value > t;
  return ok ? 'yes' : 'NO';
}

export function report(benchmark: string, figures: Figure[]): void {
  const rows = figures.map((f) => [f.name, formatValue(f.value), f.unit, f.target ?? '', meets(f.value, f.target)]);
  const head = ['figure', 'value', 'unit', 'target', 'met'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 1 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  console.log(`\n${benchmark} — ${machine()}`);
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  const dir = new URL('./results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  const rounded = figures.map((f) => ({ ...f, value: Number.isInteger(f.value) ? f.value : Math.round(f.value * 100) / 100 }));
  const out = { benchmark, date: new Date().toISOString(), machine: machine(), figures: rounded };
  writeFileSync(new URL(`${benchmark}.json`, dir), JSON.stringify(out, null, 2) + '\n');
}

function formatValue(v: number): string {
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  return v >= 100 ? v.toFixed(0) : v.toFixed(2);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Benchmarks that need root say why they cannot run, and exit 0: a skip, not a failure. */
export function requireRoot(benchmark: string): boolean {
  if (process.getuid?.() === 0) return true;
  console.log(`${benchmark}: skipped — needs root (BPF, tc and network namespaces)`);
  return false;
}

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/** The agent as it ships, built by buildShippedAgent. */
export interface ShippedAgent {
  /** The package's bin/wansteer.js. */
  bin: string;
  /** The node flags of that file's #! line (they size V8's young generation; see there). */
  nodeFlags: string[];
  /** `wansteer` as a user's shell starts it: node, the #! line's flags, bin/wansteer.js. */
  cli: string[];
}

/**
 * The agent as it ships: compiled by tsc into a package of its own under `dir` (not the tree's
 * dist/, which bin/wansteer.js would then prefer for everyone), started by its bin/wansteer.js
 * with the node flags of that file's #! line. A benchmark so measures what a user runs, not tsx,
 * whose transpiler carries ~90 MB of RSS and ~0.6 % of a core idle.
 */
export function buildShippedAgent(dir: string): ShippedAgent {
  const pkg = join(dir, 'pkg');
  mkdirSync(join(pkg, 'bin'), { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  // A copy, not a link: node would resolve a link to the tree's bin/, which runs the tree's dist/ or src/.
  const bin = join(pkg, 'bin/wansteer.js');
  copyFileSync(join(ROOT, 'bin/wansteer.js'), bin);
  for (const d of ['node_modules', 'proto', 'build']) symlinkSync(join(ROOT, d), join(pkg, d));
  const main = join(pkg, 'dist/src/cli/main.js');
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json'), '--outDir', join(pkg, 'dist'), '--sourceMap', 'false'], { stdio: 'pipe' });
  } catch (err) {
    // Type errors (someone's edit in progress) still emit; only a missing output is fatal.
    if (!existsSync(main)) throw err;
    console.log('tsc reported errors; benchmarking what it emitted');
  }
  const nodeFlags = shebangNodeFlags(bin);
  return { bin, nodeFlags, cli: [process.execPath, ...nodeFlags, bin] };
}

function shebangNodeFlags(script: string): string[] {
  const first = readFileSync(script, 'utf8').split('\n', 1)[0]!;
  const m = /^#!\S*?(?:\/env\s+(?:-S\s+)?|\/)node(?:\s+(.*))?$/.exec(first);
  if (!m) throw new Error(`${script}: its #! line does not start node: ${first}`);
  return m[1]?.trim().split(/\s+/) ?? [];
}
