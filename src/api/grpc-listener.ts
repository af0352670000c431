/**
 * The bounds of the gRPC listener. grpc-js leaves a server open by default: no cap on
 * connections or streams, no deadline on a call that never finishes its message, messages
 * buffered whole as they arrive. Here:
 *
 *   - the agent listens itself (a net.Server) and hands grpc-js the connections it admits (its
 *     connection injector): at most `connections` open, `connectionsPerAddress` from one
 *     address. One over a cap is still answered in the protocol: each call on it gets
 *     RESOURCE_EXHAUSTED with `ws-error-code: WS_API_TOO_MANY_CONNECTIONS`, and the connection
 *     is closed a second later;
 *   - `grpc.max_concurrent_streams` streams per connection, messages up to what the intake
 *     needs (a batch), a connection with no call (one that never sends one, too) closed after
 *     `maxConnectionIdleMs`, and every connection after `maxConnectionAgeMs` (calls in flight
 *     get `maxConnectionAgeGraceMs` to finish);
 *   - per call (grpc-calls.ts): a rate-budget token at its start, a deadline for each message,
 *     and read slots that bound the memory partial messages hold.
 */
import http2 from 'node:http2';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { callerAddress } from './caller.js';
import { ConnectionGuard } from './connection-guard.js';
import { TooManyConnections, type ApiError } from './errors.js';
import { parseListen } from './server.js';

export interface GrpcLimits {
  /** Connections open at once (default 128: gRPC clients multiplex on few). */
  connections: number;
  /** Connections open at once from one address (default 16). */
  connectionsPerAddress: number;
  /** Streams (calls) at once on one connection (default 16). */
  streamsPerConnection: number;
  /** Calls reading a message at once, all callers (default 16): see grpc-calls.ts. */
  readers: number;
  /** Calls reading a message at once from one address (default 4). */
  readersPerAddress: number;
  /** Calls of one address waiting for a read slot (default 16); one more is refused at once. */
  waitingPerAddress: number;
  /** A message must arrive within this long of the call asking for it (default 10 s). */
  messageTimeoutMs: number;
  /** A connection with no call for this long is closed (default 1 min). */
  maxConnectionIdleMs: number;
  /** Every connection is closed after this long (default 1 h), its calls given the grace below. */
  maxConnectionAgeMs: number;
  maxConnectionAgeGraceMs: number;
}

export const DEFAULT_GRPC_LIMITS: GrpcLimits = {
  connections: 128,
  connectionsPerAddress: 16,
  streamsPerConnection: 16,
  readers: 16,
  readersPerAddress: 4,
  waitingPerAddress: 16,
  messageTimeoutMs: 10_000,
  maxConnectionIdleMs: 60_000,
  maxConnectionAgeMs: 60 * 60_000,
  maxConnectionAgeGraceMs: 30_000,
};

const REFUSAL_LINGER_MS = 1_000;
/** HTTP/2's initial stream window: what a paused stream's sender may have sent ahead. */
const STREAM_WINDOW = 65_535;
const MB = 1024 * 1024;
const REFUSALS_AT_ONCE = 64;

/** grpc-js server options for these limits. */
export function grpcServerOptions(limits: GrpcLimits, maxMessageBytes: number): grpc.ServerOptions {
  return {
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_concurrent_streams': limits.streamsPerConnection,
    'grpc.max_connection_idle_ms': limits.maxConnectionIdleMs,
    'grpc.max_connection_age_ms': limits.maxConnectionAgeMs,
    'grpc.max_connection_age_grace_ms': limits.maxConnectionAgeGraceMs,
    // Node's per-connection memory cap, in MB (grpc-js lifts it by default). Node counts received
    // data until it is freed, so it must hold what the read slots allow on one connection, or a
    // call's answer is refused (RST_STREAM ENHANCE_YOUR_CALM) instead of sent.
    'grpc-node.max_session_memory': Math.ceil((limits.readersPerAddress * maxMessageBytes + limits.streamsPerConnection * STREAM_WINDOW) / MB) + 10,
  };
}

export interface GrpcListener {
  readonly port: number;
  readonly connections: ConnectionGuard;
  /** Stops accepting connections (grpc-js then drains or cuts the admitted ones). */
  close(): Promise<void>;
}

/**
 * Listens on `listen` and hands `server` the connections the caps admit. `refuseCaller`, if
 * given, may turn a caller away at once (one whose rate budget is spent).
 */
export async function listenGrpc(server: grpc.Server, listen: string, limits: GrpcLimits, refuseCaller?: (address: string) => ApiError | undefined): Promise<GrpcListener> {
  const { host, port } = parseListen(listen);
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const guard = new ConnectionGuard({ total: limits.connections, perAddress: limits.connectionsPerAddress });
  const refusals = refusalServer();
  const net: NetServer = createServer({ noDelay: true }, (socket: Socket) => {
    const address = callerAddress(socket.remoteAddress);
    const early = refuseCaller?.(address);
    if (early !== undefined) return refusals.refuse(socket, early);
    const refusal = guard.admit(address);
    if (refusal !== undefined) return refusals.refuse(socket, TooManyConnections(refusal));
    socket.once('close', () => guard.release(address));
    injector.injectConnection(socket);
  });
  net.maxConnections = limits.connections + REFUSALS_AT_ONCE;
  await new Promise<void>((resolve, reject) => {
    net.once('error', reject);
    net.listen({ host, port }, () => {
      net.off('error', reject);
      resolve();
    });
  });
  const address = net.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : port,
    connections: guard,
    close: () =>
      new Promise<void>((resolve) => {
        refusals.close();
        net.close(() => resolve());
      }),
  };
}

/**
 * Answers every call on a refused connection RESOURCE_EXHAUSTED with the refusal's code, as a
 * trailers-only response (what a gRPC client reads as the call's status), then closes it.
 */
function refusalServer(): { refuse(socket: Socket, err: ApiError): void; close(): void } {
  const server = http2.createServer();
  const sessions = new Map<http2.Http2Session, ApiError>();
  let refusing: ApiError | undefined;
  server.on('session', (session) => {
    sessions.set(session, refusing!); // emitted within refuse(): this connection's refusal
    session.on('close', () => sessions.delete(session));
    session.on('error', () => {});
    setTimeout(() => session.destroy(), REFUSAL_LINGER_MS).unref();
  });
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    const err = sessions.get(stream.session!) ?? TooManyConnections('over a connection cap');
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(grpc.status.RESOURCE_EXHAUSTED), 'grpc-message': encodeURI(err.message), 'ws-error-code': err.code },
      { endStream: true },
    );
  });
  return {
    refuse(socket, err) {
      socket.on('error', () => {});
      if (sessions.size >= REFUSALS_AT_ONCE) return void socket.destroy();
      refusing = err;
      server.emit('connection', socket);
    },
    close() {
      for (const s of sessions.keys()) s.destroy();
    },
  };
}
