/**
 * `wansteer <command>`: a table of commands, each a function from argv to an exit code.
 * To add one, add a row; nothing else here needs to change.
 */
import { pathToFileURL } from 'node:url';
import type { CliIo } from './explain.js';

export interface Command {
  readonly summary: string;
  readonly run: (argv: readonly string[], io: CliIo) => Promise<number>;
}

/**
 * Each command's module is loaded only when it runs: the agent should not carry the Kubernetes
 * client (tens of MB) in standalone mode because `explain --cluster` needs it.
 */
export const commands: Readonly<Record<string, Command>> = {
  agent: { summary: 'run the node agent (REST API, session intake, steering, metrics)', run: async (a, io) => (await import('./agent.js')).runAgent(a, io) },
  explain: { summary: 'show which VirtualService route a request matches, and why', run: async (a, io) => (await import('./explain.js')).runExplain(a, io) },
  render: { summary: 'render the EnvoyFilter manifests (Lua filter, mark-mode IP_TOS patches)', run: async (a, io) => (await import('./render.js')).runRender(a, io) },
  status: { summary: "show the running agent's readiness, sources, links and policies", run: async (a, io) => (await import('./status.js')).runStatus(a, io) },
  reflector: { summary: 'answer the link probes of agents (TWAMP-light reflector)', run: async (a, io) => (await import('./reflector.js')).runReflector(a, io) },
  cleanup: { summary: 'remove what the agent installed in the kernel (uninstall; a restart needs none of it)', run: async (a, io) => (await import('./cleanup.js')).runCleanup(a, io) },
  demo: { summary: 'a dual-WAN edge site in network namespaces, steered live (root)', run: async (a, io) => (await import('./demo.js')).runDemo(a, io) },
};

export function usage(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: wansteer <command> [options]\n\nCommands:\n${rows.join('\n')}\n\nRun 'wansteer <command> --help' for a command's options.\n`;
}

export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(usage());
    return name === undefined ? 2 : 0;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    io.stderr(`wansteer: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return 2;
  }
  return command.run(rest, io);
}

/**
 * Writes to one of the process's streams, dropping what nobody reads: a reader that goes away
 * (`wansteer status | head -4`) closes the pipe, and the next write fails with EPIPE — emitted
 * as an 'error' event that, unhandled, kills the process with a stack trace. The command
 * finishes instead and exits with its own code; the agent's logs (pino) already drop writes
 * to a closed pipe the same way.
 */
export function pipeWriter(stream: NodeJS.WritableStream): (text: string) => void {
  let closed = false;
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    closed = true;
  });
  return (text) => {
    if (!closed) stream.write(text);
  };
}

const processIo = (): CliIo => ({ stdout: pipeWriter(process.stdout), stderr: pipeWriter(process.stderr) });

// Run when executed directly (node dist/src/cli/main.js, tsx src/cli/main.ts, bin/wansteer.js).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2), processIo());
}

export async function runFromBin(): Promise<void> {
  process.exitCode = await main(process.argv.slice(2), processIo());
}
