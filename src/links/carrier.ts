/**
 * Carrier of the WAN interfaces, from two sources, whichever tells first:
 *
 * - a poll: every `pollMs` (default 20 ms) the `readFlags` it is given answers for each
 *   interface — in the agent, the datapath's rtnetlink reader (src/datapath/carrier.ts: one
 *   RTM_GETLINK on a socket kept open, ~2 µs). The IFF_LOWER_UP flag it reads is the driver's
 *   carrier bit, set the moment the carrier goes. Without a reader: events only.
 * - netlink events: one long-lived `ip -o monitor link` child (RTM_NEWLINK/RTM_DELLINK lines);
 *   it also sees interfaces that are deleted or renamed.
 *
 *   const w = new CarrierWatch(['wan0', 'wan1'], (ifname, up, why) => ...);
 *   await w.start();    // monitor first, then the current state, so no change is missed
 *
 * Why both, measured (bench/failover.ts, docs/links.md): the kernel's linkwatch sends the
 * netlink event of a carrier change late when another link event happened in the last second
 * (it rate-limits non-urgent events to one per second, system-wide): 4 ms usually, 300-700 ms
 * at times. The flag itself changes at once. Polling it through a long-lived `ip -batch` pipe
 * cost ~0.8 % of a core in the agent (an event-loop round trip per poll); a fork per poll ~2 ms
 * of CPU each; the in-process question costs ~0.03 % for two links. /sys/class/net would show
 * the netns of the sysfs mount, not ours (the agent may run under `nsenter --net`).
 *
 * Carrier up = the interface is administratively UP and has LOWER_UP (RFC 2863 lower layer up):
 * carrierOf below, the one place that says so, for both sources.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type CarrierListener = (ifname: string, up: boolean, why: string) => void;

/** An interface's flags (the datapath's rtnetlink reader gives them; `ip monitor` prints them). */
export interface InterfaceFlags {
  present: boolean;
  /** IFF_UP: administratively up. */
  adminUp: boolean;
  /** IFF_LOWER_UP: the driver's carrier bit. */
  lowerUp: boolean;
}

/** What an interface's flags mean for its link: the one carrier mapping. */
export function carrierOf(flags: InterfaceFlags): { up: boolean; why: string } {
  if (!flags.present) return { up: false, why: 'interface not found' };
  if (!flags.adminUp) return { up: false, why: 'interface administratively down' };
  if (!flags.lowerUp) return { up: false, why: 'no carrier' };
  return { up: true, why: 'carrier up' };
}

export interface CarrierWatchOptions {
  /** The `ip` binary (default `ip` on PATH). */
  ip?: string;
  /** Told when the monitor dies unexpectedly (it is restarted). */
  onError?: (err: Error) => void;
  /** Carrier poll period; 0: no timer of its own (events only, or the caller calls poll()). Default 20 ms. */
  pollMs?: number;
  /** Reads an interface's flags now (undefined: no answer); absent: no poll, events only. */
  readFlags?: (ifname: string) => InterfaceFlags | undefined;
}

const LINE = /^(Deleted )?\d+: ([^:@\s]+)(?:@[^:\s]+)?: <([^>]*)>/;

/** Parse one `ip -o monitor link` line: interface, and whether it has carrier. */
export function parseMonitorLine(line: string): { ifname: string; up: boolean; why: string } | null {
  const m = LINE.exec(line);
  if (!m) return null;
  const [, deleted, ifname, flagText] = m;
  if (deleted) return { ifname: ifname!, up: false, why: 'interface deleted' };
  return { ifname: ifname!, ...carrierOf(flagsOf(flagText!)) };
}

/** The flags of the names `ip` prints between < and > (events, the first read). */
function flagsOf(names: string): InterfaceFlags {
  const set = new Set(names.split(','));
  return { present: true, adminUp: set.has('UP'), lowerUp: set.has('LOWER_UP') };
}

export class CarrierWatch {
  private child: ChildProcess | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private readonly state = new Map<string, boolean>();
  private stopped = false;
  private readonly ip: string;

  constructor(
    private readonly interfaces: readonly string[],
    private readonly listener: CarrierListener,
    private readonly opts: CarrierWatchOptions = {},
  ) {
    this.ip = opts.ip ?? 'ip';
  }

  /** Carrier of an interface as last seen (undefined before start or for unknown interfaces). */
  carrier(ifname: string): boolean | undefined {
    return this.state.get(ifname);
  }

  async start(): Promise<void> {
    await this.spawnMonitor();
    await this.readAll();
    const pollMs = this.opts.pollMs ?? 20;
    if (pollMs > 0) this.startPoll(pollMs);
  }

  stop(): void {
    this.stopped = true;
    this.child?.kill('SIGTERM');
    this.child = undefined;
    clearInterval(this.pollTimer);
  }

  private startPoll(pollMs: number): void {
    if (!this.opts.readFlags) return;
    this.pollTimer = setInterval(() => this.poll(), pollMs);
    this.pollTimer.unref();
  }

  /** Read every watched interface's carrier now with `readFlags` (the poll; a caller with pollMs 0 calls it on its own tick). */
  poll(): void {
    const read = this.opts.readFlags;
    if (!read || this.stopped) return;
    for (const name of this.interfaces) {
      const flags = read(name);
      if (!flags) continue;
      const c = carrierOf(flags);
      this.set(name, c.up, c.why);
    }
  }

  /** Read every watched interface's state now (also after the monitor was restarted). */
  async readAll(): Promise<void> {
    const { stdout } = await run(this.ip, ['-j', 'link', 'show']);
    const list = JSON.parse(stdout || '[]') as { ifname: string; flags?: string[] }[];
    const seen = new Set<string>();
    for (const l of list) {
      seen.add(l.ifname);
      const c = carrierOf(flagsOf((l.flags ?? []).join(',')));
      this.set(l.ifname, c.up, c.why);
    }
    for (const name of this.interfaces) if (!seen.has(name)) this.set(name, false, 'interface not found');
  }

  private set(ifname: string, up: boolean, why: string): void {
    if (!this.interfaces.includes(ifname)) return;
    if (this.state.get(ifname) === up) return;
    this.state.set(ifname, up);
    this.listener(ifname, up, why);
  }

  private spawnMonitor(): Promise<void> {
    const child = spawn(this.ip, ['-o', 'monitor', 'link'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const e = parseMonitorLine(line);
      if (e) this.set(e.ifname, e.up, e.why);
    });
    child.on('exit', (code, signal) => {
      if (this.stopped || this.child !== child) return;
      this.opts.onError?.(new Error(`ip monitor exited (${signal ?? code}): restarting`));
      setTimeout(() => {
        if (this.stopped) return;
        void this.spawnMonitor()
          .then(() => this.readAll())
          .catch((err: Error) => this.opts.onError?.(err));
      }, 1000).unref();
    });
    return new Promise((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', reject);
    });
  }
}
