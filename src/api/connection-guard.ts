/**
 * Connection caps for one listener: at most `total` connections open at once, and at most
 * `perAddress` from one caller address, so that a caller without a token cannot hold every
 * socket (and the memory behind each) of the agent. Both listeners (HTTP, gRPC) count their own.
 */
import { AddressCounts } from './address-counts.js';

export interface ConnectionCaps {
  /** Connections open at once, all callers together. */
  total: number;
  /** Connections open at once from one caller address. */
  perAddress: number;
}

export class ConnectionGuard {
  private readonly byAddress = new AddressCounts();
  private count = 0;

  constructor(readonly caps: ConnectionCaps) {}

  /** Counts a new connection from `address` in; or, over a cap, counts nothing and says which. */
  admit(address: string): string | undefined {
    if (this.count >= this.caps.total) return `the agent holds its limit of ${this.caps.total} connections; retry later`;
    if (this.byAddress.of(address) >= this.caps.perAddress) return `${address} holds its limit of ${this.caps.perAddress} connections; reuse one (keep-alive)`;
    this.byAddress.add(address);
    this.count++;
    return undefined;
  }

  /** A connection admitted from `address` closed. */
  release(address: string): void {
    if (this.byAddress.remove(address)) this.count--;
  }

  get connections(): number {
    return this.count;
  }

  connectionsFrom(address: string): number {
    return this.byAddress.of(address);
  }
}
