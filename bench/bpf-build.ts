/**
 * Build a BPF object for a benchmark on the fly (clang, the flags of bpf/Makefile), into a
 * directory the caller removes: bench-only programs (bench/bpf/) and variants of the shipped
 * ones (e.g. steer.bpf.c with -DWS_NO_NAT_ORIGIN, the program as it was before that line).
 */
import { execFileSync } from 'node:child_process';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

export function buildBpf(source: string, outDir: string, opts: { defines?: string[]; name?: string } = {}): string {
  const arch = process.arch === 'arm64' ? 'arm64' : 'x86';
  let multiarch = '';
  try {
    multiarch = execFileSync('cc', ['-print-multiarch'], { encoding: 'utf8' }).trim();
  } catch {
    /* no gcc: the plain include path may do */
  }
  const out = join(outDir, opts.name ?? basename(source).replace(/\.c$/, '.o'));
  try {
    execFileSync('clang', [
    '-O2', '-g', '-Wall', '-Werror', '-target', 'bpf', `-D__TARGET_ARCH_${arch}`,
    ...(opts.defines ?? []).map((d) => `-D${d}`),
    '-I', join(ROOT, 'bpf/include'), '-I', join(ROOT, 'bpf/lib'), ...(multiarch ? ['-I', `/usr/include/${multiarch}`] : []),
    '-c', join(ROOT, source), '-o', out,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`clang ${source}: ${String((err as { stderr?: Buffer }).stderr ?? err)}`);
  }
  return out;
}
