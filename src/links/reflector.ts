/**
 * A TWAMP-light reflector (RFC 5357 Appendix I): answers each test packet to its sender,
 * stateless but for its own sequence number. `wansteer reflector` runs one; put it where the
 * links' probes should go (a host in the cloud the edge reaches over every WAN link).
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { decodeSender, encodeReflected, ntpNow } from './twamp.js';

export interface Reflector {
  readonly address: string;
  readonly port: number;
  /** Test packets answered so far. */
  readonly answered: number;
  close(): Promise<void>;
}

export async function startReflector(host: string, port: number): Promise<Reflector> {
  const socket: Socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', reuseAddr: false });
  let seq = 0;
  let answered = 0;
  socket.on('message', (msg, rinfo) => {
    const rx = ntpNow();
    const sender = decodeSender(msg);
    if (!sender) return;
    const out = encodeReflected(seq++, sender, rx, ntpNow(), msg.length);
    socket.send(out, rinfo.port, rinfo.address);
    answered++;
  });
  socket.on('error', () => {}); // ICMP errors from senders that went away: nothing to do
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const bound = socket.address();
  return {
    address: bound.address,
    port: bound.port,
    get answered() {
      return answered;
    },
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
}
