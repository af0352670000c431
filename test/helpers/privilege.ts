/**
 * Can this process run the privileged tests (load BPF, attach tc, make namespaces)?
 * Locally a missing capability skips those tests with the reason; under CI (CI=true) it fails
 * them instead, because there they must run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, statfsSync } from 'node:fs';
import { describe } from 'vitest';
import { reapStaleLabs } from '../../src/lab/index.js';
import { defaultObjectPath } from '../../src/datapath/loader.js';

const BPF_FS_MAGIC = 0xcafe4a11;

function missing(): string | null {
  if (process.getuid?.() !== 0) return 'not root (needs CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN for namespaces)';
  try {
    if (Number(statfsSync('/sys/fs/bpf').type) !== BPF_FS_MAGIC) return '/sys/fs/bpf is not a bpffs mount';
  } catch {
    return '/sys/fs/bpf does not exist';
  }
  if (!existsSync(defaultObjectPath())) return `BPF object ${defaultObjectPath()} not built (run \`make -C bpf\`)`;
  for (const tool of ['ip', 'nsenter', 'nft']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} not installed`;
    }
  }
  return null;
}

export const privilegeProblem = missing();

// Namespaces and pins of test processes that died without cleaning up go first.
if (!privilegeProblem) reapStaleLabs();

/** `describe` for tests that need the kernel: skipped with the reason locally, failed under CI. */
export function describePrivileged(name: string, body: () => void): void {
  if (privilegeProblem && process.env.CI) {
    describe(name, () => {
      throw new Error(`privileged test cannot run under CI: ${privilegeProblem}`);
    });
    return;
  }
  if (privilegeProblem) {
    describe.skip(`${name} (skipped: ${privilegeProblem})`, body);
    return;
  }
  describe(name, body);
}
