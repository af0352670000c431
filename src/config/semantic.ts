/**
 * Checks the schema cannot express: links are told apart by name and by interface, the default
 * link is one of them, next hops are addresses of the right family. Runs on a config the schema
 * already accepted.
 */
import { isIP } from 'node:net';
import type { ConfigProblem } from './errors.js';
import type { AgentConfig, ProbeConfig } from './schema.js';

const REFLECTOR_FIX = 'give the IPv4 or IPv6 address of a host running `wansteer reflector` (TWAMP-light, UDP `probe.port`, 862 by default) reached over this link';

/** A probe names its reflectors by `target` or by `targets`, never both, and each is an address. */
function probeTargetProblems(probe: ProbeConfig, at: string): ConfigProblem[] {
  if (probe.target !== undefined && probe.targets !== undefined) {
    return [{ field: `${at}.targets`, problem: 'is given together with target', fix: 'list every reflector in targets and leave target out' }];
  }
  if (probe.target === undefined && probe.targets === undefined) {
    return [{ field: `${at}.target`, problem: 'is missing', fix: `${REFLECTOR_FIX}, or list up to four in targets` }];
  }
  const named = probe.targets ? probe.targets.map((t, i) => [`${at}.targets[${i}]`, t] as const) : [[`${at}.target`, probe.target!] as const];
  return named.filter(([, t]) => isIP(t) === 0).map(([field, t]) => ({ field, problem: `"${t}" is not an IP address`, fix: REFLECTOR_FIX }));
}

export function semanticProblems(config: AgentConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const names = new Map<string, number>();
  const interfaces = new Map<string, number>();
  config.links.forEach((link, i) => {
    const at = `links[${i}]`;
    const sameName = names.get(link.name);
    if (sameName !== undefined) {
      problems.push({ field: `${at}.name`, problem: `"${link.name}" is already the name of links[${sameName}]`, fix: 'give each link its own name' });
    } else names.set(link.name, i);
    const sameInterface = interfaces.get(link.interface);
    if (sameInterface !== undefined) {
      problems.push({
        field: `${at}.interface`,
        problem: `"${link.interface}" is already the interface of links[${sameInterface}]`,
        fix: 'list each WAN interface once (one link per interface)',
      });
    } else interfaces.set(link.interface, i);
    if (link.nextHop4 !== undefined && isIP(link.nextHop4) !== 4) {
      problems.push({ field: `${at}.nextHop4`, problem: `"${link.nextHop4}" is not an IPv4 address`, fix: 'give the IPv4 address of the next-hop router on this link, e.g. 192.0.2.1, or leave nextHop4 out' });
    }
    if (link.nextHop6 !== undefined && isIP(link.nextHop6) !== 6) {
      problems.push({ field: `${at}.nextHop6`, problem: `"${link.nextHop6}" is not an IPv6 address`, fix: 'give the IPv6 address of the next-hop router on this link, e.g. fe80::1 or 2001:db8::1, or leave nextHop6 out' });
    }
    if (link.probe) problems.push(...probeTargetProblems(link.probe, `${at}.probe`));
  });
  if (!names.has(config.defaultLink)) {
    problems.push({
      field: 'defaultLink',
      problem: `"${config.defaultLink}" is not the name of a link`,
      fix: `use one of the names in links: ${[...names.keys()].join(', ')}`,
    });
  }
  config.intake.allowedProxies.forEach((address, i) => {
    if (isIP(address) === 0) {
      problems.push({ field: `intake.allowedProxies[${i}]`, problem: `"${address}" is not an IP address`, fix: 'list the IPv4 or IPv6 addresses of node-level proxies (gateways)' });
    }
  });
  for (const key of ['http', 'grpc'] as const) {
    const address = config.listen[key];
    const port = address === undefined ? undefined : Number(address.slice(address.lastIndexOf(':') + 1));
    if (port !== undefined && (port < 1 || port > 65535)) {
      problems.push({ field: `listen.${key}`, problem: `port ${port} is out of range`, fix: 'use a port from 1 to 65535, e.g. 0.0.0.0:9440' });
    }
  }
  return problems;
}
