/**
 * Raw HTTP/1.1 over a loopback socket, for the tests that need what a client library will not
 * send (half a body, a PROXY header, a body a byte a second) and what it hides (when the agent
 * closes the connection, and what it answered first). Connects from a chosen 127.0.0.x address,
 * so a test can be several callers.
 */
import { connect, type Socket } from 'node:net';

export interface RawAnswer {
  status: number;
  headers: string;
  body: string;
  /** The WS_* code of a JSON error body. */
  code?: string;
}

export class RawClient {
  readonly answers: RawAnswer[] = [];
  readonly closed: Promise<void>;
  private buffer = Buffer.alloc(0);
  private constructor(readonly socket: Socket) {
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      for (;;) {
        const end = this.buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = this.buffer.toString('latin1', 0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (this.buffer.length < end + 4 + length) return;
        const body = this.buffer.toString('utf8', end + 4, end + 4 + length);
        const code = /"code":"(WS_[A-Z_]+)"/.exec(body)?.[1];
        this.answers.push({ status: Number(head.slice(9, 12)), headers: head, body, ...(code && { code }) });
        this.buffer = this.buffer.subarray(end + 4 + length);
      }
    });
  }

  static open(port: number, from = '127.0.0.1'): Promise<RawClient> {
    const socket = connect({ host: '127.0.0.1', port, localAddress: from });
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  write(data: string | Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  /** Resolves with the first answer (or undefined if the connection closes first), within `ms`. */
  async answer(ms = 10_000): Promise<RawAnswer | undefined> {
    const deadline = Date.now() + ms;
    while (this.answers.length === 0 && !this.socket.destroyed && Date.now() < deadline) await sleep(10);
    if (this.answers.length === 0 && Date.now() >= deadline) throw new Error(`no answer within ${ms} ms`);
    return this.answers[0];
  }

  /** True once the agent has closed the connection; throws if it has not within `ms`. */
  async closedWithin(ms = 10_000): Promise<true> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closed, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms)))]);
    clearTimeout(timer);
    return true;
  }

  /** Still open after `ms` (the agent has not cut it). */
  async openAfter(ms: number): Promise<boolean> {
    await sleep(ms);
    return !this.socket.destroyed && this.socket.readyState === 'open';
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Request line and headers of a JSON POST declaring `length` body bytes. */
export function postHead(path: string, length: number, extra = ''): string {
  return `POST ${path} HTTP/1.1\r\nhost: agent\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n${extra}\r\n`;
}
