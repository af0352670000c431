/**
 * The files a standalone config names, checked before the agent sets anything up (the datapath,
 * the listeners): a missing token file or rules directory is the operator's to fix, said with
 * its field and the fix (and exit 78), not found half-way through start-up as a stack trace
 * after the BPF programs were loaded.
 */
import { open, stat } from 'node:fs/promises';
import { ConfigError } from './errors.js';
import type { AgentConfig } from './schema.js';

/** A bearer token is a line of text; anything larger is not a token file. */
export const MAX_TOKEN_BYTES = 64 * 1024;

export interface LocalFiles {
  /** The bearer token for policy writes, if auth.tokenFile names one (trimmed; may be empty). */
  token: string | undefined;
}

/** Reads the token file and checks the rules directory; throws ConfigError naming the field. */
export async function readLocalFiles(config: AgentConfig): Promise<LocalFiles> {
  const token = config.auth.tokenFile === undefined ? undefined : await readToken(config.auth.tokenFile);
  if (config.rules.source === 'directory') await checkDirectory(config.rules.directory);
  return { token };
}

async function readToken(file: string): Promise<string> {
  const fail = (problem: string) =>
    new ConfigError('WS_CONFIG_FILE_READ', [{ field: `auth.tokenFile (${file})`, problem, fix: 'write the bearer token to that file (one line), or leave auth.tokenFile out to refuse policy writes' }]);
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw fail(problemOf(err));
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw fail('is not a regular file');
    const bytes = Buffer.alloc(MAX_TOKEN_BYTES + 1);
    const { bytesRead } = await handle.read(bytes, 0, bytes.length, 0);
    if (bytesRead > MAX_TOKEN_BYTES) throw fail(`is over ${MAX_TOKEN_BYTES} bytes: not a token`);
    return bytes.toString('utf8', 0, bytesRead).trim();
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw fail(problemOf(err));
  } finally {
    await handle.close();
  }
}

async function checkDirectory(directory: string): Promise<void> {
  let problem: string | undefined;
  try {
    if (!(await stat(directory)).isDirectory()) problem = 'is not a directory';
  } catch (err) {
    problem = problemOf(err);
  }
  if (problem !== undefined) {
    throw new ConfigError('WS_CONFIG_FILE_READ', [{ field: `rules.directory (${directory})`, problem, fix: 'create the directory (it may be empty) and put VirtualService YAML files in it, or point rules.directory (--rules-dir) at the right one' }]);
  }
}

function problemOf(err: unknown): string {
  const code = (err as { code?: string }).code;
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EACCES') return 'is not readable (permission denied)';
  if (code === 'EISDIR') return 'is a directory, not a file';
  return `cannot be read: ${err instanceof Error ? err.message : String(err)}`;
}
