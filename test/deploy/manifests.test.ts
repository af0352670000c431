// Proves every manifest under deploy/ parses and is valid for its kind (Kubernetes core, apps,
// RBAC and apiextensions schemas with unknown fields refused, Istio's EnvoyFilter, a minimal
// ServiceMonitor), that the base and edge overlay build (kubectl kustomize agrees, where it is
// installed), and that the built DaemonSet keeps the security model of docs/deploy.md.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { resolveConfig } from '../../src/config/load.js';
import {
  DEPLOY_DIR,
  deployYamlFiles,
  environment,
  hasSchema,
  idOf,
  isNamespaced,
  isObject,
  kustomizeBuild,
  loadDocuments,
  relativeToDeploy,
  schemaProblems,
  type EnvContainer,
  type Json,
  type KubeObject,
} from './helpers/manifests.js';

const BASE = join(DEPLOY_DIR, 'base');
const EDGE = join(DEPLOY_DIR, 'overlays/edge');
const NAMESPACE = 'wansteer-system';

/** Files named by a kustomization's patches: partial objects, checked for unknown fields only. */
const patchFiles = new Set(
  deployYamlFiles()
    .filter((f) => f.endsWith('/kustomization.yaml'))
    .flatMap((f) => (((loadDocuments(f)[0] as Json).patches ?? []) as { path: string }[]).map((p) => join(dirname(f), p.path))),
);

interface Container extends EnvContainer {
  name: string;
  ports?: { name?: string; containerPort: number }[];
  securityContext?: Json & { capabilities?: { add?: string[]; drop?: string[] } };
  volumeMounts?: { name: string; mountPath: string; mountPropagation?: string; readOnly?: boolean }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  livenessProbe?: Json;
  readinessProbe?: Json;
  startupProbe?: Json;
}

const find = (objects: KubeObject[], kind: string, name?: string): KubeObject[] => objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
const podSpecOf = (ds: KubeObject): Json => ((ds.spec as Json).template as Json).spec as Json;
const containerOf = (ds: KubeObject): Container => (podSpecOf(ds).containers as Container[])[0]!;

const BYTES: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };
const quantity = (q: string): number => {
  const m = /^([0-9.]+)(m|Ki|Mi|Gi)?$/.exec(q);
  if (!m) throw new Error(`not a quantity: ${q}`);
  return m[2] === 'm' ? Number(m[1]) / 1000 : Number(m[1]) * (m[2] ? BYTES[m[2]]! : 1);
};

describe('every YAML file under deploy/', () => {
  const files = deployYamlFiles();

  it('finds the base, the overlay, the CRD and the EnvoyFilters', () => {
    const names = files.map(relativeToDeploy);
    for (const f of ['deploy/base/kustomization.yaml', 'deploy/base/daemonset.yaml', 'deploy/overlays/edge/kustomization.yaml', 'deploy/crds/wanpolicy.yaml', 'deploy/envoyfilter/sidecar-inbound.yaml']) {
      expect(names).toContain(f);
    }
  });

  it.each(files.map((f) => [relativeToDeploy(f), f]))('%s parses and each object is valid for its kind', (_, file) => {
    const docs = loadDocuments(file);
    expect(docs.length).toBeGreaterThan(0);
    for (const doc of docs) {
      if (doc.kind === 'Kustomization') continue; // checked by building it below
      const o = doc as KubeObject;
      expect(typeof o.metadata?.name, `${file}: metadata.name`).toBe('string');
      expect(hasSchema(o), `${file}: ${o.apiVersion} ${o.kind} has a schema here`).toBe(true);
      expect(schemaProblems(o, { partial: patchFiles.has(file) }), `${file}: ${idOf(o)}`).toEqual([]);
    }
  });

  it('the schema checks catch what they are for: a mistyped field, a wrong type, a missing field', () => {
    const ds = structuredClone(find(kustomizeBuild(BASE), 'DaemonSet')[0]!);
    const c = containerOf(ds);
    (c.volumeMounts![0] as Json).mountPropogation = 'HostToContainer';
    expect(schemaProblems(ds).join('\n')).toMatch(/mountPropogation: unknown field/);
    const port = structuredClone(find(kustomizeBuild(BASE), 'DaemonSet')[0]!);
    containerOf(port).ports![0]!.containerPort = '9090' as never;
    expect(schemaProblems(port).join('\n')).toMatch(/containerPort must be integer/);
    const role = structuredClone(find(kustomizeBuild(BASE), 'RoleBinding')[0]!);
    delete (role as Json).roleRef;
    expect(schemaProblems(role).join('\n')).toMatch(/roleRef/);
  });
});

describe.each([
  ['deploy/base', BASE],
  ['deploy/overlays/edge', EDGE],
])('%s builds', (_, dir) => {
  const objects = kustomizeBuild(dir);

  it('into valid objects, each once, with the namespaces they need', () => {
    for (const o of objects) expect(schemaProblems(o), idOf(o)).toEqual([]);
    for (const o of objects.filter(isNamespaced)) expect(o.metadata.namespace, idOf(o)).toBeDefined();
    // The EnvoyFilters stay in Istio's root namespace (mesh-wide); everything else is the agent's.
    for (const ef of find(objects, 'EnvoyFilter')) expect(ef.metadata.namespace).toBe('istio-system');
    for (const o of objects.filter((x) => isNamespaced(x) && x.kind !== 'EnvoyFilter')) expect(o.metadata.namespace, idOf(o)).toBe(NAMESPACE);
    expect(find(objects, 'Namespace').map((n) => n.metadata.name)).toEqual([NAMESPACE]);
    expect(find(objects, 'CustomResourceDefinition').map((n) => n.metadata.name)).toEqual(['wanpolicies.wansteer.io']);
  });

  // Optional, under CI too: scripts/setup.sh installs no kubectl, because Debian 12's only one
  // (kubernetes-client, kubectl 1.20) embeds kustomize v2.0.3, which cannot build these
  // kustomizations (a directory such as ../crds under `resources:`, the `patches:` field); a
  // current kubectl (1.32 checked) can. Where one is installed, its build must equal the test's own.
  it('as kubectl kustomize builds it', (ctx) => {
    let out: string;
    try {
      out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return ctx.skip('kubectl is not installed (optional: Debian 12\'s is too old to build these): the test\'s own kustomize stands alone');
      throw err;
    }
    const theirs = loadAllFromString(out);
    const byId = (list: KubeObject[]) => Object.fromEntries(list.map((o) => [idOf(o), o]));
    expect(byId(objects)).toEqual(byId(theirs));
  });

  it('with one Service wansteer-agent (the rendered one), selecting the agent pods on their port', () => {
    const services = find(objects, 'Service');
    expect(services.map((s) => `${s.metadata.namespace}/${s.metadata.name}`)).toEqual([`${NAMESPACE}/wansteer-agent`]);
    const service = services[0]!.spec as { selector: Record<string, string>; internalTrafficPolicy: string; ports: { name: string; targetPort: number }[] };
    expect(service.internalTrafficPolicy).toBe('Local');
    const ds = find(objects, 'DaemonSet', 'wansteer-agent')[0]!;
    const podLabels = ((ds.spec as Json).template as { metadata: { labels: Record<string, string> } }).metadata.labels;
    for (const [k, v] of Object.entries(service.selector)) expect(podLabels[k], `pod label ${k}`).toBe(v);
    const containerPorts = containerOf(ds).ports!.map((p) => p.containerPort);
    for (const p of service.ports) expect(containerPorts).toContain(p.targetPort);
  });

  it('with a ServiceMonitor that selects that Service and scrapes /metrics on a port it has', () => {
    const [monitor] = find(objects, 'ServiceMonitor');
    const service = find(objects, 'Service', 'wansteer-agent')[0]!;
    const spec = monitor!.spec as { selector: { matchLabels: Record<string, string> }; namespaceSelector: { matchNames: string[] }; endpoints: { port: string; path: string }[] };
    for (const [k, v] of Object.entries(spec.selector.matchLabels)) expect(service.metadata.labels?.[k], `Service label ${k}`).toBe(v);
    expect(spec.namespaceSelector.matchNames).toEqual([service.metadata.namespace]);
    const portNames = (service.spec as { ports: { name: string }[] }).ports.map((p) => p.name);
    for (const e of spec.endpoints) {
      expect(portNames).toContain(e.port);
      expect(e.path).toBe('/metrics');
    }
  });

  it('with a DaemonSet that keeps the security model: capabilities, not privileged', () => {
    const ds = find(objects, 'DaemonSet', 'wansteer-agent')[0]!;
    const pod = podSpecOf(ds);
    const all = [...((pod.initContainers ?? []) as Container[]), ...(pod.containers as Container[])];
    expect(all.map((c) => c.name)).toEqual(['envoy-module', 'agent']);
    const sc = containerOf(ds).securityContext!;
    expect(JSON.stringify(ds)).not.toMatch(/"privileged":true/);
    expect(sc.privileged).toBe(false);
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(sc.readOnlyRootFilesystem).toBe(true);
    // uid 0 with every capability dropped but three (docs/deploy.md: why not non-root).
    expect(sc.runAsUser).toBe(0);
    expect(sc.capabilities?.drop).toEqual(['ALL']);
    expect([...(sc.capabilities?.add ?? [])].sort()).toEqual(['BPF', 'NET_ADMIN', 'NET_RAW', 'PERFMON']);
    expect(sc.seccompProfile).toEqual({ type: 'RuntimeDefault' });
    expect(pod.securityContext).toBeUndefined();
    for (const hostNs of ['hostPID', 'hostIPC']) expect(pod[hostNs], hostNs).toBeUndefined();
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(pod.serviceAccountName).toBe('wansteer-agent');
  });

  it('with an init container that only copies the Envoy module to the node, with no capability', () => {
    const ds = find(objects, 'DaemonSet', 'wansteer-agent')[0]!;
    const init = (podSpecOf(ds).initContainers as Container[])[0]!;
    const sc = init.securityContext!;
    expect(sc.privileged).toBe(false);
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(sc.readOnlyRootFilesystem).toBe(true);
    expect(sc.capabilities).toEqual({ drop: ['ALL'] });
    expect(sc.seccompProfile).toEqual({ type: 'RuntimeDefault' });
    expect(init.image).toBe(containerOf(ds).image);
    // One mount, the module's host directory; the script writes beside the file and renames.
    expect(init.volumeMounts!.map((m) => m.name)).toEqual(['envoy-module']);
    const script = ((init as Json).args as string[]).join(' ');
    const mountPath = init.volumeMounts![0]!.mountPath;
    expect(script).toContain('/opt/wansteer/build/envoy-module/libwansteer.so');
    expect(script).toMatch(new RegExp(`mv -f ${mountPath}/libwansteer.so.new ${mountPath}/libwansteer.so$`));
    // The agent itself never mounts it.
    expect(containerOf(ds).volumeMounts!.map((m) => m.name)).not.toContain('envoy-module');
  });

  it('with exactly the host paths it needs: the bpffs (HostToContainer), the state directory, the Envoy module directory', () => {
    const ds = find(objects, 'DaemonSet', 'wansteer-agent')[0]!;
    const volumes = podSpecOf(ds).volumes as { name: string; hostPath?: { path: string; type: string } }[];
    const hostPaths = Object.fromEntries(volumes.filter((v) => v.hostPath).map((v) => [v.hostPath!.path, v]));
    expect(Object.keys(hostPaths).sort()).toEqual(['/sys/fs/bpf', '/var/lib/wansteer', '/var/lib/wansteer/envoy-module']);
    expect(hostPaths['/var/lib/wansteer/envoy-module']!.name).toBe('envoy-module');
    expect(hostPaths['/sys/fs/bpf']!.hostPath!.type).toBe('Directory'); // never create it: it must be the mounted bpffs
    const mounts = containerOf(ds).volumeMounts!;
    const bpffs = mounts.find((m) => m.name === hostPaths['/sys/fs/bpf']!.name)!;
    expect(bpffs.mountPropagation).toBe('HostToContainer'); // Bidirectional would need privileged
    expect(bpffs.mountPath.startsWith('/sys/')).toBe(false); // the default AppArmor profile denies writes there
    const state = mounts.find((m) => m.name === hostPaths['/var/lib/wansteer']!.name)!;
    expect(state.mountPath).toBe('/var/lib/wansteer');
    for (const m of mounts.filter((x) => x !== bpffs)) expect(m.mountPropagation ?? 'None').toBe('None');
  });

  it('with probes on /healthz and /readyz at the port the agent listens on, and requests and limits', () => {
    const ds = find(objects, 'DaemonSet', 'wansteer-agent')[0]!;
    const c = containerOf(ds);
    const env = environment(c, { 'spec.nodeName': 'edge-1', 'status.podIP': '10.0.0.7' });
    const listenPort = Number(/:([0-9]+)$/.exec(env.WANSTEER_LISTEN_HTTP!)![1]);
    const portNumber = (port: unknown) => (typeof port === 'number' ? port : c.ports!.find((p) => p.name === port)?.containerPort);
    const probe = (p: Json | undefined) => p?.httpGet as { path: string; port: unknown } | undefined;
    expect(probe(c.livenessProbe)?.path).toBe('/healthz');
    expect(probe(c.readinessProbe)?.path).toBe('/readyz');
    for (const p of [c.livenessProbe, c.readinessProbe, c.startupProbe].filter(Boolean)) expect(portNumber(probe(p)!.port)).toBe(listenPort);
    for (const r of ['cpu', 'memory']) {
      const request = c.resources?.requests?.[r];
      const limit = c.resources?.limits?.[r];
      expect(request && limit, `${r} request and limit`).toBeTruthy();
      expect(quantity(request!)).toBeLessThanOrEqual(quantity(limit!));
    }
  });

  it('with a ConfigMap the agent accepts, in cluster mode, using the mounts the DaemonSet has', () => {
    const ds = find(objects, 'DaemonSet', 'wansteer-agent')[0]!;
    const c = containerOf(ds);
    const pod = podSpecOf(ds);
    const configVolume = (pod.volumes as { name: string; configMap?: { name: string } }[]).find((v) => v.configMap)!;
    const configMount = c.volumeMounts!.find((m) => m.name === configVolume.name)!;
    const args = c.args as string[];
    const configPath = args[args.indexOf('--config') + 1]!;
    expect(dirname(configPath)).toBe(configMount.mountPath);
    const cm = find(objects, 'ConfigMap', configVolume.configMap!.name)[0]!;
    const document = parse((cm.data as Record<string, string>)[configPath.slice(configMount.mountPath.length + 1)]!) as unknown;
    const config = resolveConfig(document, { argv: args.filter((a) => a !== '--config' && a !== configPath), env: environment(c, { 'spec.nodeName': 'edge-1', 'status.podIP': '10.0.0.7' }) });
    expect(config.nodeName).toBe('edge-1');
    expect(config.listen.http).toBe('[10.0.0.7]:9090');
    expect(config.rules).toEqual({ source: 'cluster', namespaces: [] });
    expect(config.policies).toEqual({ store: 'cluster', namespace: NAMESPACE });
    expect(config.datapath.dryRun).toBe(false);
    const mountOf = (path: string) => c.volumeMounts!.find((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
    const bpffs = (pod.volumes as { name: string; hostPath?: { path: string } }[]).find((v) => v.hostPath?.path === '/sys/fs/bpf')!;
    expect(mountOf(config.datapath.pinDir)?.name).toBe(bpffs.name);
    expect(mountOf(config.stateDir)?.readOnly).not.toBe(true);
    expect(mountOf(config.stateDir)?.name).not.toBe(configVolume.name);
    expect(config.listen.grpc).toBeUndefined(); // not exposed: the rendered filter reports over HTTP
  });

  it('with RBAC bound to the agent\'s ServiceAccount and nothing else', () => {
    for (const b of [...find(objects, 'ClusterRoleBinding'), ...find(objects, 'RoleBinding')]) {
      expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: 'wansteer-agent', namespace: NAMESPACE }]);
      const ref = b.roleRef as { kind: string; name: string };
      expect(find(objects, ref.kind, ref.name), `${idOf(b)} refers to a role in the build`).toHaveLength(1);
    }
  });

  it('with a CRD whose one served version is the stored one, with a schema and printer columns', () => {
    const crd = find(objects, 'CustomResourceDefinition')[0]!;
    const spec = crd.spec as { group: string; names: { plural: string }; scope: string; versions: { name: string; served: boolean; storage: boolean; schema?: { openAPIV3Schema?: Json }; additionalPrinterColumns?: { jsonPath: string; type: string }[] }[] };
    expect(crd.metadata.name).toBe(`${spec.names.plural}.${spec.group}`);
    expect(spec.scope).toBe('Namespaced');
    expect(spec.versions.filter((v) => v.storage)).toHaveLength(1);
    for (const v of spec.versions.filter((x) => x.served)) {
      expect(isObject(v.schema?.openAPIV3Schema?.properties), `${v.name} schema`).toBe(true);
      expect(v.additionalPrinterColumns?.length).toBeGreaterThan(0);
      for (const col of v.additionalPrinterColumns ?? []) expect(col.jsonPath.startsWith('.')).toBe(true);
    }
  });
});

describe('deploy/overlays/edge', () => {
  const ds = find(kustomizeBuild(EDGE), 'DaemonSet', 'wansteer-agent')[0]!;
  const base = find(kustomizeBuild(BASE), 'DaemonSet', 'wansteer-agent')[0]!;

  it('runs the agent only on edge nodes, tolerating their taint', () => {
    const pod = podSpecOf(ds);
    expect(pod.nodeSelector).toEqual({ 'node-role.kubernetes.io/edge': '' });
    expect(pod.tolerations).toContainEqual({ key: 'node-role.kubernetes.io/edge', operator: 'Exists', effect: 'NoSchedule' });
    expect(podSpecOf(base).nodeSelector).toBeUndefined();
  });

  it('changes resources and the flow table, and keeps everything else of the base container', () => {
    const c = containerOf(ds);
    const b = containerOf(base);
    expect(environment(c, {}).WANSTEER_FLOW_TABLE_SIZE).toBe('262144');
    expect(c.resources).not.toEqual(b.resources);
    const { env: _e1, resources: _r1, ...rest } = c;
    const { env: _e2, resources: _r2, ...baseRest } = b;
    expect(rest).toEqual(baseRest);
    expect(c.env!.filter((e) => b.env!.some((x) => x.name === e.name))).toEqual(b.env);
  });
});

function loadAllFromString(text: string): KubeObject[] {
  return text.split(/^---$/m).map((d) => parse(d) as KubeObject).filter(Boolean);
}
