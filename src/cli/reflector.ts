/**
 * `wansteer reflector --listen HOST:PORT`: the far end of the link probes, a TWAMP-light
 * reflector (src/links/reflector.ts). Run it on a host the edge reaches over every WAN link
 * and point each link's `probe.target` at it. Stops on SIGINT/SIGTERM.
 */
import { startReflector } from '../links/reflector.js';
import { TWAMP_PORT } from '../links/twamp.js';
import type { CliIo } from './explain.js';

export const reflectorHelp = `Usage: wansteer reflector [--listen HOST:PORT]

Answers the agent's link probes (TWAMP-light, RFC 5357 Appendix I; also any standard sender).
  --listen HOST:PORT   address to answer on (default 0.0.0.0:${TWAMP_PORT}; [::]:${TWAMP_PORT} for IPv6)
`;

export function parseListen(text: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1] ?? m[2]!, port };
}

export async function runReflector(argv: readonly string[], io: CliIo, signal?: AbortSignal): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout(reflectorHelp);
    return 0;
  }
  let listen = `0.0.0.0:${TWAMP_PORT}`;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--listen' && argv[i + 1] !== undefined) listen = argv[++i]!;
    else if (a.startsWith('--listen=')) listen = a.slice('--listen='.length);
    else {
      io.stderr(`wansteer reflector: unknown argument ${JSON.stringify(a)}\n\n${reflectorHelp}`);
      return 2;
    }
  }
  const at = parseListen(listen);
  if (!at) {
    io.stderr(`wansteer reflector: --listen wants HOST:PORT (or [v6]:PORT), got ${JSON.stringify(listen)}\n`);
    return 2;
  }
  let reflector;
  try {
    reflector = await startReflector(at.host, at.port);
  } catch (err) {
    io.stderr(`wansteer reflector: cannot listen on ${listen}: ${(err as Error).message}\n`);
    return 1;
  }
  io.stdout(`reflecting on ${reflector.address}:${reflector.port}\n`);
  await new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    signal?.addEventListener('abort', done, { once: true });
  });
  await reflector.close();
  return 0;
}
