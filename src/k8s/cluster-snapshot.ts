/**
 * The cluster's route rules and policies as this node last saw them, kept in
 * `<stateDir>/cluster-snapshot.json`, so an agent that starts while the API server is out of
 * reach — an edge site cut off from its control plane, often by the very WAN fault the agent is
 * there for, then a reboot — steers by them instead of by nothing. The first lists from the API
 * server replace them.
 *
 *   { "version": 1, "writtenAt": "2026-12-01T19:00:00.000Z",
 *     "virtualServices": [ <VirtualService objects as the API served them> ],
 *     "policies": [ { "name": "boss-to-fibre", "version": "1234", "spec": { ... } } ] }
 *
 * Written only from complete lists (after the informers synced), at most once a second, replaced
 * atomically (temp file, fsync, rename): a crash leaves the old snapshot or the new one. Read
 * back with every object checked again as if the API had served it, so a snapshot written by an
 * older agent, or edited by hand, cannot bring in what the sources would refuse. A snapshot that
 * cannot be used is reported and ignored: the agent then waits for the API server.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../base/atomic-write.js';
import { PolicyError } from '../policies/errors.js';
import type { WanPolicy } from '../policies/model.js';
import { checkPolicyItself, MatchIndex } from '../policies/validate.js';
import { WansteerError } from '../base/errors.js';
import type { VirtualService } from '../routes/model.js';
import { parseVirtualService } from '../routes/validate.js';
import type { KubeObject } from './list-watch.js';

export const CLUSTER_SNAPSHOT_FILE = 'cluster-snapshot.json';
const FORMAT = 1;

/** What a snapshot holds; either part is absent when that source is not the cluster. */
export interface ClusterState {
  readonly virtualServices?: readonly KubeObject[];
  readonly policies?: readonly WanPolicy[];
}

/** A snapshot read back: what passed the checks, what did not, and when it was written. */
export interface LoadedSnapshot {
  readonly writtenAt: string;
  readonly virtualServices?: VirtualService[];
  readonly policies?: WanPolicy[];
  /** Objects left out, each with why (as the sources would log them). */
  readonly skipped: string[];
}

export type SnapshotRead = { status: 'loaded'; snapshot: LoadedSnapshot } | { status: 'missing' } | { status: 'unusable'; problem: string };

export function snapshotPath(stateDir: string): string {
  return join(stateDir, CLUSTER_SNAPSHOT_FILE);
}

/** Read the snapshot in `stateDir`. Never throws: an unusable file is reported as such. */
export async function readClusterSnapshot(stateDir: string): Promise<SnapshotRead> {
  let text: string;
  try {
    text = await readFile(snapshotPath(stateDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'missing' };
    return { status: 'unusable', problem: (err as Error).message };
  }
  let doc: { version?: unknown; writtenAt?: unknown; virtualServices?: unknown; policies?: unknown };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch (err) {
    return { status: 'unusable', problem: `not JSON: ${(err as Error).message}` };
  }
  if (typeof doc !== 'object' || doc === null || doc.version !== FORMAT || typeof doc.writtenAt !== 'string') {
    return { status: 'unusable', problem: `not a version ${FORMAT} snapshot` };
  }
  for (const part of ['virtualServices', 'policies'] as const) {
    if (doc[part] !== undefined && !Array.isArray(doc[part])) return { status: 'unusable', problem: `${part} is not a list` };
  }
  const skipped: string[] = [];
  const snapshot: { -readonly [K in keyof LoadedSnapshot]: LoadedSnapshot[K] } = { writtenAt: doc.writtenAt, skipped };
  if (doc.virtualServices) snapshot.virtualServices = checkVirtualServices(doc.virtualServices as unknown[], skipped);
  if (doc.policies) snapshot.policies = checkPolicies(doc.policies as unknown[], skipped);
  return { status: 'loaded', snapshot };
}

function checkVirtualServices(objects: unknown[], skipped: string[]): VirtualService[] {
  const out: VirtualService[] = [];
  for (const obj of objects) {
    const o = obj as KubeObject;
    try {
      out.push(parseVirtualService(obj, { origin: 'cluster snapshot', defaultNamespace: o?.metadata?.namespace ?? 'default' }));
    } catch (err) {
      if (!(err instanceof WansteerError)) throw err;
      skipped.push(`VirtualService ${o?.metadata?.namespace ?? '?'}/${o?.metadata?.name ?? '?'}: ${err.code}: ${err.message}`);
    }
  }
  return out;
}

/** Each policy as the cluster store checks it; of two that take the same sessions, the first (the older, as written). */
function checkPolicies(items: unknown[], skipped: string[]): WanPolicy[] {
  const out: WanPolicy[] = [];
  const claims = new MatchIndex<WanPolicy>();
  for (const item of items) {
    const p = item as { name?: unknown; version?: unknown; spec?: unknown } | null;
    const name = typeof p?.name === 'string' ? p.name : '?';
    try {
      const spec = checkPolicyItself(name, p?.spec);
      const duplicate = claims.duplicateOf(name, spec);
      if (duplicate) throw duplicate;
      const policy: WanPolicy = { name, spec, version: typeof p?.version === 'string' ? p.version : '' };
      out.push(policy);
      claims.add(policy);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      skipped.push(`WanPolicy ${name}: ${err.code}: ${err.message}`);
    }
  }
  return out;
}

export interface SnapshotWriterOptions {
  readonly stateDir: string;
  /** What to write: the cluster's parts as the sources hold them now. */
  readonly collect: () => ClusterState;
  /** Least time between two writes, in ms. Default 1000. */
  readonly minGapMs?: number;
  readonly onError?: (err: Error) => void;
  readonly now?: () => Date;
}

/** Writes the snapshot after changes, at most once per `minGapMs`; `changed()` after every change. */
export class ClusterSnapshotWriter {
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: SnapshotWriterOptions) {}

  changed(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.options.minGapMs ?? 1000);
    this.timer.unref();
  }

  /** Write now (after any write in progress), with what the sources hold now. */
  flush(): Promise<void> {
    if (this.closed) return this.writing;
    this.writing = this.writing.then(async () => {
      const state = this.options.collect();
      const doc = { version: FORMAT, writtenAt: (this.options.now?.() ?? new Date()).toISOString(), ...state };
      try {
        await writeFileAtomic(snapshotPath(this.options.stateDir), JSON.stringify(doc) + '\n');
      } catch (err) {
        this.options.onError?.(err as Error);
      }
    });
    return this.writing;
  }

  /** Stop writing; a change still waiting is written first, so a clean stop leaves the latest. */
  async close(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      await this.flush();
    }
    this.closed = true;
    await this.writing;
  }
}
