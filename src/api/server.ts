/**
 * The only part of the API that knows about the process: it listens, and closes gracefully on
 * SIGTERM / SIGINT (stop accepting, finish what is in flight, close idle keep-alive
 * connections, then run the agent's own shutdown). A second signal, or a shutdown that overruns
 * its deadline, exits at once. The connection bounds (caps, deadlines) are the server's own,
 * set where it is created (http-listener.ts).
 */
import type { FastifyInstance } from 'fastify';

export interface ServerOptions {
  /** Give up on a graceful close after this long and exit 1. Default 10 s. */
  shutdownTimeoutMs?: number;
  /** Called after the HTTP server closed, on a signal: close gRPC, the engine, the stores. */
  onShutdown?: (signal: NodeJS.Signals) => Promise<void>;
  /** Install SIGTERM / SIGINT handlers (default true; tests turn it off). */
  handleSignals?: boolean;
}

export interface RunningServer {
  /** e.g. `http://127.0.0.1:8080` */
  readonly url: string;
  readonly port: number;
  /** Closes the server and removes the signal handlers. */
  close(): Promise<void>;
}

/** `0.0.0.0:8080`, `[::]:8080`, `localhost:0`. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):([0-9]{1,5})$/.exec(listen);
  const port = Number(m?.[3]);
  if (!m || port > 65_535) throw new Error(`listen address ${listen} is not host:port or [v6]:port`);
  return { host: (m[1] ?? m[2])!, port };
}

const SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

export async function startServer(app: FastifyInstance, listen: string, options: ServerOptions = {}): Promise<RunningServer> {
  const { host, port } = parseListen(listen);
  const server = app.server;
  await app.listen({ host, port });
  const address = server.address();
  const boundPort = typeof address === 'object' && address !== null ? address.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  const closeServer = (): Promise<void> => (closing ??= app.close());
  const removeHandlers = () => {
    for (const s of SIGNALS) process.off(s, onSignal);
  };

  function onSignal(signal: NodeJS.Signals): void {
    if (closing) {
      app.log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    app.log.info({ signal }, 'shutting down');
    const deadline = setTimeout(() => {
      app.log.error({ signal }, 'graceful shutdown overran its deadline: exiting');
      process.exit(1);
    }, options.shutdownTimeoutMs ?? 10_000);
    deadline.unref();
    closeServer()
      .then(() => options.onShutdown?.(signal))
      .then(
        () => {
          clearTimeout(deadline);
          removeHandlers();
        },
        (err: unknown) => {
          app.log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
  }

  if (options.handleSignals ?? true) {
    for (const s of SIGNALS) process.on(s, onSignal);
  }
  const close = (): Promise<void> => {
    removeHandlers();
    return closeServer();
  };
  return { url: `http://${shownHost}:${boundPort}`, port: boundPort, close };
}
