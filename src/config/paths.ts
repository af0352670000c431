/**
 * Files that ship with wansteer (the BPF object, the demo's traffic tool), found from the
 * package root whether running from src/ under tsx or from the compiled dist/.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | null = null;

/** The directory holding wansteer's package.json. */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || dir.endsWith('/dist')) {
    const up = dirname(dir);
    if (up === dir) throw new Error('wansteer: cannot find the package root (package.json)');
    dir = up;
  }
  root = dir;
  return dir;
}

/** A path inside the package, e.g. fromRoot('build/bpf/steer.bpf.o'). */
export function fromRoot(relative: string): string {
  return join(packageRoot(), relative);
}
