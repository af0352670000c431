// Proves the Dockerfile (which cannot be built here) has the shape the agent needs: a build stage
// with clang/llvm/libbpf-dev that runs `make -C bpf` and `make -C native/addon`, `npm ci` and tsc and prunes dev packages,
// and a slim Node 20 runtime stage with libbpf1 and iproute2 that copies everything the agent
// reads at run time from the build stage and starts `bin/wansteer.js agent` (its #! line's node flags
// apply only when the script is executed itself).
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fromRoot } from '../../src/config/paths.js';

interface Instruction {
  readonly op: string;
  readonly args: string;
}
interface Stage {
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

/** Stages of a Dockerfile: comments dropped, `\` continuations joined. */
export function parseDockerfile(text: string): Stage[] {
  const lines = text.split('\n').filter((l) => !/^\s*#/.test(l));
  const joined = lines.join('\n').replace(/\\\n/g, ' ');
  const stages: Stage[] = [];
  for (const line of joined.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const [, op, args] = /^(\S+)\s+(.*)$/.exec(line) ?? [];
    if (!op) throw new Error(`cannot parse: ${line}`);
    if (op.toUpperCase() === 'FROM') {
      const [image, as, name] = args!.split(/\s+/);
      stages.push({ from: image!, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else {
      if (stages.length === 0) throw new Error(`${op} before FROM`);
      stages[stages.length - 1]!.instructions.push({ op: op.toUpperCase(), args: args!.replace(/\s+/g, ' ') });
    }
  }
  return stages;
}

const stages = parseDockerfile(readFileSync(fromRoot('Dockerfile'), 'utf8'));
const runs = (s: Stage) => s.instructions.filter((i) => i.op === 'RUN').map((i) => i.args).join(' && ');
const aptPackages = (s: Stage) => [...runs(s).matchAll(/apt-get install ([^&]+)/g)].flatMap((m) => m[1]!.split(' ').filter((w) => w && !w.startsWith('-')));
const copies = (s: Stage) => s.instructions.filter((i) => i.op === 'COPY').map((i) => i.args.split(' '));
const execForm = (s: Stage, op: string) => JSON.parse(s.instructions.find((i) => i.op === op)!.args) as string[];

describe('Dockerfile', () => {
  const [build, runtime] = stages;

  it('has two stages: build, then the runtime the image ends with', () => {
    expect(stages.map((s) => s.name)).toEqual(['build', 'runtime']);
  });

  it('builds on Debian 12 with Node 20 and the BPF toolchain', () => {
    expect(build!.from).toMatch(/^node:20-bookworm$/); // the full image: gcc and make are in it
    expect(aptPackages(build!).sort()).toEqual(['clang', 'libbpf-dev', 'llvm']);
  });

  it('installs from the lock file, then builds the BPF object, the native addon and the TypeScript, then drops dev packages', () => {
    const steps = runs(build!);
    const order = ['npm ci', 'make -C bpf', 'make -C native/addon', 'make -C envoy-filters/native', 'npx tsc -p tsconfig.json', 'npm prune --omit=dev'].map((s) => steps.indexOf(s));
    expect(order.every((i) => i >= 0), steps).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    // package files first: the npm ci layer is cached until the lock file changes.
    const copied = copies(build!).map((c) => c.slice(0, -1).join(' '));
    expect(copied[0]).toBe('package.json package-lock.json');
  });

  it('runs on slim Node 20 with only libbpf1 and iproute2 added', () => {
    expect(runtime!.from).toBe('node:20-bookworm-slim');
    expect(aptPackages(runtime!).sort()).toEqual(['iproute2', 'libbpf1']);
    expect(runs(runtime!)).toMatch(/rm -rf \/var\/lib\/apt\/lists/);
  });

  it('copies from the build stage what the agent reads at run time, each of it present in the tree', () => {
    const fromBuild = copies(runtime!).filter((c) => c[0] === '--from=build').map((c) => c[1]!.replace(/^\/src\//, ''));
    expect(fromBuild.sort()).toEqual(['bin', 'build/bpf', 'build/envoy-module', 'build/native', 'dist', 'envoy-filters', 'node_modules', 'package.json', 'proto'].sort());
    for (const path of fromBuild.filter((p) => !['dist', 'build/bpf', 'build/native', 'build/envoy-module', 'node_modules'].includes(p))) expect(existsSync(fromRoot(path)), path).toBe(true);
    // What the build makes lands where the code looks: dist/src/cli/main.js (bin/wansteer.js), build/bpf/steer.bpf.o (datapath/loader.ts),
    // build/native/bound_update.node (native/bound-update.ts, from dist/native/).
    expect(readFileSync(fromRoot('bin/wansteer.js'), 'utf8')).toContain('../dist/src/cli/main.js');
    expect(readFileSync(fromRoot('src/datapath/loader.ts'), 'utf8')).toContain('../../../build/bpf/steer.bpf.o');
    expect(readFileSync(fromRoot('native/bound-update.ts'), 'utf8')).toContain('../../build/native/bound_update.node');
    expect(readFileSync(fromRoot('native/addon/Makefile'), 'utf8')).toMatch(/^OUT\s*:= \.\.\/\.\.\/build\/native$/m);
    // build/envoy-module/libwansteer.so, which the DaemonSet's init container copies to the node.
    expect(readFileSync(fromRoot('envoy-filters/native/Makefile'), 'utf8')).toMatch(/^OUT\s*:= \.\.\/\.\.\/build\/envoy-module$/m);
    expect(readFileSync(fromRoot('deploy/base/daemonset.yaml'), 'utf8')).toContain('/opt/wansteer/build/envoy-module/libwansteer.so');
    expect(copies(runtime!).every((c) => c[0] === '--from=build'), 'nothing from the host tree in the runtime stage').toBe(true);
  });

  it('starts the agent with the config the DaemonSet mounts, by executing the script so that its node flags apply', () => {
    const workdir = runtime!.instructions.find((i) => i.op === 'WORKDIR')?.args;
    expect(execForm(runtime!, 'ENTRYPOINT')).toEqual([`${workdir}/bin/wansteer.js`, 'agent']);
    // Executed, not given to `node`: the #! line's V8 flags (bin/wansteer.js says why) are the
    // ones bench/agent.ts and bench/abuse.ts measured the agent with.
    const shebang = readFileSync(fromRoot('bin/wansteer.js'), 'utf8').split('\n', 1)[0]!;
    expect(shebang).toMatch(/^#!\/usr\/bin\/env -S node (.* )?--max-semi-space-size=4( |$)/);
    expect(shebang).toMatch(/ --initial-old-space-size=\d+( |$)/);
    expect(execForm(runtime!, 'CMD')).toEqual(['--config', '/etc/wansteer/config.yaml']);
    expect(runtime!.instructions.some((i) => i.op === 'USER')).toBe(false); // uid 0, capabilities set by the DaemonSet
  });

  it('is sent a context without the host\'s builds and packages', () => {
    const ignored = readFileSync(fromRoot('.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const p of ['node_modules', 'dist', 'build', '.git']) expect(ignored).toContain(p);
    expect(ignored).not.toContain('bpf');
  });
});
