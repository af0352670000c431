/**
 * Tests that need a tool the machine may lack (luajit, …), the same rule as describePrivileged
 * in privilege.ts: locally a missing tool skips them with the reason; under CI (CI=true) it fails
 * them instead, because scripts/setup.sh installs the tool and there they must run.
 *
 *   const luajit = requireTool('luajit', LUAJIT);
 *   luajit.describe('the Lua filter in LuaJIT', () => { ... });
 *   luajit.it('runs the rendered Lua', async () => { ... });
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { describe, it, type TestFunction } from 'vitest';
import { ENVOY_MODULE_DIR, ENVOY_VERSION, envoyBinary } from '../../src/lab/envoy.js';

export interface RequiredTool {
  /** Why the tool cannot run here (with what to do about it), or undefined. */
  readonly missing: string | undefined;
  /** `describe` whose tests need the tool. */
  describe(name: string, body: () => void): void;
  /** `it` for a single test that needs the tool. */
  it(name: string, fn: TestFunction, timeout?: number): void;
}

/** `tool` as the tests run it: at `path` when they use a fixed one, else found on PATH. */
export function requireTool(tool: string, path?: string): RequiredTool {
  return required(toolMissing(tool, path));
}

function required(missing: string | undefined): RequiredTool {
  const ci = Boolean(missing && process.env.CI);
  const failure = () => new Error(`cannot run under CI: ${missing}`);
  return {
    missing,
    describe(name, body) {
      if (ci) describe(name, () => { throw failure(); });
      else if (missing) describe.skip(`${name} (skipped: ${missing})`, body);
      else describe(name, body);
    },
    it(name, fn, timeout) {
      if (ci) it(name, () => { throw failure(); });
      else if (missing) it.skip(`${name} (skipped: ${missing})`, fn, timeout);
      else it(name, fn, timeout);
    },
  };
}

function toolMissing(tool: string, path: string | undefined): string | undefined {
  try {
    if (path) accessSync(path, constants.X_OK);
    else execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return undefined;
  } catch {
    return `${tool} missing${path ? ` (no ${path})` : ''}: run scripts/setup.sh`;
  }
}

/**
 * The real Envoy (scripts/setup-envoy.sh installs the pinned version in the cache; WANSTEER_ENVOY
 * points at another): its tests skip without it locally and fail under CI.
 */
export function requireEnvoy(): RequiredTool & { readonly path: string; readonly version: string } {
  const path = envoyBinary();
  return { ...requireTool(`envoy ${process.env.WANSTEER_ENVOY ? '(WANSTEER_ENVOY)' : ENVOY_VERSION}`, path), path, version: ENVOY_VERSION };
}

/**
 * The real Envoy and the wansteer dynamic module it loads (build/envoy-module/libwansteer.so,
 * built by `make -C envoy-filters/native`, which scripts/setup.sh and `npm run build:native` run):
 * skipped locally without either, failed under CI.
 */
export function requireEnvoyModule(): RequiredTool & { readonly path: string; readonly version: string; readonly module: string } {
  const envoy = requireEnvoy();
  const module = `${ENVOY_MODULE_DIR}/libwansteer.so`;
  let missing = envoy.missing;
  if (missing === undefined) {
    try {
      accessSync(module, constants.R_OK);
    } catch {
      missing = `the wansteer Envoy module is missing (no ${module}): run make -C envoy-filters/native (or scripts/setup.sh)`;
    }
  }
  return { ...required(missing), path: envoy.path, version: envoy.version, module };
}
