import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Privileged tests share the kernel (bpffs pins, tc hooks, namespaces): run files one at a time
    // so two suites never race for the same interface or pin path.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
