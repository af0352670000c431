/**
 * `wansteer render envoyfilter`: the Istio objects that put wansteer into the mesh, rendered from
 * the route rules and the policy file. Pure rendering lives in render/; this file reads the
 * inputs, checks the options and writes the YAML. Exit codes: 0 written, 2 bad input.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import type { WanPolicySpec } from '../policies/model.js';
import { parsePolicyFile } from '../policies/policy-file.js';
import { DirectoryRuleSource } from '../routes/directory-source.js';
import { RuleSet } from '../routes/rule-set.js';
import type { VirtualService } from '../routes/model.js';
import { canonicalIp } from '../steering/intake.js';
import { UsageError, type CliIo } from './explain.js';
import {
  DEFAULT_AGENT_HOST, DEFAULT_AGENT_PORT, DEFAULT_SELECTOR, envoyFilterObjects, REPORTERS, type AgentHosts, type KubeObject, type Reporter, type Scope,
} from './render/envoy-filter.js';
import { classFields, headerAllowList } from './render/header-allow-list.js';
import { filterSource, PLACEMENTS, readFilterFiles, type Placement } from './render/lua-source.js';
import { parseMarkClass, resolveMarkClasses, type MarkClass } from './render/mark-classes.js';
import { manifestYaml } from './render/yaml.js';

export const EXIT_RENDERED = 0;
export const EXIT_BAD_INPUT = 2;
export const DEFAULT_TIMEOUT_MS = 200;
export const DEFAULT_NAMESPACE = 'istio-system';

export const renderHelp = `Usage: wansteer render envoyfilter --rules DIR [options]

Writes the Istio objects that connect Envoy to the wansteer agent (docs/envoy.md):
the Lua filter that reports sessions (session mode), the cluster it reports through,
and for mark mode the IP_TOS socket option on each class's upstream cluster.

Inputs:
  --rules DIR              VirtualService YAML files (the header allow-list comes from them)
  --policies FILE          the policy file (WanPolicyList); needed for --mark-class
  --mark-class P=HOST[:PORT]/SUBSET
                           mark mode: policy P (match: {dscp: N}) is the traffic Istio routes
                           to this DestinationRule subset; its upstream sockets get DSCP N
                           (repeatable; HOST is the service's full name)

Placement and scope:
  --context C              sidecar-inbound (default, Clovisor's), sidecar-outbound or gateway
  --namespace NS           namespace of the EnvoyFilters (default ${DEFAULT_NAMESPACE}, Istio's root
                           namespace: the selector then picks workloads in every namespace)
  --selector K=V[,K=V]     pod labels of the workloads that report (default ${selectorText(DEFAULT_SELECTOR)})
  --all-workloads          no selector: every workload the namespace reaches reports

Agent:
  --agent-port N           the agent's session intake port (default ${DEFAULT_AGENT_PORT})
  --agent-host HOST        where Envoy reaches the agent, when not the node-local Service
                           ${DEFAULT_AGENT_HOST} (rendered too): a DNS name, or an
                           IP for hosts without Kubernetes (repeatable: one IPv4 and one IPv6)
  --timeout-ms N           the report call's timeout (default ${DEFAULT_TIMEOUT_MS})
  --reporter R             lua (default): the Lua filter; native: the wansteer Envoy dynamic
                           module (libwansteer.so in ENVOY_DYNAMIC_MODULES_SEARCH_PATH), which
                           costs Envoy far less per request and sends reports in batches
  --native-http-only       with --reporter native: leave out the module's network filter, which
                           hands the HTTP filter each connection's own remote address (for a
                           proxy without envoy.filters.network.dynamic_modules; a request whose
                           X-Forwarded-For Envoy took is then not reported)

Output:
  --out FILE               write here instead of stdout
  -h, --help               this text

Exit status: 0 rendered, 2 bad input.
`;

const OPTIONS = {
  rules: { type: 'string' },
  policies: { type: 'string' },
  'mark-class': { type: 'string', multiple: true },
  context: { type: 'string' },
  namespace: { type: 'string' },
  selector: { type: 'string' },
  'all-workloads': { type: 'boolean' },
  'agent-port': { type: 'string' },
  'agent-host': { type: 'string', multiple: true },
  'timeout-ms': { type: 'string' },
  reporter: { type: 'string' },
  'native-http-only': { type: 'boolean' },
  out: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; strict: true; allowPositionals: true }>>['values'];

export async function runRender(argv: readonly string[], io: CliIo): Promise<number> {
  let values: Values;
  let target: string | undefined;
  try {
    const parsed = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true });
    values = parsed.values;
    if (values.help) {
      io.stdout(renderHelp);
      return EXIT_RENDERED;
    }
    [target] = parsed.positionals;
    if (target !== 'envoyfilter' || parsed.positionals.length > 1) throw new UsageError('the one thing to render is envoyfilter: wansteer render envoyfilter --rules DIR');
    const text = await renderEnvoyFilter(values, (warning) => io.stderr(`warning: ${warning}\n`));
    if (values.out) await writeFile(values.out, text);
    else io.stdout(text);
    return EXIT_RENDERED;
  } catch (err) {
    io.stderr(`wansteer render: ${(err as Error).message}\n(see wansteer render --help)\n`);
    return EXIT_BAD_INPUT;
  }
}

async function renderEnvoyFilter(values: Values, warn: (warning: string) => void): Promise<string> {
  if (!values.rules) throw new UsageError('--rules DIR is required');
  const placement = placementFrom(values.context ?? 'sidecar-inbound');
  const scope = scopeFrom(values);
  const agentPort = integer(values['agent-port'], '--agent-port', DEFAULT_AGENT_PORT, 1, 65535);
  const timeoutMs = integer(values['timeout-ms'], '--timeout-ms', DEFAULT_TIMEOUT_MS, 1, 10_000);
  const agentHosts = agentHostsFrom(values['agent-host'] ?? []);
  const reporter = reporterFrom(values.reporter ?? 'lua');
  if (values['native-http-only'] && reporter !== 'native') throw new UsageError('--native-http-only needs --reporter native');
  const specs = (values['mark-class'] ?? []).map(parseMarkClass);
  if (specs.length > 0 && !values.policies) throw new UsageError('--mark-class needs --policies FILE to find the class policies');

  const virtualServices = await loadRules(values.rules, warn);
  const policies = values.policies ? await loadPolicies(values.policies) : [];
  for (const p of policies) {
    if ('route' in p.spec.match && !virtualServices.some((vs) => `${vs.namespace}/${vs.name}` === (p.spec.match as { route: { virtualService: string } }).route.virtualService)) {
      warn(`policy ${p.name}: VirtualService ${p.spec.match.route.virtualService} is not in ${values.rules}`);
    }
  }
  const marks = resolveMarkClasses(specs, policies, virtualServices);
  marks.warnings.forEach(warn);

  const files = await readFilterFiles();
  const headers = headerAllowList(virtualServices);
  const objects = envoyFilterObjects({
    placement,
    scope,
    ...(agentHosts !== undefined ? { agentHosts } : {}),
    agentPort,
    timeoutMs,
    headers,
    classFields: classFields(virtualServices, placement),
    markClasses: marks.classes,
    luaSource: (config) => filterSource(files, config),
    reporter,
    nativeDirectRemote: values['native-http-only'] !== true,
  });
  return manifestYaml(objects, headerComment(placement, scope, headers, marks.classes, objects, reporter));
}

/** What the gateway's own Service needs for its sessions to be steered (docs/overlay.md). */
const GATEWAY_SERVICE_NOTE = [
  'Gateway Service: on an edge of several nodes give it externalTrafficPolicy: Local (and a gateway pod on each node',
  'that receives traffic): with Cluster, kube-proxy may hand a connection to a gateway pod on another node, whose agent',
  'gets the report while the replies leave by the WAN link of the node the connection arrived at (docs/overlay.md).',
];

function headerComment(placement: Placement, scope: Scope, headers: readonly string[], classes: readonly MarkClass[], objects: readonly KubeObject[], reporter: Reporter): string[] {
  return [
    'Rendered by `wansteer render envoyfilter`; do not edit, render again (docs/envoy.md).',
    `Placement: ${placement}. Workloads: ${scope.selector ? `labelled ${selectorText(scope.selector)}` : 'all'} (EnvoyFilters in ${scope.namespace}).`,
    // (Said only for the native one: the Lua filter is the default, and deploy/ holds its renders.)
    ...(reporter === 'native' ? ['Session reporter: the wansteer Envoy dynamic module (libwansteer.so must be in the proxy, on ENVOY_DYNAMIC_MODULES_SEARCH_PATH).'] : []),
    `Reported request headers: ${headers.length > 0 ? headers.join(', ') : '(none)'}.`,
    `Mark classes: ${classes.length > 0 ? classes.map((c) => `${c.policy} = ${c.host}${c.port ? `:${c.port}` : ''}/${c.subset} (DSCP ${c.dscp})`).join('; ') : '(none)'}.`,
    `Objects: ${objects.map((o) => `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`).join(', ')}.`,
    ...(placement === 'gateway' ? GATEWAY_SERVICE_NOTE : []),
  ];
}

function scopeFrom(values: Values): Scope {
  const namespace = values.namespace ?? DEFAULT_NAMESPACE;
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace)) throw new UsageError(`--namespace ${JSON.stringify(namespace)} is not a namespace name`);
  if (values['all-workloads']) {
    if (values.selector !== undefined) throw new UsageError('--selector and --all-workloads exclude each other');
    return { namespace };
  }
  return { namespace, selector: values.selector === undefined ? DEFAULT_SELECTOR : parseSelector(values.selector) };
}

/** Kubernetes label syntax: an optional DNS-subdomain prefix, a name of at most 63 characters. */
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

function parseSelector(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of text.split(',')) {
    const at = pair.indexOf('=');
    const [key, value] = at < 0 ? [pair, undefined] : [pair.slice(0, at), pair.slice(at + 1)];
    if (value === undefined || !LABEL_KEY.test(key) || !LABEL_VALUE.test(value) || key in labels) {
      throw new UsageError(`--selector wants KEY=VALUE[,KEY=VALUE] with Kubernetes label names and values, got ${JSON.stringify(text)}`);
    }
    labels[key] = value;
  }
  return labels;
}

function selectorText(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
}

/** --agent-host, given 0-2 times: one DNS name, or an IPv4 and/or an IPv6 literal. */
function agentHostsFrom(hosts: readonly string[]): AgentHosts | undefined {
  if (hosts.length === 0) return undefined;
  let v4: string | undefined;
  let v6: string | undefined;
  const names: string[] = [];
  for (const host of hosts) {
    const literal = canonicalIp(host.replace(/^\[(.*)\]$/, '$1'));
    if (literal?.family === 4 && v4 === undefined) v4 = literal.ip;
    else if (literal?.family === 6 && v6 === undefined) v6 = literal.ip;
    else if (literal === null && /^[A-Za-z0-9]([-.A-Za-z0-9]*[A-Za-z0-9])?$/.test(host) && !/^[\d.]+$/.test(host)) names.push(host);
    else if (literal === null) throw new UsageError(`--agent-host ${JSON.stringify(host)} is not a host name or IP address`);
    else throw new UsageError(`--agent-host: one address of each family at most, got ${hosts.join(', ')}`);
  }
  if (names.length > 1 || (names.length === 1 && hosts.length > 1)) {
    throw new UsageError(`--agent-host: one DNS name (reached over both families), or IP addresses; got ${hosts.join(', ')}`);
  }
  return names.length === 1 ? { name: names[0]! } : { ...(v4 !== undefined ? { v4 } : {}), ...(v6 !== undefined ? { v6 } : {}) };
}

function placementFrom(text: string): Placement {
  if ((PLACEMENTS as readonly string[]).includes(text)) return text as Placement;
  throw new UsageError(`--context must be one of ${PLACEMENTS.join(', ')}, got ${JSON.stringify(text)}`);
}

function reporterFrom(text: string): Reporter {
  if ((REPORTERS as readonly string[]).includes(text)) return text as Reporter;
  throw new UsageError(`--reporter must be one of ${REPORTERS.join(', ')}, got ${JSON.stringify(text)}`);
}

function integer(text: string | undefined, flag: string, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw new UsageError(`${flag} must be ${min}-${max}, got ${text}`);
  return n;
}

async function loadRules(directory: string, warn: (warning: string) => void): Promise<VirtualService[]> {
  const ruleSet = new RuleSet();
  const report = await new DirectoryRuleSource({ directory, ruleSet }).load();
  if (report.files === 0 && report.brokenFiles.length > 0) throw new Error(report.brokenFiles[0]!.message);
  for (const p of [...report.brokenFiles, ...report.invalidObjects]) warn(`${p.code}: ${p.message}`);
  return ruleSet.virtualServices().sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
}

/**
 * The standalone policy file (policies/policy-file.ts). Links are not checked against a node's
 * configuration here: rendering happens away from any node, so the links the file names are
 * taken as known.
 */
async function loadPolicies(path: string): Promise<{ name: string; spec: WanPolicySpec }[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read --policies ${path}: ${(err as Error).message}`);
  }
  const links = new Set<string>();
  try {
    const raw = parse(text) as { items?: { spec?: { action?: { links?: unknown } } }[] } | null;
    for (const item of Array.isArray(raw?.items) ? raw.items : []) {
      const list = item?.spec?.action?.links;
      if (Array.isArray(list)) for (const link of list) if (typeof link === 'string') links.add(link);
    }
  } catch {
    // parsePolicyFile reports the syntax error with its position.
  }
  return parsePolicyFile(text, path, links).items.map(({ name, spec }) => ({ name, spec }));
}
