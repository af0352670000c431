/**
 * Replaces a file so that a crash at any moment leaves either the old or the new content, never
 * a torn mix: write a temp file in the same directory (rename is atomic only within one file
 * system), fsync it (the data is on disk before the name points at it), rename it over the
 * target, fsync the directory (the rename itself is on disk).
 *
 *   await writeFileAtomic(path, text);                      // survives a power cut too
 *   await writeFileAtomic(path, text, { durable: false });  // survives the process, no fsync
 *   writeFileAtomicSync(path, text);                        // the same, blocking (at shutdown)
 *
 * `durable: false` is for state that must outlive the agent but not the machine (what it
 * describes does not survive a power cut either); an fsync can block for a second on a busy disk.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const tempPrefix = (path: string): string => `.${basename(path)}.`;

const tempName = (path: string): string => join(dirname(path), `${tempPrefix(path)}${process.pid}.${randomBytes(4).toString('hex')}.tmp`);

export async function writeFileAtomic(path: string, data: string, opts: { durable?: boolean } = {}): Promise<void> {
  const durable = opts.durable ?? true;
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const mode = await stat(path).then((s) => s.mode & 0o777, () => 0o644);
  const temp = tempName(path);
  try {
    const file = await open(temp, 'wx', mode);
    try {
      await file.writeFile(data, 'utf8');
      if (durable) await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  if (durable) await syncDirectory(dir);
}

/** writeFileAtomic, blocking, without fsync (for the last save as the agent stops). */
export function writeFileAtomicSync(path: string, data: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = tempName(path);
  try {
    const fd = openSync(temp, 'wx', 0o644);
    try {
      writeSync(fd, data);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Removes temp files a killed writer left behind; returns how many. Call before the first write. */
export async function removeStaleTempFiles(path: string): Promise<number> {
  const prefix = tempPrefix(path);
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  const stale = names.filter((n) => n.startsWith(prefix) && n.endsWith('.tmp'));
  await Promise.all(stale.map((n) => rm(join(dirname(path), n), { force: true })));
  return stale.length;
}
