/**
 * What every lab profile shares: namespaces named after the process that made them (so a lab of
 * a dead process can be reaped), commands and long-running processes inside them, and removal.
 *
 *   class MyLab extends Lab { … this.addNamespace('e') … }
 *   lab.exec(lab.edge, ['ip', 'route']);
 *   const server = await lab.spawnReady(lab.cloud, ['python3', 'server.py'], 'server');
 *   lab.destroy();                                 // processes killed, namespaces deleted
 *
 * Names are `wst<pid>-<tag>-<role>`; bpffs pin directories of tests and demos carry the pid the
 * same way. reapStaleLabs() removes both for processes that no longer exist (a crash, kill -9).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const PREFIX = 'wst';

export function sh(cmd: string, args: string[], opts: { input?: string } = {}): string {
  // maxBuffer: an Envoy's /config_dump (its Lua inlined in every HTTP chain) passes the 1 MiB default.
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input: opts.input, maxBuffer: 64 << 20 });
}

/** `ip -n ns -batch -`: many ip commands in one process. */
export function ipBatch(ns: string, lines: string[]): void {
  sh('ip', ['-n', ns, '-batch', '-'], { input: lines.join('\n') + '\n' });
}

function namespaces(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Remove labs and bpffs pin directories left by test, bench or demo processes that no longer
 * exist (a crash, a kill -9): namespaces `wst<pid>-…`, pins `/sys/fs/bpf/wst-…<pid>…`.
 */
export function reapStaleLabs(): void {
  for (const ns of namespaces()) {
    const m = /^wst(\d+)-/.exec(ns);
    if (m && !alive(Number(m[1]))) sh('ip', ['netns', 'del', ns]);
  }
  let pins: string[] = [];
  try {
    pins = readdirSync('/sys/fs/bpf');
  } catch {
    return;
  }
  for (const dir of pins) {
    const m = /^(?:wst|wansteer-demo)-(?:[a-z]+-)*(\d+)(?:-|$)/.exec(dir);
    if (m && !alive(Number(m[1]))) rmSync(join('/sys/fs/bpf', dir), { recursive: true, force: true });
  }
}

let counter = 0;

/** A fresh tag for a lab of this process. */
export function nextTag(): string {
  return String(counter++);
}

export abstract class Lab {
  private readonly children = new Set<ChildProcess>();
  private readonly made: string[] = [];

  protected constructor(readonly tag: string) {}

  /** The name of this lab's namespace for `role`: `wst<pid>-<tag>-<role>`. */
  protected nsName(role: string): string {
    return `${PREFIX}${process.pid}-${this.tag}-${role}`;
  }

  /** Create a namespace (named by nsName) with its loopback up; deleted by destroy(). */
  protected addNamespace(ns: string): void {
    sh('ip', ['netns', 'add', ns]);
    this.made.push(ns);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }

  /** Build `lab`; whatever it made is destroyed when building throws. Stale labs go first. */
  protected static built<L extends Lab>(lab: L, build: (lab: L) => void): L {
    reapStaleLabs();
    try {
      build(lab);
    } catch (err) {
      lab.destroy();
      throw err;
    }
    return lab;
  }

  /** Run a command in one of the lab's namespaces (network namespace only: bpffs stays visible). */
  exec(ns: string, argv: string[], input?: string): string {
    return sh('nsenter', [`--net=/run/netns/${ns}`, '--', ...argv], { input });
  }

  /** Set sysctls (`net.ipv4.ip_forward=1`, …) in a namespace. */
  sysctl(ns: string, ...settings: string[]): void {
    this.exec(ns, ['sysctl', '-qw', ...settings]);
  }

  /** Start a long-running process in a namespace; killed by destroy(). */
  spawn(ns: string, argv: string[]): ChildProcess {
    const child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /**
   * Start a server in a namespace and resolve once it has printed its first output (its
   * "ready"); fails with its stderr if it exits first. Killed by destroy().
   */
  async spawnReady(ns: string, argv: string[], what: string): Promise<ChildProcess> {
    const child = this.spawn(ns, argv);
    await new Promise<void>((resolve, reject) => {
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`${what} exited (${code}): ${err.trim()}`)));
    });
    return child;
  }

  /** Kill the lab's processes and delete its namespaces (and every device in them). */
  destroy(): void {
    for (const child of this.children) child.kill('SIGKILL');
    this.children.clear();
    for (const ns of this.made.splice(0)) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        /* already gone */
      }
    }
  }
}
