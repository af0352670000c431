/**
 * `wansteer cleanup`: remove what the agent installed in the kernel, for when wansteer leaves a
 * node. A stopped agent leaves its datapath in force on purpose — steering goes on while it is
 * away and the next agent adopts it — so an uninstall must say so explicitly.
 */
import { ConfigError } from '../config/errors.js';
import { loadConfig } from '../config/load.js';
import { internetLayout, uninstallDatapath } from '../datapath/index.js';
import { clearProbeRoutes } from '../links/probe-route.js';
import type { CliIo } from './explain.js';

export const cleanupHelp = `Usage: wansteer cleanup [--config FILE] [--pin-dir DIR]

Removes what the agent installed, as its config describes it: the steering program on each
link's interface, the pinned maps and programs, the probe rules, and for internet links their
routing tables, policy rules and the nftables table \`inet wansteer\`. Run it after the agent
has stopped for good (an agent restart needs none of this: the next agent adopts it all).
Node-local state (stateDir: policy ids, the cluster snapshot) is left alone.
`;

export async function runCleanup(argv: readonly string[], io: CliIo): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout(cleanupHelp);
    return 0;
  }
  let config;
  try {
    config = await loadConfig({ argv, env: process.env });
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr(`wansteer cleanup: ${err.message}\n`);
      return ConfigError.exitCode;
    }
    throw err;
  }
  const report = uninstallDatapath({ pinDir: config.datapath.pinDir, interfaces: config.links.map((l) => l.interface), internet: internetLayout(config.links, config.internet) });
  await Promise.all(config.links.map((l, id) => (l.probe ? clearProbeRoutes(id) : Promise.resolve())));
  io.stdout(
    `wansteer cleanup: steering program removed from ${report.detached.length ? report.detached.join(', ') : 'no interface (none attached)'}; ` +
      `pins under ${report.pinDir} removed; ` +
      `${report.internetLinks ? `routing tables, rules and nftables table of ${report.internetLinks} internet link(s) removed` : 'no internet links'}\n`,
  );
  return 0;
}
