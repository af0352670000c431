/**
 * The caller address the engine's spoof check compares with a report's local address: the
 * socket's remote address, with IPv4-mapped IPv6 (`::ffff:10.0.0.5`, what a dual-stack socket
 * shows for an IPv4 peer) written as plain IPv4.
 */
import { isIP } from 'node:net';

export function callerAddress(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined) return 'unknown';
  if (remoteAddress.length > 7 && remoteAddress.charCodeAt(0) === 58 /* : */) {
    const lower = remoteAddress.toLowerCase();
    if (lower.startsWith('::ffff:') && isIP(lower.slice(7)) === 4) return lower.slice(7);
    return lower;
  }
  return remoteAddress.includes(':') ? remoteAddress.toLowerCase() : remoteAddress;
}

/** grpc-js writes the peer as `address:port`, IPv6 unbracketed (`::1:5000`); `unknown` without a socket. */
export function grpcPeerAddress(peer: string): string {
  if (peer.startsWith('[')) {
    const end = peer.indexOf(']');
    if (end > 0) return callerAddress(peer.slice(1, end));
  }
  const colon = peer.lastIndexOf(':');
  if (colon > 0 && /^[0-9]+$/.test(peer.slice(colon + 1)) && isIP(peer.slice(0, colon)) !== 0) {
    return callerAddress(peer.slice(0, colon));
  }
  return isIP(peer) !== 0 ? callerAddress(peer) : 'unknown';
}
