/**
 * How many of something (connections, read slots, waiting calls) each caller address holds, for
 * the per-address caps of the listeners. An address at zero has no entry, so a caller that left
 * costs nothing and the map stays as large as the callers present.
 */
export class AddressCounts {
  private readonly counts = new Map<string, number>();

  of(address: string): number {
    return this.counts.get(address) ?? 0;
  }

  add(address: string): void {
    this.counts.set(address, this.of(address) + 1);
  }

  /** One fewer for `address`; false (and nothing changed) when it held none. */
  remove(address: string): boolean {
    const n = this.counts.get(address);
    if (n === undefined) return false;
    if (n <= 1) this.counts.delete(address);
    else this.counts.set(address, n - 1);
    return true;
  }
}
