/**
 * The link monitor: carrier (carrier.ts) and active probes (prober.ts, routed out of their
 * link by probe-route.ts) feed one health machine per link (health.ts); every change goes to
 * the `sink`'s setLinkHealth — in the agent, the steering engine, straight: nothing relays it.
 *
 *   const m = new LinkMonitor({ links: config.links, sink: engine, readFlags: carrier.read, logger });
 *   await m.start();
 *   ...
 *   await m.stop();       // probes stop, probe rules and tables are removed
 *
 * Links without a `probe` are judged by carrier alone; when their carrier returns they are up
 * again only once their next hops answer (readNextHop). A link may probe several reflectors
 * (`probe.targets`), each with its own prober, rule and health machine: the link is up while any
 * of them answers. A target whose interface address is missing at start, or whose IPv6 address
 * is still in duplicate address detection, is retried every few seconds (until then the link's
 * carrier and its other targets judge it). One 20 ms tick drives the carrier poll, the normal
 * probes and those next-hop checks.
 */
import { silentLogger, type Logger } from '../base/logger.js';
import { isIPv6 } from 'node:net';
import { probeTargets, type LinkConfig } from '../config/schema.js';
import { CarrierWatch, type InterfaceFlags } from './carrier.js';
import { LinkHealthMachine, type HealthView, type LinkHealth, type LinkHealthSink, type ProbeSample } from './health.js';
import { Prober } from './prober.js';
import { clearProbeRoutes, installProbeRoute, interfaceAddress, refreshProbeRoute, removeProbeRoute, type ProbeRoute } from './probe-route.js';
import { TWAMP_PORT } from './twamp.js';

export interface LinkMonitorOptions {
  links: readonly LinkConfig[];
  /** Takes every change of a link's health (the engine's setLinkHealth). */
  sink: LinkHealthSink;
  logger?: Logger;
  /** Retry a link's probe set-up this often when its interface or address is missing. */
  retryMs?: number;
  ip?: string;
  /**
   * Reads an interface's flags now, for the 20 ms carrier poll (the agent passes the
   * datapath's rtnetlink reader); absent: carrier from netlink events only.
   */
  readFlags?: (ifname: string) => InterfaceFlags | undefined;
  /**
   * Whether a next hop answers on an interface now (true), not yet (false: resolution started),
   * or cannot be told (undefined) — the datapath's neighbour table. With it, a link judged by
   * carrier alone whose carrier returns is not up before its next hops answer: traffic moved
   * there sooner would wait on their unresolved entries (seconds, if they do not answer).
   * Probed links need no such check: their probes go through the same entries.
   */
  readNextHop?: (ifname: string, address: string) => boolean | undefined;
}

/** One reflector probed over a link: its prober, its rule, its own health machine. */
interface TargetState {
  target: string;
  machine: LinkHealthMachine;
  prober?: Prober;
  route?: ProbeRoute;
  retry?: NodeJS.Timeout;
}

interface LinkState {
  id: number;
  config: LinkConfig;
  /** One per probe target; a link without probes has one machine, judged by carrier alone. */
  targets: TargetState[];
  probed: boolean;
  publishedAt: number;
  /** Next hops checked when the carrier returns (links judged by carrier alone, with readNextHop). */
  nextHops: string[];
  /** Carrier reported at least once (the first report is the start, not a return). */
  carrierSeen: boolean;
  /** The carrier is back and this next hop does not answer yet: not up until it does. */
  awaitingNextHop?: string;
  /**
   * Why the carrier is gone ('no carrier', 'interface deleted', …), while it is: the link's reason
   * until it returns, so a report half a second later says what the first one said.
   */
  carrierDown?: string;
}

/** Least time between two reports of a link's window figures when its state did not change. */
const PUBLISH_MS = 500;

/**
 * The monitor's tick: the carrier poll, and the normal probes ride on it (each prober sends when
 * its interval is up), so the process wakes once for both. Waking is most of what a probe costs
 * on a VM; the carrier poll needs the 20 ms anyway.
 */
export const TICK_MS = 20;


export class LinkMonitor {
  private readonly links: LinkState[];
  private readonly byInterface = new Map<string, LinkState>();
  private carrierWatch: CarrierWatch | undefined;
  private tick: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private stopped = false;

  constructor(private readonly opts: LinkMonitorOptions) {
    this.log = opts.logger ?? silentLogger;
    this.links = opts.links.map((config, id) => {
      const p = config.probe;
      const settings = { downAfter: p?.downAfter ?? 3, upAfter: p?.upAfter ?? 10, window: p?.window ?? 50 };
      const targets = p ? probeTargets(p) : [];
      const s: LinkState = {
        id,
        config,
        probed: targets.length > 0,
        targets: (targets.length > 0 ? targets : ['']).map((target) => ({ target, machine: new LinkHealthMachine(settings, target !== '') })),
        publishedAt: 0,
        nextHops: targets.length === 0 && opts.readNextHop ? [config.nextHop4, config.nextHop6].filter((h): h is string => h !== undefined) : [],
        carrierSeen: false,
      };
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
        ...(this.opts.readFlags ? { readFlags: this.opts.readFlags } : {}),
        pollMs: 0, // polled on the tick
        onError: (err) => this.log.warn({ err }, 'carrier watch'),
      },
    );
    await this.carrierWatch.start();
    const probed = this.links.filter((l) => l.probed);
    if (this.opts.readFlags || probed.length > 0 || this.links.some((l) => l.nextHops.length > 0)) {
      this.tick = setInterval(() => this.onTick(), TICK_MS);
      this.tick.unref();
    }
    // A crashed agent's rules and tables go first; then each target's own.
    await Promise.all(probed.map((l) => clearProbeRoutes(l.id, this.opts.ip)));
    await Promise.all(probed.flatMap((l) => l.targets.map((t) => this.startProbe(l, t))));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.tick);
    this.carrierWatch?.stop();
    await Promise.all(
      this.links.map(async (l) => {
        for (const t of l.targets) {
          clearTimeout(t.retry);
          t.prober?.stop();
        }
        if (l.probed) await clearProbeRoutes(l.id, this.opts.ip).catch(() => {});
      }),
    );
  }

  private onTick(): void {
    this.carrierWatch?.poll();
    const now = performance.now();
    for (const l of this.links) {
      for (const t of l.targets) t.prober?.tick(now);
      if (l.awaitingNextHop && this.nextHopsAnswer(l)) this.publish(l);
    }
  }

  /** True once every next hop of the link answers (or cannot be asked about); else notes the first that does not. */
  private nextHopsAnswer(l: LinkState): boolean {
    for (const hop of l.nextHops) {
      if (this.opts.readNextHop!(l.config.interface, hop) === false) {
        l.awaitingNextHop = hop;
        return false;
      }
    }
    if (l.awaitingNextHop) this.log.info({ link: l.config.name, nextHops: l.nextHops }, 'carrier back and the next hop answers: link up');
    l.awaitingNextHop = undefined;
    return true;
  }

  /** Each link's health now. */
  views(): { link: string; health: HealthView }[] {
    return this.links.map((l) => ({ link: l.config.name, health: this.linkView(l) }));
  }

  /**
   * A link's health from its targets': up while any probing target is up (carrier is in every one), with
   * the window figures of the healthiest target — up first, then least loss, then least RTT:
   * a reflector farther away, or behind a lossy path of its own, does not make the link look worse.
   */
  private linkView(l: LinkState): HealthView {
    const view = this.targetsView(l);
    return l.carrierDown !== undefined && !view.up ? { ...view, reason: l.carrierDown } : view;
  }

  /** The link's health as its targets' machines judge it (see linkView). */
  private targetsView(l: LinkState): HealthView {
    const views = judges(l).map((t) => ({ target: t.target, view: t.machine.view() }));
    const best = [...views].sort((a, b) => rank(a.view) - rank(b.view) || (a.view.lossPercent ?? 100) - (b.view.lossPercent ?? 100) || (a.view.rttMs ?? Infinity) - (b.view.rttMs ?? Infinity))[0]!;
    if (views.length === 1) return best.view;
    const up = linkUp(l);
    const reason = up ? `${best.target}: ${best.view.reason}` : views.map((v) => `${v.target}: ${v.view.reason}`).join('; ');
    return { ...best.view, up, reason };
  }

  private onCarrier(ifname: string, up: boolean, why: string): void {
    const l = this.byInterface.get(ifname);
    if (!l) return;
    this.log.info({ link: l.config.name, interface: ifname, carrier: up, why }, 'carrier changed');
    for (const t of l.targets) {
      t.machine.carrier(up);
      if (t.prober) t.prober.suspectMode = t.machine.up;
    }
    l.carrierDown = up ? undefined : why;
    const returned = up && l.carrierSeen;
    l.carrierSeen = true;
    l.awaitingNextHop = undefined;
    if (returned && l.nextHops.length > 0 && !this.nextHopsAnswer(l)) {
      this.log.info({ link: l.config.name, nextHop: l.awaitingNextHop }, 'carrier back; waiting for the next hop to answer before using the link');
    }
    this.publish(l);
    if (up) for (const t of l.targets) if (t.route) refreshProbeRoute(t.route, this.opts.ip).catch(() => {});
  }

  private onSample(l: LinkState, t: TargetState, s: ProbeSample): void {
    const wasUp = linkUp(l);
    const targetChanged = t.machine.sample(s);
    if (targetChanged && t.prober) t.prober.suspectMode = t.machine.up;
    if (targetChanged && l.targets.length > 1) {
      this.log.info({ link: l.config.name, target: t.target, up: t.machine.up, reason: t.machine.view().reason }, 'probe target health changed');
    }
    const changed = linkUp(l) !== wasUp;
    if (changed) this.log.info({ link: l.config.name, up: !wasUp, reason: this.linkView(l).reason }, 'probe health changed');
    // Up/down at once; the window figures (for SLAs, which move over seconds) twice a second.
    const now = performance.now();
    if (!changed && now - l.publishedAt < PUBLISH_MS) return;
    this.publish(l);
  }

  private publish(l: LinkState): void {
    if (this.stopped) return;
    l.publishedAt = performance.now();
    const v = this.linkView(l);
    const report: LinkHealth = { up: v.up, carrier: v.carrier, reason: v.reason };
    if (v.up && l.awaitingNextHop) {
      report.up = false;
      report.reason = `carrier back; next hop ${l.awaitingNextHop} does not answer yet`;
    }
    if (v.rttMs !== undefined) report.rttMs = v.rttMs;
    if (v.lossPercent !== undefined) report.lossPercent = v.lossPercent;
    if (v.jitterMs !== undefined) report.jitterMs = v.jitterMs;
    this.opts.sink.setLinkHealth(l.config.name, report);
  }

  private retryProbe(l: LinkState, t: TargetState): void {
    if (this.stopped) return;
    t.retry = setTimeout(() => void this.startProbe(l, t), this.opts.retryMs ?? 3000);
    t.retry.unref();
  }

  private async startProbe(l: LinkState, t: TargetState): Promise<void> {
    const p = l.config.probe!;
    const v6 = isIPv6(t.target);
    const local = await interfaceAddress(l.config.interface, v6, this.opts.ip);
    if (this.stopped) return;
    if (!local) {
      const none = `no usable IPv${v6 ? 6 : 4} address on the interface to probe from${v6 ? ' (none, or still in duplicate address detection)' : ''}: retrying`;
      this.log.warn({ link: l.config.name, interface: l.config.interface, target: t.target }, none);
      this.retryProbe(l, t);
      return;
    }
    const prober = new Prober({
      // Each link's own reflector port (probe.port); the config loader fills in 862.
      local, target: t.target, port: p.port ?? TWAMP_PORT, intervalMs: p.intervalMs, timeoutMs: p.timeoutMs, tickMs: TICK_MS,
      onSample: (s) => this.onSample(l, t, s),
    });
    try {
      await prober.start();
    } catch (err) {
      // The address went (or turned tentative) between the lookup and the bind.
      prober.stop();
      this.log.warn({ link: l.config.name, local, err }, 'could not bind the probe socket: retrying');
      this.retryProbe(l, t);
      return;
    }
    const nextHop = v6 ? l.config.nextHop6 : l.config.nextHop4;
    const table = l.config.addressing === 'internet' ? l.config.table : undefined;
    const route: ProbeRoute = { linkId: l.id, interface: l.config.interface, local, sport: prober.port, ...(nextHop ? { nextHop } : {}), ...(table !== undefined ? { table } : {}) };
    try {
      await installProbeRoute(route, this.opts.ip);
    } catch (err) {
      prober.stop();
      this.log.warn({ link: l.config.name, err }, 'could not install the probe route: retrying');
      this.retryProbe(l, t);
      return;
    }
    if (this.stopped) {
      prober.stop();
      await removeProbeRoute(route, this.opts.ip).catch(() => {});
      return;
    }
    t.prober = prober;
    t.route = route;
    prober.suspectMode = t.machine.up;
    prober.run();
    this.log.info({ link: l.config.name, from: `${local}:${prober.port}`, target: t.target, port: p.port ?? TWAMP_PORT, intervalMs: p.intervalMs }, 'probing');
  }
}

/** The targets that judge a link: those probing; none probing yet (an address missing, say): all, on carrier. */
function judges(l: LinkState): TargetState[] {
  const probing = l.targets.filter((t) => t.prober);
  return probing.length > 0 ? probing : l.targets;
}

/** Up while any target that judges it is up (each has the carrier in it). */
const linkUp = (l: LinkState): boolean => judges(l).some((t) => t.machine.up);

/** Up before down, for picking the healthiest target. */
const rank = (v: HealthView): number => (v.up ? 0 : 1);
