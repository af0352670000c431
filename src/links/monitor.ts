/**
 * The link monitor: carrier (carrier.ts) and active probes (prober.ts, routed out of their
 * link by probe-route.ts) feed one health machine per link (health.ts); every change is handed
 * to `onHealth` — in the agent, the steering engine's setLinkHealth.
 *
 *   const m = new LinkMonitor({ links: config.links, onHealth: (name, h) => engine.setLinkHealth(name, h), logger });
 *   await m.start();
 *   ...
 *   await m.stop();       // probes stop, probe rules and tables are removed
 *
 * Links without a `probe` are judged by carrier alone. A link whose interface or address is
 * missing at start, or whose IPv6 address is still in duplicate address detection, is retried
 * every few seconds (until then its carrier alone judges it).
 */
import { isIPv6 } from 'node:net';
import type { LinkConfig } from '../config/schema.js';
import { CarrierWatch } from './carrier.js';
import { LinkHealthMachine, type HealthView, type ProbeSample } from './health.js';
import { Prober } from './prober.js';
import { installProbeRoute, interfaceAddress, refreshProbeRoute, removeProbeRoute, type ProbeRoute } from './probe-route.js';
import { TWAMP_PORT } from './twamp.js';

/** What the monitor tells its consumer (the shape of the engine's LinkHealth). */
export interface LinkHealthReport {
  up: boolean;
  rttMs?: number;
  lossPercent?: number;
  jitterMs?: number;
  reason?: string;
}

export interface MonitorLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface LinkMonitorOptions {
  links: readonly LinkConfig[];
  onHealth: (link: string, health: LinkHealthReport) => void;
  logger?: MonitorLogger;
  /** Retry a link's probe set-up this often when its interface or address is missing. */
  retryMs?: number;
  ip?: string;
  /**
   * Reads an interface's carrier now, for the 20 ms carrier poll (the agent passes the
   * datapath's rtnetlink reader); absent: carrier from netlink events only.
   */
  readCarrier?: (ifname: string) => { up: boolean; why: string } | undefined;
}

interface LinkState {
  id: number;
  config: LinkConfig;
  machine: LinkHealthMachine;
  prober?: Prober;
  route?: ProbeRoute;
  retry?: NodeJS.Timeout;
  publishedAt: number;
}

/** Least time between two reports of a link's window figures when its state did not change. */
const PUBLISH_MS = 500;

const silent: MonitorLogger = { info() {}, warn() {} };

export class LinkMonitor {
  private readonly links: LinkState[];
  private readonly byInterface = new Map<string, LinkState>();
  private carrierWatch: CarrierWatch | undefined;
  private readonly log: MonitorLogger;
  private stopped = false;

  constructor(private readonly opts: LinkMonitorOptions) {
    this.log = opts.logger ?? silent;
    this.links = opts.links.map((config, id) => {
      const p = config.probe;
      const machine = new LinkHealthMachine(
        { downAfter: p?.downAfter ?? 3, upAfter: p?.upAfter ?? 10, window: p?.window ?? 50 },
        p !== undefined,
      );
      const s: LinkState = { id, config, machine, publishedAt: 0 };
      this.byInterface.set(config.interface, s);
      return s;
    });
  }

  async start(): Promise<void> {
    this.carrierWatch = new CarrierWatch(
      this.links.map((l) => l.config.interface),
      (ifname, up, why) => this.onCarrier(ifname, up, why),
      {
        ...(this.opts.ip ? { ip: this.opts.ip } : {}),
        ...(this.opts.readCarrier ? { readCarrier: this.opts.readCarrier } : {}),
        onError: (err) => this.log.warn({ err }, 'carrier watch'),
      },
    );
    await this.carrierWatch.start();
    await Promise.all(this.links.filter((l) => l.config.probe).map((l) => this.startProbe(l)));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.carrierWatch?.stop();
    await Promise.all(
      this.links.map(async (l) => {
        clearTimeout(l.retry);
        l.prober?.stop();
        if (l.route) await removeProbeRoute(l.route, this.opts.ip).catch(() => {});
      }),
    );
  }

  /** Each link's health now. */
  views(): { link: string; health: HealthView; probes?: Prober['stats'] }[] {
    return this.links.map((l) => ({ link: l.config.name, health: l.machine.view(), ...(l.prober ? { probes: { ...l.prober.stats } } : {}) }));
  }

  private onCarrier(ifname: string, up: boolean, why: string): void {
    const l = this.byInterface.get(ifname);
    if (!l) return;
    this.log.info({ link: l.config.name, interface: ifname, carrier: up, why }, 'carrier changed');
    l.machine.carrier(up);
    if (l.prober) l.prober.suspectMode = l.machine.up;
    this.publish(l, up ? undefined : why);
    if (up && l.route) refreshProbeRoute(l.route, this.opts.ip).catch(() => {});
  }

  private onSample(l: LinkState, s: ProbeSample): void {
    const changed = l.machine.sample(s);
    if (changed && l.prober) l.prober.suspectMode = l.machine.up;
    if (changed) this.log.info({ link: l.config.name, up: l.machine.up, reason: l.machine.view().reason }, 'probe health changed');
    // Up/down at once; the window figures (for SLAs, which move over seconds) twice a second.
    const now = performance.now();
    if (!changed && now - l.publishedAt < PUBLISH_MS) return;
    this.publish(l);
  }

  private publish(l: LinkState, carrierWhy?: string): void {
    if (this.stopped) return;
    l.publishedAt = performance.now();
    const v = l.machine.view();
    const report: LinkHealthReport = { up: v.up, reason: carrierWhy ?? v.reason };
    if (v.rttMs !== undefined) report.rttMs = v.rttMs;
    if (v.lossPercent !== undefined) report.lossPercent = v.lossPercent;
    if (v.jitterMs !== undefined) report.jitterMs = v.jitterMs;
    this.opts.onHealth(l.config.name, report);
  }

  private retryProbe(l: LinkState): void {
    if (this.stopped) return;
    l.retry = setTimeout(() => void this.startProbe(l), this.opts.retryMs ?? 3000);
    l.retry.unref();
  }

  private async startProbe(l: LinkState): Promise<void> {
    const p = l.config.probe!;
    const v6 = isIPv6(p.target);
    const local = await interfaceAddress(l.config.interface, v6, this.opts.ip);
    if (this.stopped) return;
    if (!local) {
      const none = `no usable IPv${v6 ? 6 : 4} address on the interface to probe from${v6 ? ' (none, or still in duplicate address detection)' : ''}: retrying`;
      this.log.warn({ link: l.config.name, interface: l.config.interface }, none);
      this.retryProbe(l);
      return;
    }
    const prober = new Prober({
      // Each link's own reflector port (probe.port); the config loader fills in 862.
      local, target: p.target, port: p.port ?? TWAMP_PORT, intervalMs: p.intervalMs, timeoutMs: p.timeoutMs,
      onSample: (s) => this.onSample(l, s),
    });
    try {
      await prober.start();
    } catch (err) {
      // The address went (or turned tentative) between the lookup and the bind.
      prober.stop();
      this.log.warn({ link: l.config.name, local, err }, 'could not bind the probe socket: retrying');
      this.retryProbe(l);
      return;
    }
    const nextHop = v6 ? l.config.nextHop6 : l.config.nextHop4;
    const route: ProbeRoute = { linkId: l.id, interface: l.config.interface, local, sport: prober.port, ...(nextHop ? { nextHop } : {}) };
    try {
      await installProbeRoute(route, this.opts.ip);
    } catch (err) {
      prober.stop();
      this.log.warn({ link: l.config.name, err }, 'could not install the probe route: retrying');
      this.retryProbe(l);
      return;
    }
    if (this.stopped) {
      prober.stop();
      await removeProbeRoute(route, this.opts.ip).catch(() => {});
      return;
    }
    l.prober = prober;
    l.route = route;
    prober.suspectMode = l.machine.up;
    prober.run();
    this.log.info({ link: l.config.name, from: `${local}:${prober.port}`, target: p.target, port: p.port ?? TWAMP_PORT, intervalMs: p.intervalMs }, 'probing');
  }
}
