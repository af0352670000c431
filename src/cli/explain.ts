/**
 * `wansteer explain`: which VirtualService and route a request would match, and why.
 * Reads rules from a directory (--rules) or lists them from the cluster (--cluster).
 * Exit codes: 0 match, 1 no match, 2 bad input.
 */
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { VirtualServiceInformer } from '../k8s/virtual-service-informer.js';
import { DirectoryRuleSource, type SourceProblem } from '../routes/directory-source.js';
import { explainRequest, type Explanation } from '../routes/explain.js';
import type { RouteRequest } from '../routes/model.js';
import { RuleSet } from '../routes/rule-set.js';
import { createError } from '../base/errors.js';

export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** For --cluster; defaults to the usual kubeconfig lookup (KUBECONFIG, ~/.kube/config, in-cluster). */
  readonly kubeConfig?: () => KubeConfig;
}

export const UsageError = createError('WS_CLI_USAGE', '%s');

export const EXIT_MATCH = 0;
export const EXIT_NO_MATCH = 1;
export const EXIT_BAD_INPUT = 2;

export const explainHelp = `Usage: wansteer explain (--rules DIR | --cluster) --host HOST [options]

Shows which VirtualService and HTTP route Istio would pick for a request, and why.

Rules:
  --rules DIR              read VirtualService YAML files from DIR
  --cluster                list VirtualServices from the Kubernetes API (kubeconfig or in-cluster)
  --namespace NS           with --cluster: only these namespaces (repeatable)
  --cluster-domain D       DNS suffix for short names (default cluster.local)

Request:
  --host HOST[:PORT]       authority (required)
  --port N                 destination port (default: from --host)
  --path PATH              :path, query string allowed (default /)
  --method M               (default GET)
  --scheme S               (default http)
  --header NAME=VALUE      request header (repeatable)
  --query NAME=VALUE       query parameter, appended to the path (repeatable)
  --source-namespace NS    client namespace (default default)
  --source-label K=V       client workload label (repeatable)
  --gateway NS/NAME        route as this gateway instead of a sidecar (default mesh)

Output:
  --json                   machine-readable output
  -h, --help               this text

Exit status: 0 a route matched, 1 no route matched, 2 bad input.
`;

const OPTIONS = {
  rules: { type: 'string' },
  cluster: { type: 'boolean' },
  namespace: { type: 'string', multiple: true },
  'cluster-domain': { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  path: { type: 'string' },
  method: { type: 'string' },
  scheme: { type: 'string' },
  header: { type: 'string', multiple: true },
  query: { type: 'string', multiple: true },
  'source-namespace': { type: 'string' },
  'source-label': { type: 'string', multiple: true },
  gateway: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; strict: true; allowPositionals: false }>>['values'];

export async function runExplain(argv: readonly string[], io: CliIo): Promise<number> {
  let values: Values;
  let request: RouteRequest;
  try {
    values = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }).values;
    if (values.help) {
      io.stdout(explainHelp);
      return EXIT_MATCH;
    }
    request = requestFrom(values);
    if (!values.rules === !values.cluster) throw new UsageError('give exactly one of --rules DIR or --cluster');
  } catch (err) {
    io.stderr(`wansteer explain: ${(err as Error).message}\n(see wansteer explain --help)\n`);
    return EXIT_BAD_INPUT;
  }

  const ruleSet = new RuleSet(values['cluster-domain'] ? { clusterDomain: values['cluster-domain'] } : {});
  const loaded = values.rules ? await loadDirectory(values.rules, ruleSet) : await loadCluster(values.namespace ?? [], ruleSet, io);
  if (loaded.fatal) {
    io.stderr(`wansteer explain: ${loaded.fatal}\n`);
    return EXIT_BAD_INPUT;
  }
  const explanation = explainRequest(ruleSet.table(), request);
  if (values.json) {
    io.stdout(`${JSON.stringify({ ...explanation, problems: loaded.problems }, null, 2)}\n`);
  } else {
    for (const p of loaded.problems) io.stderr(`warning: ${p.code}: ${p.message}\n`);
    io.stdout(renderText(explanation, request));
  }
  return explanation.result.matched ? EXIT_MATCH : EXIT_NO_MATCH;
}

interface Loaded {
  readonly problems: SourceProblem[];
  readonly fatal?: string;
}

async function loadDirectory(directory: string, ruleSet: RuleSet): Promise<Loaded> {
  const report = await new DirectoryRuleSource({ directory, ruleSet }).load();
  const problems = [...report.brokenFiles, ...report.invalidObjects];
  if (report.files === 0 && report.brokenFiles.length > 0) return { problems, fatal: report.brokenFiles[0]!.message };
  return { problems };
}

async function loadCluster(namespaces: string[], ruleSet: RuleSet, io: CliIo): Promise<Loaded> {
  let kubeConfig: KubeConfig;
  try {
    kubeConfig = io.kubeConfig ? io.kubeConfig() : defaultKubeConfig();
  } catch (err) {
    return { problems: [], fatal: `cannot load kubeconfig: ${(err as Error).message}` };
  }
  let lastError: string | undefined;
  const informer = VirtualServiceInformer.fromKubeConfig(kubeConfig, {
    ruleSet,
    namespaces,
    onError: (err) => (lastError = err.message),
    // One list is all explain needs; give up quickly rather than retry for ever.
    backoff: { initialMs: 200, maxMs: 1000 },
  });
  informer.start();
  const timeout = new Promise<'timeout'>((resolve) => setTimeout(resolve, 10_000, 'timeout').unref());
  const outcome = await Promise.race([informer.whenReady(), timeout]);
  await informer.stop();
  if (outcome === 'timeout') return { problems: [], fatal: `cannot list VirtualServices: ${lastError ?? 'timed out'}` };
  const problems = Object.entries(informer.status().invalidObjects).map(([code, n]) => ({
    file: 'cluster',
    code,
    message: `${n} VirtualService(s) skipped as invalid (see agent logs for reasons)`,
  }));
  return { problems };
}

function defaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

function requestFrom(values: Values): RouteRequest {
  if (!values.host) throw new UsageError('--host is required');
  let port: number | undefined;
  if (values.port !== undefined) {
    port = Number(values.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--port must be 1-65535, got ${values.port}`);
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of pairs(values.header, '--header')) {
    // Envoy joins repeated headers with ",".
    headers[name.toLowerCase()] = name.toLowerCase() in headers ? `${headers[name.toLowerCase()]},${value}` : value;
  }
  let path = values.path ?? '/';
  if (!path.startsWith('/')) throw new UsageError(`--path must start with "/", got ${JSON.stringify(path)}`);
  const query = pairs(values.query, '--query').map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  if (query.length > 0) path += (path.includes('?') ? '&' : '?') + query.join('&');
  return {
    host: values.host,
    ...(port !== undefined ? { port } : {}),
    path,
    method: (values.method ?? 'GET').toUpperCase(),
    scheme: values.scheme ?? 'http',
    headers,
    sourceNamespace: values['source-namespace'] ?? 'default',
    sourceLabels: Object.fromEntries(pairs(values['source-label'], '--source-label')),
    gateway: values.gateway ?? 'mesh',
  };
}

/** `name=value` (or `name: value` for headers, as curl writes them). */
function pairs(list: string[] | undefined, flag: string): [string, string][] {
  return (list ?? []).map((item) => {
    const m = /^([^=:\s]+)\s*[=:]\s?(.*)$/.exec(item);
    if (!m) throw new UsageError(`${flag} wants NAME=VALUE, got ${JSON.stringify(item)}`);
    return [m[1]!, m[2]!];
  });
}

function renderText(e: Explanation, request: RouteRequest): string {
  const lines: string[] = [];
  const port = e.request.port === undefined ? '' : ` port ${e.request.port}`;
  lines.push(`request  ${request.method} ${request.scheme}://${request.host}${request.path}${port} (gateway ${e.request.gateway}, from namespace ${request.sourceNamespace})`);
  lines.push(`host     read as ${e.request.readAs.join(' or ')}`);
  if (e.selectedDomain === undefined) {
    lines.push('         no VirtualService has this host');
  } else {
    for (const vs of e.virtualServices) {
      const note = vs.status === 'used' ? '' : ' (ignored: an older VirtualService owns this host)';
      lines.push(`         ${e.selectedDomain} → VirtualService ${vs.virtualService} (host ${JSON.stringify(vs.host)})${note}`);
    }
  }
  for (const route of e.routes) {
    const name = route.name ? JSON.stringify(route.name) : '(unnamed)';
    lines.push(`route    ${route.virtualService} http[${route.index}] ${name}: ${route.outcome === 'matched' ? 'MATCH' : 'no match'}`);
    if (route.blocks.length === 0) lines.push('           no match conditions: matches every request');
    for (const block of route.blocks) {
      lines.push(`           match[${block.index}]${block.name ? ` ${JSON.stringify(block.name)}` : ''}: ${block.matched ? 'holds' : 'fails'}`);
      for (const c of block.conditions) lines.push(`             ${c.held ? '✓' : '✗'} ${c.condition}`);
    }
  }
  const r = e.result;
  if (r.matched) {
    const name = r.routeName ? ` ${JSON.stringify(r.routeName)}` : '';
    lines.push(`result   MATCH ${r.virtualService.namespace}/${r.virtualService.name} http[${r.routeIndex}]${name} (${r.action})`);
    for (const d of r.destinations) {
      const subset = d.destination.subset ? ` subset ${d.destination.subset}` : '';
      const dport = d.destination.port ? `:${d.destination.port}` : '';
      lines.push(`         → ${d.destination.host}${dport}${subset} (${round(d.percent)}%)`);
    }
  } else {
    lines.push(`result   NO MATCH (${r.reason === 'no-virtual-service' ? 'no VirtualService for this host' : 'no route matched'})`);
  }
  return `${lines.join('\n')}\n`;
}

function round(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}
