/**
 * A real Kubernetes control plane for tests: etcd and kube-apiserver (built by
 * scripts/setup-k8s.sh into /var/cache/wansteer, versions in scripts/k8s-versions.sh), started on
 * loopback ports that were free, with their data in a temporary directory, RBAC on, and killed
 * and removed after (also when the test fails, or the worker exits).
 *
 *   const cp = await KubeControlPlane.start();          // etcd + kube-apiserver, ready
 *   await cp.installCrds();                              // WanPolicy, Istio's VirtualService/EnvoyFilter
 *   await cp.apply(kustomizeBuild('deploy/overlays/edge'));
 *   const agent = await cp.serviceAccountConfig('wansteer-system', 'wansteer-agent');  // TokenRequest
 *   await cp.restartApiServer(); await cp.compact();     // faults a real server shows
 *   await cp.stop();
 *
 * Who is who: `admin` (a static token in group system:masters) sets the cluster up and plays
 * kubectl; the agent gets a ServiceAccount token from the TokenRequest API, so RBAC judges it
 * exactly as in a cluster.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiextensionsV1Api, CoreV1Api, KubeConfig,
} from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { fromRoot } from '../../src/config/paths.js';

/** The pinned versions, from scripts/k8s-versions.sh. */
export const VERSIONS = Object.fromEntries(
  readFileSync(fromRoot('scripts/k8s-versions.sh'), 'utf8')
    .split('\n')
    .map((l) => /^([A-Z0-9_]+)=(\S+)$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => [m[1]!, m[2]!]),
) as { K8S_VERSION: string; ISTIO_API_VERSION: string; ISTIO_VERSION: string };

const CACHE = process.env.WANSTEER_CACHE ?? '/var/cache/wansteer';
export const KUBE_APISERVER = join(CACHE, 'k8s', VERSIONS.K8S_VERSION, 'bin/kube-apiserver');
export const ETCD = join(CACHE, 'k8s', VERSIONS.K8S_VERSION, 'bin/etcd');
export const ISTIO_CRDS = join(CACHE, 'istio', `api-${VERSIONS.ISTIO_API_VERSION}`, 'crds.yaml');
/** istiod (pilot-discovery), built by scripts/setup-k8s.sh unless WANSTEER_SKIP_ISTIOD=1. */
export const PILOT_DISCOVERY = join(CACHE, 'istio', VERSIONS.ISTIO_VERSION, 'bin/pilot-discovery');


const ADMIN_TOKEN = 'wansteer-test-admin';

/** Any object as a manifest has it (the helper sends it as it is). */
export interface ApiObject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: { readonly name?: string; readonly namespace?: string };
}

/** The Istio CRDs the agent and the manifests need. */
const ISTIO_CRD_NAMES = ['virtualservices.networking.istio.io', 'envoyfilters.networking.istio.io'];

export interface ControlPlaneOptions {
  /** kube-apiserver's watch cache (default on, as in clusters). */
  readonly watchCache?: boolean;
}

export class KubeControlPlane {
  readonly dir: string;
  /** https://127.0.0.1:PORT */
  readonly url: string;
  readonly etcdUrl: string;
  private etcd: ChildProcess | undefined;
  private ca: Buffer | undefined;
  private apiServer: ChildProcess | undefined;
  private readonly apiPort: number;
  /** Admin requests reuse connections (a burst of 2000 writes is not 2000 TLS handshakes). */
  private readonly admin = new HttpsAgent({ keepAlive: true, maxSockets: 32 });
  private readonly killAll = (): void => {
    for (const p of [this.apiServer, this.etcd]) p?.kill('SIGKILL');
  };

  private constructor(dir: string, apiPort: number, etcdPort: number, private readonly peerPort: number, private readonly options: ControlPlaneOptions) {
    this.dir = dir;
    this.apiPort = apiPort;
    this.url = `https://127.0.0.1:${apiPort}`;
    this.etcdUrl = `http://127.0.0.1:${etcdPort}`;
  }

  static async start(options: ControlPlaneOptions = {}): Promise<KubeControlPlane> {
    const dir = mkdtempSync(join(tmpdir(), `wansteer-k8s-${process.pid}-`));
    const [apiPort = 0, etcdPort = 0, peerPort = 0] = await freePorts(3);
    const cp = new KubeControlPlane(dir, apiPort, etcdPort, peerPort, options);
    process.once('exit', cp.killAll);
    try {
      cp.writeCredentials();
      await cp.startEtcd();
      await cp.startApiServer();
      return cp;
    } catch (err) {
      await cp.stop();
      throw err;
    }
  }

  /** Kills both servers and removes their data. */
  async stop(): Promise<void> {
    this.admin.destroy();
    await stopProcess(this.apiServer);
    await stopProcess(this.etcd);
    this.apiServer = this.etcd = undefined;
    process.off('exit', this.killAll);
    rmSync(this.dir, { recursive: true, force: true });
  }

  // ---- who talks to it ------------------------------------------------------------------

  /** cluster-admin (group system:masters), as kubectl would be. */
  adminConfig(): KubeConfig {
    return this.kubeConfig('admin', ADMIN_TOKEN);
  }

  /** A ServiceAccount's token from the TokenRequest API, valid an hour. */
  async serviceAccountConfig(namespace: string, name: string): Promise<KubeConfig> {
    const core = this.adminConfig().makeApiClient(CoreV1Api);
    const answer = await core.createNamespacedServiceAccountToken({ namespace, name, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
    const token = answer.status?.token;
    if (!token) throw new Error(`no token for ServiceAccount ${namespace}/${name}`);
    return this.kubeConfig(`system:serviceaccount:${namespace}:${name}`, token);
  }

  /** A kubeconfig file for `config` (for an agent started as a process: KUBECONFIG=…). */
  writeKubeconfig(config: KubeConfig, path = join(this.dir, `kubeconfig-${Date.now()}`)): string {
    writeFileSync(path, config.exportConfig(), { mode: 0o600 });
    return path;
  }

  private kubeConfig(user: string, token: string): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'test', server: this.url, caFile: join(this.dir, 'certs/apiserver.crt') }],
      users: [{ name: user, token }],
      contexts: [{ name: 'test', cluster: 'test', user }],
      currentContext: 'test',
    });
    return kc;
  }

  // ---- what it holds --------------------------------------------------------------------

  /**
   * The project's WanPolicy CRD and Istio's VirtualService and EnvoyFilter CRDs (`allIstio`: every
   * CRD of istio/api, as istiod watches them all), established and served.
   */
  async installCrds(options: { allIstio?: boolean } = {}): Promise<void> {
    const istio = parseAllDocuments(readFileSync(ISTIO_CRDS, 'utf8'))
      .map((d) => d.toJS() as ApiObject)
      .filter((o) => o?.kind === 'CustomResourceDefinition' && (options.allIstio || ISTIO_CRD_NAMES.includes(o.metadata?.name ?? '')));
    if (!ISTIO_CRD_NAMES.every((name) => istio.some((o) => o.metadata?.name === name))) throw new Error(`${ISTIO_CRDS} lacks ${ISTIO_CRD_NAMES.join(' or ')}`);
    const ours = parseAllDocuments(readFileSync(fromRoot('deploy/crds/wanpolicy.yaml'), 'utf8')).map((d) => d.toJS() as ApiObject);
    await this.apply([...istio, ...ours]);
  }

  /**
   * Creates each object as admin (CRDs first, then waits until they are served); kinds the
   * server does not serve (a ServiceMonitor without the Prometheus operator) are skipped, and
   * returned.
   */
  async apply(objects: readonly ApiObject[]): Promise<ApiObject[]> {
    const crds = objects.filter((o) => o.kind === 'CustomResourceDefinition');
    for (const crd of crds) await this.create(crd);
    for (const crd of crds) await this.waitServed(crd.metadata!.name!);
    const skipped: ApiObject[] = [];
    const rest = objects.filter((o) => o.kind !== 'CustomResourceDefinition');
    // Namespaces before what lives in them.
    for (const o of [...rest.filter((o) => o.kind === 'Namespace'), ...rest.filter((o) => o.kind !== 'Namespace')]) {
      if (!(await this.create(o))) skipped.push(o);
    }
    return skipped;
  }

  /**
   * POSTs the object as it is (client-node's typed models would drop fields they do not know,
   * such as x-kubernetes-int-or-string in Istio's CRDs); false when the server does not serve its kind.
   */
  async create(object: ApiObject): Promise<boolean> {
    const path = await this.pathOf(object);
    if (!path) return false;
    const res = await this.request('POST', path, object);
    if (res.status !== 201 && res.status !== 409) throw new Error(`create ${object.kind} ${object.metadata?.name}: ${res.status} ${JSON.stringify(res.body)}`);
    return true;
  }

  /** The collection path of the object's kind (or the object's path, with `name`), found through discovery. */
  async pathOf(object: ApiObject, name?: string): Promise<string | undefined> {
    const base = object.apiVersion!.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
    const discovery = await this.request('GET', base);
    const resources = (discovery.body as { resources?: { name: string; kind: string; namespaced: boolean }[] }).resources ?? [];
    const resource = resources.find((r) => r.kind === object.kind && !r.name.includes('/'));
    if (discovery.status !== 200 || !resource) return undefined;
    const ns = resource.namespaced ? `/namespaces/${object.metadata?.namespace ?? 'default'}` : '';
    if (resource.namespaced && object.metadata?.namespace) await this.ensureNamespace(object.metadata.namespace);
    return `${base}${ns}/${resource.name}${name ? `/${name}` : ''}`;
  }

  /** Namespaces a manifest expects to exist (istio-system: Istio's install makes it). */
  private async ensureNamespace(name: string): Promise<void> {
    if ((await this.request('GET', `/api/v1/namespaces/${name}`)).status === 200) return;
    await this.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  }

  private async waitServed(name: string): Promise<void> {
    const ext = this.adminConfig().makeApiClient(ApiextensionsV1Api);
    await waitFor(`CRD ${name} established`, 30_000, async () => {
      const crd = await ext.readCustomResourceDefinition({ name });
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
    });
    const crd = await ext.readCustomResourceDefinition({ name });
    const version = crd.spec.versions.find((v) => v.served)!.name;
    // Established is not yet served: discovery and the handler catch up a moment later.
    await waitFor(`${name} served`, 30_000, async () => (await this.request('GET', `/apis/${crd.spec.group}/${version}/${crd.spec.names.plural}?limit=1`)).status === 200);
  }

  /** One request as admin, the answer's status and body (JSON when it is). */
  request(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(`${this.url}${path}`, {
        method,
        agent: this.admin,
        ca: this.ca ??= readFileSync(join(this.dir, 'certs/apiserver.crt')),
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  // ---- faults ---------------------------------------------------------------------------

  /** Stops kube-apiserver (SIGTERM, as a rollout would) and starts it again on the same port; etcd keeps the data. */
  async restartApiServer(between?: () => Promise<void>): Promise<void> {
    this.admin.destroy();
    await stopProcess(this.apiServer);
    this.apiServer = undefined;
    await between?.();
    await this.startApiServer();
  }

  /** etcd's revision now. */
  async etcdRevision(): Promise<number> {
    const res = await fetch(`${this.etcdUrl}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/').toString('base64') }) });
    const answer = (await res.json()) as { header?: { revision?: string } };
    return Number(answer.header?.revision);
  }

  /** Compacts etcd's history up to now: a watch from any earlier resourceVersion is then 410 Gone. */
  async compact(): Promise<number> {
    const revision = await this.etcdRevision();
    const res = await fetch(`${this.etcdUrl}/v3/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision: String(revision), physical: true }) });
    if (!res.ok) throw new Error(`etcd compaction failed: ${res.status} ${await res.text()}`);
    return revision;
  }

  // ---- processes ------------------------------------------------------------------------

  private writeCredentials(): void {
    mkdirSync(join(this.dir, 'certs'));
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(this.dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(join(this.dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(join(this.dir, 'tokens.csv'), `${ADMIN_TOKEN},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
  }

  private async startEtcd(): Promise<void> {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    this.etcd = launch(ETCD, [
      '--name=test', `--data-dir=${join(this.dir, 'etcd')}`,
      `--listen-client-urls=${this.etcdUrl}`, `--advertise-client-urls=${this.etcdUrl}`,
      `--listen-peer-urls=${peer}`, `--initial-advertise-peer-urls=${peer}`, `--initial-cluster=test=${peer}`,
      '--log-level=warn',
      // Test data: no fsync per write (the machine's disk is shared with other suites).
      '--unsafe-no-fsync',
    ], join(this.dir, 'etcd.log'));
    await waitFor('etcd', 30_000, async () => (await fetch(`${this.etcdUrl}/health`).catch(() => undefined))?.ok === true, this.etcd, join(this.dir, 'etcd.log'));
  }

  private async startApiServer(): Promise<void> {
    const log = join(this.dir, 'kube-apiserver.log');
    this.apiServer = launch(KUBE_APISERVER, [
      `--etcd-servers=${this.etcdUrl}`,
      '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${this.apiPort}`,
      `--cert-dir=${join(this.dir, 'certs')}`,
      '--authorization-mode=RBAC',
      `--token-auth-file=${join(this.dir, 'tokens.csv')}`,
      `--service-account-issuer=https://kubernetes.default.svc`,
      `--service-account-key-file=${join(this.dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(this.dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      '--endpoint-reconciler-type=none',
      // Compaction is the tests' to do (compact()), not every 5 minutes behind their back.
      '--etcd-compaction-interval=0',
      `--watch-cache=${this.options.watchCache ?? true}`,
      '--profiling=false',
    ], log);
    await waitFor('kube-apiserver /readyz', 240_000, async () => {
      const res = await this.request('GET', '/readyz').catch(() => undefined);
      return res?.status === 200;
    }, this.apiServer, log);
  }
}

function launch(binary: string, args: string[], logFile: string): ChildProcess {
  const out = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  return child;
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Polls `check` until it is true; fails with the process's log tail if it died meanwhile, or at the deadline. */
async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>, process?: ChildProcess, log?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    const died = process && (process.exitCode !== null || process.signalCode !== null);
    if (died || Date.now() > deadline) {
      const tail = log ? readFileSync(log, 'utf8').split('\n').slice(-30).join('\n') : '';
      throw new Error(`${what}: ${died ? `exited (${process!.exitCode ?? process!.signalCode})` : `not ready after ${timeoutMs} ms`}\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `n` loopback ports that were free a moment ago (listen on 0, note, close). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}
