/**
 * `wansteer agent` with `mode: reply-by-arrival`: the cloud end of overlay links. Each flow's
 * replies leave by the link the flow last arrived on, so the edge's choice of link — a policy,
 * a failover — holds for downloads too. Composes, in order:
 *
 *   config ─► reply datapath (kernel, or memory with --dry-run) ─► ReplyEnd (links named, both hooks)
 *          ─► link monitor (carrier, optional probes) ─► ReplyEnd.setLinkHealth
 *          ─► arrival ageing (datapath.flowIdleSeconds) ─► metrics, HTTP (health, links, arrivals)
 *
 * No route rules, policies, sessions or Envoy. On SIGTERM it lets go of the datapath without
 * detaching it, like the edge agent: replies keep following their arrivals while it is away.
 */
import type { Logger } from 'pino';
import { buildReplyApp } from '../api/reply-app.js';
import type { AgentConfig } from '../config/schema.js';
import { MemoryReplyDatapath, openCarrierReader, ReplyDatapath, type ReplyDatapathPort } from '../datapath/index.js';
import { LinkMonitor } from '../links/monitor.js';
import { createReplyRegistry } from '../metrics/reply.js';
import { FlowAgeing } from '../steering/ageing.js';
import { ReplyEnd } from '../steering/reply-end.js';
import { Closers, serveAgent, type RunningAgent } from './running-agent.js';

const DEFAULT_HTTP = '0.0.0.0:9090';
/** How often interfaces that were missing (or recreated) are looked up again. */
const REFRESH_MS = 5000;

export async function startReplyAgent(config: AgentConfig, logger: Logger, opts: { handleSignals?: boolean } = {}): Promise<RunningAgent> {
  const closers = new Closers(logger);
  try {
    const datapath = openReplyDatapath(config, logger);
    closers.push(() => datapath.close());
    const end = new ReplyEnd({ datapath, links: config.links, logger: logger.child({ part: 'reply' }), attach: !config.datapath.dryRun });
    end.start();
    closers.push(() => end.stop());
    const refresh = setInterval(() => end.refresh(), REFRESH_MS);
    refresh.unref();
    closers.push(() => clearInterval(refresh));

    if (!config.datapath.dryRun) {
      const carrier = openCarrierReader();
      closers.push(() => carrier.close());
      const monitor = new LinkMonitor({
        links: config.links,
        sink: end,
        logger: logger.child({ part: 'links' }),
        readFlags: carrier.read,
      });
      await monitor.start();
      closers.push(() => monitor.stop());
    }

    const ageing = new FlowAgeing({ datapath, idleSeconds: config.datapath.flowIdleSeconds, logger: logger.child({ part: 'ageing' }) });
    ageing.start();
    closers.push(() => ageing.stop());

    const registry = createReplyRegistry({ end, datapath, ageing });
    const app = buildReplyApp({ end, registry, logger: logger.child({ part: 'api' }) });
    const server = await serveAgent(app, config.listen.http ?? DEFAULT_HTTP, closers, logger, {
      ...opts,
      shutdownMessage: 'shutting down: replies keep following their arrivals until the next agent adopts the datapath',
    });
    const waiting = end.waitingFor();
    logger.info({ http: server.url, mode: 'reply-by-arrival', adopted: datapath.adopted, links: config.links.map((l) => l.name), ...(waiting.length ? { waitingFor: waiting } : {}) }, 'wansteer agent ready');
    return { httpUrl: server.url, grpcPort: null, synced: Promise.resolve(), stopped: server.stopped, stop: server.stop };
  } catch (err) {
    await closers.closeAll();
    throw err;
  }
}

function openReplyDatapath(config: AgentConfig, logger: Logger): ReplyDatapathPort {
  if (config.datapath.dryRun) {
    logger.warn('dry run: the reply tables are kept in memory; no reply is steered');
    const interfaces = Object.fromEntries(config.links.map((l, i) => [l.interface, 1000 + i]));
    return new MemoryReplyDatapath(config.datapath.flowTableSize, interfaces);
  }
  const libbpf = logger.child({ part: 'libbpf' });
  return ReplyDatapath.open({
    pinDir: config.datapath.pinDir,
    arrivalTableSize: config.datapath.flowTableSize,
    onLibbpfLog: (level, msg) => (level === 'warn' ? libbpf.warn(msg) : libbpf.debug(msg)),
  });
}
