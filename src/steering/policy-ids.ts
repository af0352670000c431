/**
 * Node-local policy ids: the number each policy name has in the datapath (flow entries and
 * DSCP entries hold it). Flows outlive the agent in pinned maps, so the assignment must
 * outlive it too: it is kept in `<stateDir>/policy-ids.json`, replaced atomically (temp file,
 * rename). The engine saves it once per list of policies it takes in (a burst of 1000 new
 * WanPolicies is one save, not 1000), off the event loop (saveAsync): a rename over the old file
 * took up to 450 ms on a busy disk, during which no session report or probe was served.
 *
 * So the datapath may hold a new id a moment before the file does. That is safe: an agent that
 * finds flows whose id the file lacks deletes them (they are steered again when next reported),
 * and a released id is not handed out again until the other 4094 have been, so the file never
 * names the wrong policy for an id. No fsync: the file must outlive the agent, not the machine;
 * the pinned maps it describes live in bpffs, in kernel memory, and are gone after a power cut
 * too.
 *
 *   { "version": 1, "next": 4, "ids": { "boss-to-fibre": 1, "minion-to-lte": 3 } }
 *
 * Ids are handed out round-robin from `next`, so a released id is not reused until the other
 * 4094 have been: a flow still carrying an old id can never be steered by a newer policy.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeFileAtomicSync } from '../base/atomic-write.js';
import { MAX_POLICIES } from '../datapath/index.js';

export const POLICY_IDS_FILE = 'policy-ids.json';

/** What load() found: the file, no file, or a file it could not use (treated as no file). */
export type PolicyIdsLoad = { status: 'loaded' } | { status: 'missing' } | { status: 'unreadable'; problem: string };

export class PolicyIds {
  private readonly byName = new Map<string, number>();
  private readonly byId = new Map<number, string>();
  private next = 1;

  private constructor(readonly file: string) {}

  /** Read the assignment kept in `stateDir`. Never throws: an unusable file is reported as such. */
  static load(stateDir: string): { ids: PolicyIds; found: PolicyIdsLoad } {
    const ids = new PolicyIds(join(stateDir, POLICY_IDS_FILE));
    let text: string;
    try {
      text = readFileSync(ids.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ids, found: { status: 'missing' } };
      return { ids, found: { status: 'unreadable', problem: (err as Error).message } };
    }
    const problem = ids.parse(text);
    if (problem) {
      ids.byName.clear();
      ids.byId.clear();
      ids.next = 1;
      return { ids, found: { status: 'unreadable', problem } };
    }
    return { ids, found: { status: 'loaded' } };
  }

  private parse(text: string): string | null {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      return `not JSON: ${(err as Error).message}`;
    }
    const d = doc as { version?: unknown; next?: unknown; ids?: unknown };
    if (!d || typeof d !== 'object' || d.version !== 1 || !d.ids || typeof d.ids !== 'object') return 'not a version 1 policy id file';
    for (const [name, id] of Object.entries(d.ids as Record<string, unknown>)) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id >= MAX_POLICIES) return `policy ${name} has a bad id ${JSON.stringify(id)}`;
      if (this.byId.has(id)) return `id ${id} is given to both ${this.byId.get(id)} and ${name}`;
      this.byName.set(name, id);
      this.byId.set(id, name);
    }
    if (typeof d.next === 'number' && Number.isInteger(d.next) && d.next >= 1 && d.next < MAX_POLICIES) this.next = d.next;
    return null;
  }

  get size(): number {
    return this.byName.size;
  }

  get(name: string): number | undefined {
    return this.byName.get(name);
  }

  nameOf(id: number): string | undefined {
    return this.byId.get(id);
  }

  hasId(id: number): boolean {
    return this.byId.has(id);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  /** The id of `name`, assigning the next free one if it has none. Null when all ids are taken. */
  assign(name: string): number | null {
    const known = this.byName.get(name);
    if (known !== undefined) return known;
    for (let tries = 1; tries < MAX_POLICIES; tries++) {
      const id = this.next;
      this.next = id + 1 >= MAX_POLICIES ? 1 : id + 1;
      if (this.byId.has(id)) continue;
      this.byName.set(name, id);
      this.byId.set(id, name);
      return id;
    }
    return null;
  }

  /** Forget `name`; returns the id it had. */
  release(name: string): number | undefined {
    const id = this.byName.get(name);
    if (id === undefined) return undefined;
    this.byName.delete(name);
    this.byId.delete(id);
    return id;
  }

  /**
   * Write the assignment as it is now, off the event loop: all of it or none of it lands. Saves
   * must not overlap (the engine runs one at a time), or an older one could land last.
   */
  async saveAsync(): Promise<void> {
    await writeFileAtomic(this.file, this.text(), { durable: false });
  }

  private text(): string {
    const ids: Record<string, number> = {};
    for (const [name, id] of [...this.byName].sort((a, b) => a[1] - b[1])) ids[name] = id;
    return `${JSON.stringify({ version: 1, next: this.next, ids }, null, 2)}\n`;
  }

  /** Write the assignment now (blocking): all of it or none of it lands, whenever the agent stops. */
  save(): void {
    writeFileAtomicSync(this.file, this.text());
  }
}
