/**
 * Internet-link routing kept in memory: what --dry-run uses (nothing in the kernel is touched)
 * and what engine tests read back. Records what the engine asked for, nothing more.
 */
import type { InternetRoutingPort } from '../port.js';

export class MemoryInternetRouting implements InternetRoutingPort {
  private classes = new Map<number, number>();
  /** Link ids whose connections were reset, in order. */
  readonly resets: number[] = [];
  /** Link ids whose routes were refreshed, in order. */
  readonly refreshed: number[] = [];

  setClasses(classes: ReadonlyMap<number, number>): void {
    this.classes = new Map(classes);
  }

  classLinks(): ReadonlyMap<number, number> {
    return this.classes;
  }

  resetConnections(linkId: number): number {
    this.resets.push(linkId);
    return 0;
  }

  refreshLink(linkId: number): void {
    this.refreshed.push(linkId);
  }

  close(): void {}
}
