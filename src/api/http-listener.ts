/**
 * The bounds of the HTTP listener, set where fastify creates its server: how many connections
 * (total, per caller address), how long a request may take to arrive (headers, then the whole
 * request), how large its headers may be. A caller without a token can then hold only so many
 * sockets, for only so long.
 *
 * Node checks the header and request deadlines on a timer (`connectionsCheckingInterval`, 30 s
 * by default, which let a 10 s deadline cut a request only after up to 40 s); here it runs every
 * second. An idle keep-alive connection is not subject to the header deadline (Node 18+ starts
 * it at a request's first byte), so keepAliveTimeout may exceed it.
 *
 * Every refusal made here, below fastify's routing, still carries a WS_* code: a connection over
 * a cap is answered 503 WS_API_TOO_MANY_CONNECTIONS (a second after it connects: see refuser)
 * and closed; what Node's HTTP parser refuses (a PROXY header, a bad request line, headers too
 * large or too slow) is answered with the catalogue's code by clientErrorAnswer.
 */
import type { Server, ServerOptions } from 'node:http';
import type { Socket } from 'node:net';
import { callerAddress } from './caller.js';
import { ConnectionGuard } from './connection-guard.js';
import { HeadersTooLarge, MalformedRequest, RequestTimeout, toErrorBody, TooManyConnections, type ApiError } from './errors.js';

export interface HttpLimits {
  /** Connections open at once (default 1024). */
  connections: number;
  /** Connections open at once from one address (default 64). */
  connectionsPerAddress: number;
  /** From a request's first byte to the end of its headers (default 5 s). */
  headersTimeoutMs: number;
  /** From a request's first byte to the end of its body (default 10 s: reports are small). */
  requestTimeoutMs: number;
  /** Idle keep-alive connections are kept this long: the Lua filter's pool reuses them (default 75 s). */
  keepAliveTimeoutMs: number;
  /** Request line and headers together (default 16 KiB, Node's). */
  maxHeaderBytes: number;
  /** Bytes of request bodies held at once beyond the first 64 KiB of each (default 32 MiB); see json-body.ts. */
  bodyBytesInFlight: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  connections: 1024,
  connectionsPerAddress: 64,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 75_000,
  maxHeaderBytes: 16 * 1024,
  bodyBytesInFlight: 32 * 1024 * 1024,
};

/** Refused connections are answered after REFUSAL_DELAY_MS, linger to deliver it, and at most this many are held at once. */
export const REFUSAL_DELAY_MS = 1_000;
const REFUSAL_LINGER_MS = 1_000;
const REFUSALS_AT_ONCE = 64;

/** The fastify options that create the server with these bounds. */
export function httpServerOptions(limits: HttpLimits) {
  const http: ServerOptions = {
    // Node insists headers come no later than the whole request.
    headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs),
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    maxHeaderSize: limits.maxHeaderBytes,
    connectionsCheckingInterval: 1_000,
  };
  return {
    http,
    // fastify sets these on the server after creating it; 0 would mean "none".
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => answerClientError(err, socket, limits),
  };
}

/**
 * Puts the connection caps in front of `server`: Node's own connection handling (the HTTP
 * parser) only ever sees admitted sockets; one over a cap is answered 503 and closed. Node's
 * `maxConnections` stays as a backstop above the caps, for the refused ones still lingering.
 * `refuse`, if given, may turn a caller away as it connects (app.ts: one whose rate budget
 * cannot pay for a request), so that a flood of new connections costs the agent an accept, a
 * timer and a write each, no more.
 *
 * Sockets are accepted paused (`pauseOnConnect`): nothing is read from one until it is
 * admitted, so a refused caller's bytes are never read at all.
 */
export function guardConnections(server: Server, limits: HttpLimits, refuseCaller?: (address: string) => ApiError | undefined): ConnectionGuard {
  const guard = new ConnectionGuard({ total: limits.connections, perAddress: limits.connectionsPerAddress });
  const accept = server.listeners('connection') as ((socket: Socket) => void)[];
  const refuse = refuser();
  server.removeAllListeners('connection');
  server.maxConnections = limits.connections + REFUSALS_AT_ONCE;
  (server as Server & { pauseOnConnect: boolean }).pauseOnConnect = true;
  server.on('connection', (socket: Socket) => {
    const address = callerAddress(socket.remoteAddress);
    const early = refuseCaller?.(address);
    if (early !== undefined) return refuse(socket, early);
    const refusal = guard.admit(address);
    if (refusal !== undefined) return refuse(socket, TooManyConnections(refusal));
    socket.once('close', () => guard.release(address));
    for (const listener of accept) listener.call(server, socket);
    socket.resume();
  });
  return guard;
}

/**
 * Answers a socket no request handler owns with an error, as a whole HTTP/1.1 answer, and
 * closes it. The socket is never read: a refused caller's body (megabytes, for an attacker that
 * reconnects after every answer) would cost the agent a copy of every byte.
 *
 * The answer waits REFUSAL_DELAY_MS (a 429 says to retry a second later at the soonest anyway):
 * a caller that reconnects as soon as it is answered so makes one attempt a second on each
 * connection, instead of as many as it can open (with 2 senders of 1.8 MB bodies, thousands a
 * second, each an accept, a socket and a close for the agent). The socket then lingers so that
 * the caller, still sending, reads the answer before the close resets the connection (its write
 * would fail first, and hide the answer). At most REFUSALS_AT_ONCE are held, each with no more
 * than a receive window of unread bytes in the kernel; beyond that a refused socket is answered
 * and closed at once.
 */
function refuser(): (socket: Socket, err: ApiError) => void {
  let held = 0;
  return (socket, err) => {
    socket.on('error', () => {});
    if (held >= REFUSALS_AT_ONCE) {
      socket.end(rawAnswer(err));
      return void socket.destroy();
    }
    held++;
    let timer = setTimeout(() => {
      socket.end(rawAnswer(err));
      timer = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
    }, REFUSAL_DELAY_MS).unref();
    socket.once('close', () => {
      clearTimeout(timer);
      held--;
    });
  };
}

/** The catalogue's JSON error as raw HTTP/1.1 bytes, closing the connection. */
export function rawAnswer(err: ApiError): string {
  const { body, headers } = toErrorBody(err);
  const json = JSON.stringify(body);
  const extra = Object.entries(headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return `HTTP/1.1 ${body.statusCode} ${body.error}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(json)}\r\nconnection: close\r\n${extra}\r\n${json}`;
}

/** What Node's HTTP parser (or its request deadlines) refused, as a catalogue error. */
export function clientErrorAnswer(err: NodeJS.ErrnoException & { reason?: string }, limits: Pick<HttpLimits, 'headersTimeoutMs' | 'requestTimeoutMs' | 'maxHeaderBytes'>): ApiError {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return RequestTimeout(`the request did not arrive in time: headers within ${limits.headersTimeoutMs} ms, the whole request within ${limits.requestTimeoutMs} ms of its first byte`);
    case 'HPE_HEADER_OVERFLOW':
      return HeadersTooLarge(String(limits.maxHeaderBytes));
    default:
      return MalformedRequest(`${err.reason ?? err.message} (${err.code ?? 'no code'})`);
  }
}

/** fastify's clientErrorHandler: answer with the code unless a response is already under way, then close. */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket, limits: HttpLimits): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  // Node's own rule: no answer over one it has begun to write (the `_httpMessage` it keeps on the socket).
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) socket.write(rawAnswer(clientErrorAnswer(err, limits)));
  socket.destroy();
}
