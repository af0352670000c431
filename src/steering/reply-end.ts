/**
 * The cloud end of overlay links, in reply-by-arrival mode: each configured link gets a slot in
 * the reply datapath (its interface, where replies go, up or down) and both its tc hooks; the
 * datapath does the rest, packet by packet. There are no sessions and no policies here: the edge
 * chooses each flow's link, and its replies follow the flow's last arrival.
 *
 *   const end = new ReplyEnd({ datapath, links: config.links, logger });
 *   end.start();                                  // name and attach every link it can find
 *   end.setLinkHealth('tun1', { up: false });     // its replies fall back to the routed path
 *   end.refresh();                                // an interface appeared or was recreated
 *
 * Link ids are positions in the config, as on the edge. A link whose interface is missing is
 * retried on refresh() (the agent calls it every few seconds): tunnels often come up after the
 * agent, and a recreated tunnel gets a new ifindex.
 */
import { silentLogger, type Logger } from '../base/logger.js';
import type { LinkConfig } from '../config/schema.js';
import type { ReplyDatapathPort } from '../datapath/index.js';
import type { LinkHealth } from '../links/health.js';

export interface ReplyEndOptions {
  datapath: ReplyDatapathPort;
  links: readonly LinkConfig[];
  logger?: Logger;
  /** Attach the programs to each link's interface (default true; false for dry runs). */
  attach?: boolean;
}

/** One link as GET /v1/links shows it at the cloud end. */
export interface ReplyLinkStatus {
  name: string;
  interface: string;
  ifindex: number | null;
  up: boolean;
  /** Why it carries no replies, when it does not. */
  reason?: string;
  /** Packets and bytes that arrived by it, and replies that left by it (datapath counters). */
  arrived: { packets: number; bytes: number };
  replied: { packets: number; bytes: number };
}

/** A learned flow, for GET /v1/arrivals: its reply-direction tuple and the link it arrived on. */
export interface ArrivalView {
  protocol: string | number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  link: string;
  idleSeconds: number;
}

interface LinkRuntime {
  id: number;
  config: LinkConfig;
  ifindex: number | null;
  healthy: boolean;
  healthReason?: string;
  problem?: string;
}


export class ReplyEnd {
  private readonly links: LinkRuntime[];
  private readonly byName = new Map<string, LinkRuntime>();
  private readonly log: Logger;
  private started = false;
  private stopped = false;

  constructor(private readonly opts: ReplyEndOptions) {
    this.log = opts.logger ?? silentLogger;
    this.links = opts.links.map((config, id) => ({ id, config, ifindex: null, healthy: true }));
    for (const l of this.links) this.byName.set(l.config.name, l);
  }

  start(): void {
    this.started = true;
    this.refresh();
  }

  stop(): void {
    this.stopped = true;
  }

  /** Ready once every link's interface was found and its programs attached. */
  waitingFor(): string[] {
    if (this.stopped) return ['the agent is shutting down'];
    if (!this.started) return ['the datapath is not set up yet'];
    return this.links.filter((l) => l.problem !== undefined).map((l) => `link ${l.config.name}: ${l.problem}`);
  }

  /** Look each interface up again; write and attach links that are new or moved. */
  refresh(): void {
    for (const link of this.links) this.resolve(link);
  }

  /** Carrier and probes of a link (the link monitor): a link down gets no replies. */
  setLinkHealth(name: string, health: Pick<LinkHealth, 'up' | 'reason'>): boolean {
    const link = this.byName.get(name);
    if (!link) return false;
    const changed = link.healthy !== health.up;
    link.healthy = health.up;
    link.healthReason = health.reason;
    if (link.ifindex !== null && changed) {
      try {
        this.opts.datapath.setLinkUp(link.id, health.up);
        this.log.warn({ link: name, up: health.up, reason: health.reason }, `link ${name} is ${health.up ? 'up: replies of flows arriving on it go back by it' : 'down: replies of its flows take the routed path'}`);
      } catch (err) {
        this.log.error({ err, link: name }, 'could not write the link state');
      }
    }
    return true;
  }

  /** Link id -> name, for the metrics. */
  linkNames(): ReadonlyMap<number, string> {
    return new Map(this.links.map((l) => [l.id, l.config.name]));
  }

  status(): ReplyLinkStatus[] {
    let counters: ReturnType<ReplyDatapathPort['counters']> | undefined;
    try {
      counters = this.opts.datapath.counters();
    } catch (err) {
      this.log.warn({ err }, 'could not read the reply counters');
    }
    const read = (m: Map<number, { packets: bigint; bytes: bigint }> | undefined, id: number) => {
      const c = m?.get(id);
      return { packets: Number(c?.packets ?? 0n), bytes: Number(c?.bytes ?? 0n) };
    };
    return this.links.map((l) => {
      const s: ReplyLinkStatus = {
        name: l.config.name,
        interface: l.config.interface,
        ifindex: l.ifindex,
        up: l.ifindex !== null && l.healthy,
        arrived: read(counters?.arrived, l.id),
        replied: read(counters?.replied, l.id),
      };
      const reason = l.problem ?? (l.healthy ? undefined : (l.healthReason ?? 'reported down by the link monitor'));
      if (reason !== undefined) s.reason = reason;
      return s;
    });
  }

  /** Learned flows, at most `limit`. */
  arrivals(limit = 1000, now = process.hrtime.bigint()): ArrivalView[] {
    return this.opts.datapath.listArrivals(limit).map((a) => ({
      protocol: a.protocol === 6 ? 'tcp' : a.protocol === 17 ? 'udp' : a.protocol,
      src: a.src, sport: a.sport, dst: a.dst, dport: a.dport,
      link: this.links[a.linkId]?.config.name ?? `#${a.linkId}`,
      idleSeconds: Math.round(Number((now > a.lastSeenNs ? now - a.lastSeenNs : 0n) / 1_000_000n)) / 1000,
    }));
  }

  private resolve(link: LinkRuntime): void {
    const { datapath } = this.opts;
    const name = link.config.interface;
    let ifindex: number;
    try {
      ifindex = datapath.ifindex(name);
    } catch (err) {
      if (link.problem === undefined || link.ifindex !== null) this.log.warn({ link: link.config.name, interface: name }, `interface ${name} not found: waiting for it`);
      link.ifindex = null;
      link.problem = `interface ${name} not found: ${(err as Error).message}`;
      return;
    }
    if (ifindex === link.ifindex && link.problem === undefined) return;
    try {
      datapath.setLink(link.id, {
        ifindex,
        up: link.healthy,
        ...(link.config.nextHop4 !== undefined ? { nextHop4: link.config.nextHop4 } : {}),
        ...(link.config.nextHop6 !== undefined ? { nextHop6: link.config.nextHop6 } : {}),
      });
      if (this.opts.attach ?? true) datapath.attach(name);
      link.ifindex = ifindex;
      link.problem = undefined;
      this.log.info({ link: link.config.name, interface: name, ifindex }, 'link ready: arrivals learned, replies sent back by it');
    } catch (err) {
      link.ifindex = null;
      link.problem = `could not set up ${name}: ${(err as Error).message}`;
      this.log.error({ err, link: link.config.name, interface: name }, 'could not set up the link');
    }
  }
}
