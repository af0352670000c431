/**
 * Test-only variants of the steering object (bpf/Makefile test-variants, never shipped), built on
 * first use into build/bpf/test/. make is serialised with flock: test files run in parallel.
 *
 *   steerNext — layout 2: the same sources with WS_TEST_LAYOUT_NEXT, whose flow value has one
 *               more field (test_next, zero = what layout 1 meant) and whose per-CPU ws_reasons
 *               has one more slot (as if a reason were added).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fromRoot } from '../../src/config/paths.js';

export function testVariants(): { steerNext: string } {
  mkdirSync(fromRoot('build/bpf'), { recursive: true });
  execFileSync('flock', [fromRoot('build/bpf/.test-variants.lock'), 'make', '-s', '-C', fromRoot('bpf'), 'test-variants'], { stdio: 'pipe' });
  return { steerNext: fromRoot('build/bpf/test/steer_next.bpf.o') };
}
