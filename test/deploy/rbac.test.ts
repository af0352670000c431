// Proves the RBAC in deploy/ grants exactly the Kubernetes API calls the agent makes: the real
// agent (cluster mode, the deployed config, dry-run datapath) runs against fake API servers behind
// a recording proxy, its REST API creates, replaces and deletes a policy, and every request seen
// (method + path) becomes (group, resource, verb, scope); that set must equal what the roles bound
// to the agent's ServiceAccount grant, with nothing missing and nothing extra.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startAgent } from '../../src/cli/agent.js';
import { resolveConfig } from '../../src/config/load.js';
import { FakeApiServer, virtualService } from '../k8s/fake-apiserver.js';
import { portOf, RecordingProxy, type Recorded } from '../helpers/recording-proxy.js';
import { FakeWanPolicyApi } from '../policies/helpers/fake-wanpolicy-api.js';
import { DEPLOY_DIR, environment, kustomizeBuild, type EnvContainer, type Json, type KubeObject } from './helpers/manifests.js';

const TOKEN = 'deploy-rbac-token';

/** One authorisation the API server checks for a request, as RBAC sees it. */
interface Access {
  readonly group: string;
  readonly resource: string;
  readonly verb: string;
  /** `cluster` (all namespaces, or a cluster-scoped object) or `namespace:NAME`. */
  readonly scope: string;
}

const key = (a: Access): string => `${a.group || 'core'}/${a.resource} ${a.verb} @${a.scope}`;

/** The request's resource attributes, the way the API server's request-info resolver derives them. */
export function accessOf(r: Recorded): Access {
  const m =
    /^\/apis\/(?<group>[^/]+)\/[^/]+(?:\/namespaces\/(?<ns>[^/]+))?\/(?<resource>[^/]+)(?:\/(?<name>[^/]+))?(?:\/(?<sub>[^/]+))?$/.exec(r.path) ??
    /^\/api\/v1(?:\/namespaces\/(?<ns>[^/]+))?\/(?<resource>[^/]+)(?:\/(?<name>[^/]+))?(?:\/(?<sub>[^/]+))?$/.exec(r.path);
  if (!m?.groups) return { group: '(non-resource)', resource: r.path, verb: r.method.toLowerCase(), scope: 'cluster' };
  const { group = '', ns, resource, name, sub } = m.groups;
  const verb = ((): string => {
    switch (r.method) {
      case 'GET': return name ? 'get' : r.watch ? 'watch' : 'list';
      case 'POST': return 'create';
      case 'PUT': return 'update';
      case 'PATCH': return 'patch';
      case 'DELETE': return name ? 'delete' : 'deletecollection';
      default: return r.method.toLowerCase();
    }
  })();
  return { group, resource: sub ? `${resource}/${sub}` : resource!, verb, scope: ns ? `namespace:${ns}` : 'cluster' };
}

/** What the roles bound to the ServiceAccount grant, one Access per group × resource × verb × scope. */
export function grantsOf(objects: KubeObject[], account: { name: string; namespace: string }): Access[] {
  const grants: Access[] = [];
  const bindings = objects.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding');
  for (const b of bindings) {
    const subjects = (b.subjects ?? []) as { kind: string; name: string; namespace?: string }[];
    if (!subjects.some((s) => s.kind === 'ServiceAccount' && s.name === account.name && s.namespace === account.namespace)) continue;
    const ref = b.roleRef as { kind: string; name: string };
    const role = objects.find((o) => o.kind === ref.kind && o.metadata.name === ref.name && (ref.kind === 'ClusterRole' || o.metadata.namespace === b.metadata.namespace));
    if (!role) throw new Error(`${b.metadata.name} refers to ${ref.kind} ${ref.name}, not in the build`);
    const scope = b.kind === 'ClusterRoleBinding' ? 'cluster' : `namespace:${b.metadata.namespace}`;
    for (const rule of (role.rules ?? []) as { apiGroups?: string[]; resources?: string[]; verbs: string[]; resourceNames?: string[]; nonResourceURLs?: string[] }[]) {
      if (rule.nonResourceURLs || rule.resourceNames) throw new Error(`${role.metadata.name}: nonResourceURLs/resourceNames are not expected`);
      for (const group of rule.apiGroups ?? []) for (const resource of rule.resources ?? []) for (const verb of rule.verbs) grants.push({ group, resource, verb, scope });
    }
  }
  return grants;
}

/** The accesses the requests need, a namespaced one dropped where the same access cluster-wide is needed anyway. */
function needed(requests: readonly Recorded[]): string[] {
  const all = requests.map(accessOf);
  const cluster = new Set(all.filter((a) => a.scope === 'cluster').map(key));
  return [...new Set(all.filter((a) => a.scope === 'cluster' || !cluster.has(key({ ...a, scope: 'cluster' }))).map(key))].sort();
}

/**
 * A recording reverse proxy in front of the two fakes: every request the agent's client sends
 * passes here. A path neither fake serves is answered 404 and still recorded.
 */
describe('RBAC in deploy/overlays/edge', () => {
  const objects = kustomizeBuild(join(DEPLOY_DIR, 'overlays/edge'));
  const ds = objects.find((o) => o.kind === 'DaemonSet')!;
  const podSpec = ((ds.spec as Json).template as Json).spec as { serviceAccountName: string; containers: EnvContainer[] };
  const account = { name: podSpec.serviceAccountName, namespace: ds.metadata.namespace! };
  let dir: string;
  let vsApi: FakeApiServer;
  let wpApi: FakeWanPolicyApi;
  let wpPort: number;
  let proxy: RecordingProxy;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wansteer-rbac-'));
    wpApi = new FakeWanPolicyApi();
    await wpApi.start();
    wpPort = portOf(wpApi.kubeConfig().getCurrentCluster()!.server);
    proxy = new RecordingProxy(() => [
      { prefix: '/apis/networking.istio.io/', port: portOf(vsApi.url) },
      { prefix: '/apis/wansteer.io/', port: wpPort },
    ]);
    await proxy.start();
    proxy.useAsKubeconfig(dir);
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
  });

  afterAll(async () => {
    await proxy?.close();
    await wpApi?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The deployed config and environment, with only what a test machine needs changed. */
  function agentConfig() {
    const cm = objects.find((o) => o.kind === 'ConfigMap')!;
    const document = parse((cm.data as Record<string, string>)['config.yaml']!) as Json;
    document.stateDir = join(dir, 'state');
    const env = environment(podSpec.containers[0]!, { 'spec.nodeName': 'edge-1', 'status.podIP': '127.0.0.1' });
    const config = resolveConfig(document, { env, argv: ['--dry-run', '--token-file', join(dir, 'token')] });
    // Any free port (the config refuses port 0; the server takes it).
    return { ...config, listen: { ...config.listen, http: '127.0.0.1:0' } };
  }

  /** Runs the agent against the fakes, lets `exercise` use it, stops it; returns the requests it made. */
  async function runAgent(servedVersions: string[], exercise: (url: string) => Promise<void>): Promise<Recorded[]> {
    vsApi = new FakeApiServer({ servedVersions });
    await vsApi.start();
    vsApi.upsert(virtualService('default', 'app', 'jason', `networking.istio.io/${servedVersions[0]}`));
    proxy.requests.length = 0;
    const agent = await startAgent(agentConfig(), pino({ level: 'silent' }), { handleSignals: false });
    try {
      await agent.synced;
      await exercise(agent.httpUrl);
      // Both informers have listed and are watching: the steady state's calls are all in.
      const deadline = Date.now() + 10_000;
      const watching = (prefix: string) => proxy.requests.some((r) => r.watch && r.path.startsWith(prefix));
      while (!(watching('/apis/networking.istio.io/') && watching('/apis/wansteer.io/')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    } finally {
      await agent.stop();
      await vsApi.close();
    }
    if (process.env.SHOW_API_CALLS) console.log(proxy.requests.map((r) => `${r.method} ${r.path}${r.watch ? '?watch' : ''}`).join('\n'));
    return [...proxy.requests];
  }

  const rest = async (url: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, etag: res.headers.get('etag') ?? '', text: await res.text() };
  };

  it('grants exactly what the agent calls: VirtualServices list/watch cluster-wide, WanPolicies list/watch/create/update/delete and Events create in its namespace', async () => {
    const spec = (link: string) => ({ match: { route: { virtualService: 'default/app', route: 'special' } }, action: { links: [link], mode: 'redirect' } });
    // An object the agent leaves out (mode redirect without links, as kubectl on a cluster
    // without CEL could store it): it records an Event on it.
    wpApi.put('wansteer-system', 'refused-one', { match: { dscp: 3 }, action: { links: [], mode: 'redirect' } });
    const requests = await runAgent(['v1', 'v1beta1', 'v1alpha3'], async (url) => {
      const deadline = Date.now() + 10_000;
      while (!proxy.requests.some((r) => r.path.startsWith('/apis/events.k8s.io/')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const created = await rest(url, 'POST', '/v1/policies', { name: 'jason-to-lte', spec: spec('wan1') });
      expect(created.status, created.text).toBe(201);
      const replaced = await rest(url, 'PUT', '/v1/policies/jason-to-lte', { spec: spec('wan0') }, { 'if-match': created.etag });
      expect(replaced.status, replaced.text).toBe(200);
      const deleted = await rest(url, 'DELETE', '/v1/policies/jason-to-lte', undefined, { 'if-match': replaced.etag });
      expect(deleted.status, deleted.text).toBe(204);
    });
    const granted = [...new Set(grantsOf(objects, account).map(key))].sort();
    expect(needed(requests)).toEqual(granted);
    expect(granted).toEqual([
      'events.k8s.io/events create @namespace:wansteer-system',
      'networking.istio.io/virtualservices list @cluster',
      'networking.istio.io/virtualservices watch @cluster',
      'wansteer.io/wanpolicies create @namespace:wansteer-system',
      'wansteer.io/wanpolicies delete @namespace:wansteer-system',
      'wansteer.io/wanpolicies list @namespace:wansteer-system',
      'wansteer.io/wanpolicies update @namespace:wansteer-system',
      'wansteer.io/wanpolicies watch @namespace:wansteer-system',
    ]);
  });

  it('needs nothing more on an older Istio, where VirtualServices are found at v1alpha3 after two 404s', async () => {
    const requests = await runAgent(['v1alpha3'], async () => undefined);
    const vsLists = requests.filter((r) => r.path.includes('/virtualservices') && !r.watch).map((r) => r.path);
    expect(vsLists.slice(0, 3)).toEqual(['/apis/networking.istio.io/v1/virtualservices', '/apis/networking.istio.io/v1beta1/virtualservices', '/apis/networking.istio.io/v1alpha3/virtualservices']);
    const granted = new Set(grantsOf(objects, account).map(key));
    for (const n of needed(requests)) expect(granted.has(n), n).toBe(true);
  });

  it('maps requests to RBAC attributes as the API server does', () => {
    expect(accessOf({ method: 'GET', path: '/apis/wansteer.io/v1alpha1/namespaces/x/wanpolicies/p', watch: false })).toEqual({ group: 'wansteer.io', resource: 'wanpolicies', verb: 'get', scope: 'namespace:x' });
    expect(accessOf({ method: 'PATCH', path: '/apis/wansteer.io/v1alpha1/namespaces/x/wanpolicies/p/status', watch: false }).resource).toBe('wanpolicies/status');
    expect(accessOf({ method: 'GET', path: '/api/v1/nodes/n1', watch: false })).toEqual({ group: '', resource: 'nodes', verb: 'get', scope: 'cluster' });
    expect(accessOf({ method: 'GET', path: '/apis', watch: false }).group).toBe('(non-resource)');
  });
});
