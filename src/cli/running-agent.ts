/**
 * What both agent modes (cli/agent.ts, cli/reply-agent.ts) share: what a started agent gives its
 * caller, the list of what it must close, and how it serves and shuts down.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { startServer } from '../api/server.js';

export interface RunningAgent {
  readonly httpUrl: string;
  readonly grpcPort: number | null;
  /** Resolves once route rules and policies are in and the agent steers new sessions (/readyz 200). */
  readonly synced: Promise<void>;
  /** Resolves once the agent has shut down (on a signal, or stop()). */
  readonly stopped: Promise<void>;
  stop(): Promise<void>;
}

/** What the agent started, closed in reverse order; a closer that fails is logged and the rest still run. */
export class Closers {
  private readonly list: (() => unknown)[] = [];
  /** Set once closing began: late starters (a first list arriving now) add nothing. */
  closing = false;

  constructor(private readonly logger: Logger) {}

  push(close: () => unknown): void {
    this.list.push(close);
  }

  async closeAll(): Promise<void> {
    this.closing = true;
    for (const close of this.list.reverse()) {
      try {
        await close();
      } catch (err) {
        this.logger.warn({ err }, 'error while shutting down');
      }
    }
    this.list.length = 0;
  }
}

/** The agent's HTTP server; a signal (or stop()) closes it, then everything in `closers`. */
export interface ServingAgent {
  url: string;
  stopped: Promise<void>;
  stop(): Promise<void>;
}

export async function serveAgent(
  app: FastifyInstance,
  listen: string,
  closers: Closers,
  logger: Logger,
  opts: { handleSignals?: boolean; shutdownMessage: string },
): Promise<ServingAgent> {
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  const server = await startServer(app, listen, {
    handleSignals: opts.handleSignals ?? true,
    onShutdown: async (signal) => {
      logger.info({ signal }, opts.shutdownMessage);
      await closers.closeAll();
      resolveStopped();
    },
  });
  return {
    url: server.url,
    stopped,
    stop: async () => {
      await server.close();
      await closers.closeAll();
      resolveStopped();
    },
  };
}
