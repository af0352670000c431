/**
 * The VirtualServices currently in force, gathered from any number of sources (files, the cluster),
 * and the route table compiled from them. Sources replace or patch their own share; the table is
 * rebuilt lazily on the next read after a change, and listeners hear about every change.
 */
import type { VirtualService } from './model.js';
import { virtualServiceKey } from './model.js';
import { RouteTable, type RouteTableOptions } from './route-table.js';

export type RuleSetListener = () => void;

export class RuleSet {
  private readonly bySource = new Map<string, Map<string, VirtualService>>();
  private cached: RouteTable | undefined;
  private readonly listeners = new Set<RuleSetListener>();

  constructor(private readonly options: RouteTableOptions = {}) {}

  /** Replaces everything one source contributes (a file's objects, or a relist). */
  replaceSource(source: string, virtualServices: readonly VirtualService[]): void {
    if (virtualServices.length === 0) this.bySource.delete(source);
    else this.bySource.set(source, new Map(virtualServices.map((vs) => [virtualServiceKey(vs), vs])));
    this.changed();
  }

  upsert(source: string, vs: VirtualService): void {
    let objects = this.bySource.get(source);
    if (!objects) this.bySource.set(source, (objects = new Map()));
    objects.set(virtualServiceKey(vs), vs);
    this.changed();
  }

  remove(source: string, key: string): void {
    if (this.bySource.get(source)?.delete(key)) this.changed();
  }

  /** One object per `namespace/name`: if two sources carry the same one, the source named first wins. */
  virtualServices(): VirtualService[] {
    const byKey = new Map<string, VirtualService>();
    for (const source of [...this.bySource.keys()].sort()) {
      for (const [key, vs] of this.bySource.get(source)!) if (!byKey.has(key)) byKey.set(key, vs);
    }
    return [...byKey.values()];
  }

  table(): RouteTable {
    this.cached ??= new RouteTable(this.virtualServices(), this.options);
    return this.cached;
  }

  onChange(listener: RuleSetListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    this.cached = undefined;
    for (const listener of this.listeners) listener();
  }
}
