/**
 * Shared benchmark plumbing: describe the machine, print a table, write
 * bench/results/<name>.json as {"benchmark","date","machine","figures":[{name,value,unit,target}]}
 * (machine: see Machine).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg, release } from 'node:os';

export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** The issue's goal as text, e.g. "<= 30" or ">= 200000"; omitted for context figures. */
  target?: string;
}

/**
 * The machine a result came from. Absolute figures move with the CPU and with the kernel's
 * speculation mitigations (retpolines, safe-RET thunks, ... tax every call and return), so every
 * result file records them; ratios measured in one run are what holds from machine to machine.
 */
export interface Machine {
  /** Model name with family/model/stepping (a VM often shows only "AMD EPYC"), and whether it is a VM. */
  cpu: string;
  cores: number;
  kernel: string;
  /** /sys/devices/system/cpu/vulnerabilities/*: each mitigated or vulnerable one, and how many do not apply. */
  mitigations: string;
  node: string;
  /** 1, 5 and 15 minute load averages when the result was written: the machine is shared. */
  loadAverage: number[];
}

export function machine(): Machine {
  return {
    cpu: cpuModel(),
    cores: cpus().length,
    kernel: release(),
    mitigations: mitigations(),
    node: process.version,
    loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** One line for a table's heading. */
export function describeMachine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, Linux ${m.kernel}, Node ${m.node}, load ${m.loadAverage.join(' ')}\nmitigations: ${m.mitigations}`;
}

function cpuModel(): string {
  const name = cpus()[0]?.model.trim() || 'unknown CPU';
  let info = '';
  try {
    info = readFileSync('/proc/cpuinfo', 'utf8').split('\n\n', 1)[0]!;
  } catch {
    return name;
  }
  const field = (key: string) => new RegExp(`^${key}\\s*:\\s*(.*)$`, 'm').exec(info)?.[1]?.trim();
  const ids = [['family', field('cpu family')], ['model', field('model')], ['stepping', field('stepping')]]
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k} ${v}`);
  if (/^flags\s*:.*\bhypervisor\b/m.test(info)) ids.push('virtual machine');
  return ids.length ? `${name} (${ids.join(', ')})` : name;
}

function mitigations(): string {
  const dir = '/sys/devices/system/cpu/vulnerabilities';
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return 'unknown (no /sys/devices/system/cpu/vulnerabilities)';
  }
  const listed: string[] = [];
  let unaffected = 0;
  for (const name of names) {
    const state = readFileSync(join(dir, name), 'utf8').trim();
    if (state === 'Not affected') unaffected++;
    else listed.push(`${name}: ${state.replace(/^Mitigation: /, '')}`);
  }
  let boot = '';
  try {
    boot = /(?:^|\s)(mitigations=\S+)/.exec(readFileSync('/proc/cmdline', 'utf8'))?.[1] ?? '';
  } catch {
    /* no /proc/cmdline: leave it out */
  }
  return [...listed, `${unaffected} others not affected`, ...(boot ? [`boot: ${boot}`] : [])].join(' | ');
}

function meets(value: number, target?: string): string {
  if (!target) return '';
  const m = /^(<=|>=|<|>)\s*(-?[\d.]+)$/.exec(target.trim());
  if (!m) return '';
  const t = Number(m[2]);
  const ok = m[1] === '<=' ? value <= t : m[1] === '>=' ? value >= t : m[1] === '<' ? value < t : value > t;
  return ok ? 'yes' : 'NO';
}

/**
 * Print the table and write bench/results/<benchmark>.json. `details` (optional) are written
 * after the figures, for what a reader needs to judge them (per-round values, the machine's
 * other load during the run).
 */
export function report(benchmark: string, figures: Figure[], details?: Record<string, unknown>): void {
  const rows = figures.map((f) => [f.name, formatValue(f.value), f.unit, f.target ?? '', meets(f.value, f.target)]);
  const head = ['figure', 'value', 'unit', 'target', 'met'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 1 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  const m = machine();
  console.log(`\n${benchmark} — ${describeMachine(m)}`);
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  const dir = new URL('./results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  const rounded = figures.map((f) => ({ ...f, value: Number.isInteger(f.value) ? f.value : Math.round(f.value * 100) / 100 }));
  const out = { benchmark, date: new Date().toISOString(), machine: m, figures: rounded, ...details };
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
