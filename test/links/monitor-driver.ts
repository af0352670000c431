/**
 * A LinkMonitor in another process — inside a lab namespace, where the WAN interfaces are —
 * for the link tests. No agent, no datapath: the monitor's reports are what the tests read.
 *
 * The driver (this file run under nsenter) takes `{ links, retryMs? }` as JSON in argv[2] and
 * speaks JSON lines: on stdout `{"event":"started"}`, then `{"event":"health","link","health","at"}` for
 * every report, and `{"event":"stopped"}` after `stop` on stdin (probe rules removed); the
 * monitor's log goes to stderr. The test side is MonitorDriver:
 *
 *   await spawnReflector(lab, lab.cloud, '[fd20::1]:8620');
 *   const m = await MonitorDriver.start(lab, lab.edge, links);
 *   await m.waitFor((h) => h.wan1?.up === false, 3000, 'wan1 down');
 *   await m.stop();
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { LinkConfig } from '../../src/config/schema.js';
import { openCarrierReader, openNeighbourTable } from '../../src/datapath/index.js';
import type { LinkHealth } from '../../src/links/health.js';
import { LinkMonitor } from '../../src/links/monitor.js';
import type { WanLab } from '../helpers/netns.js';

const DRIVER = fileURLToPath(import.meta.url);
const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** `wansteer reflector --listen <listen>` in `ns`; resolves once it answers (killed with the lab). */
export function spawnReflector(lab: WanLab, ns: string, listen: string): Promise<ChildProcess> {
  return lab.spawnReady(ns, [process.execPath, '--import', 'tsx', MAIN, 'reflector', '--listen', listen], `reflector on ${listen}`);
}

export interface HealthEvent {
  link: string;
  health: LinkHealth;
  /** Date.now() in the driver when it was reported. */
  at: number;
}

/** The test side: start the driver in `ns` of `lab`, read its reports, stop it. */
export class MonitorDriver {
  readonly reports: HealthEvent[] = [];
  log = '';
  private readonly started: Promise<void>;
  private readonly stopped: Promise<void>;

  private constructor(private readonly child: ChildProcess) {
    let onStarted!: () => void;
    let onStopped!: () => void;
    this.started = new Promise((resolve, reject) => {
      onStarted = resolve;
      child.once('exit', (code) => reject(new Error(`monitor driver exited ${code}: ${this.log.slice(-3000)}`)));
    });
    this.stopped = new Promise((resolve) => {
      onStopped = resolve;
      child.once('exit', () => resolve());
    });
    this.started.catch(() => {}); // a start() awaiting it reports the failure
    child.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { event: string } & Partial<HealthEvent>;
      if (msg.event === 'started') onStarted();
      else if (msg.event === 'stopped') onStopped();
      else if (msg.event === 'health') this.reports.push({ link: msg.link!, health: msg.health!, at: msg.at! });
    });
  }

  static async start(lab: WanLab, ns: string, links: LinkConfig[], opts: { retryMs?: number } = {}): Promise<MonitorDriver> {
    const driver = new MonitorDriver(lab.spawn(ns, [process.execPath, '--import', 'tsx', DRIVER, JSON.stringify({ links, ...opts })]));
    await driver.started;
    return driver;
  }

  /** Each link's last report. */
  latest(): Record<string, LinkHealth> {
    const out: Record<string, LinkHealth> = {};
    for (const r of this.reports) out[r.link] = r.health;
    return out;
  }

  /** Wait until the last reports satisfy `ok`; throws with them and the log tail on timeout. */
  async waitFor(ok: (latest: Record<string, LinkHealth>) => boolean, timeoutMs: number, what: string): Promise<Record<string, LinkHealth>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const latest = this.latest();
      if (ok(latest)) return latest;
      if (Date.now() > deadline || this.child.exitCode !== null) {
        throw new Error(`timed out waiting for ${what}: ${JSON.stringify(latest)}\n${this.log.slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stop the monitor (it removes its probe rules and tables) and wait for the driver to exit. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.stdin!.write('stop\n');
    await Promise.race([this.stopped, new Promise((r) => setTimeout(r, 5000))]);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

// ---- the driver itself (run under nsenter) ------------------------------------------------

async function runDriver(argument: string): Promise<void> {
  const { links, retryMs } = JSON.parse(argument) as { links: LinkConfig[]; retryMs?: number };
  const say = (msg: object) => process.stdout.write(JSON.stringify(msg) + '\n');
  const logLine = (level: string) => (fields: object, message: string) => process.stderr.write(JSON.stringify({ level, message, ...fields }) + '\n');
  const carrier = openCarrierReader();
  const neighbours = openNeighbourTable();
  const monitor = new LinkMonitor({
    links,
    readFlags: carrier.read,
    readNextHop: (ifname, address) => neighbours.resolved(ifname, address),
    ...(retryMs !== undefined ? { retryMs } : {}),
    sink: { setLinkHealth: (link, health) => say({ event: 'health', link, health, at: Date.now() }) },
    logger: { info: logLine('info'), warn: logLine('warn'), error: logLine('error'), debug: logLine('debug') },
  });
  await monitor.start();
  say({ event: 'started' });
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() !== 'stop') return;
    void monitor.stop().then(() => {
      process.stdout.write(JSON.stringify({ event: 'stopped' }) + '\n', () => process.exit(0));
    });
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runDriver(process.argv[2] ?? '{"links":[]}').catch((err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(1);
  });
}
