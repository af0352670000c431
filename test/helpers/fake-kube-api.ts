/**
 * A loopback HTTP server that speaks the Kubernetes API for one resource type the way
 * client-node uses it — real sockets, real client-node on the other end:
 *  - lists, paged (limit/continue), namespaced or across all namespaces, with a resourceVersion;
 *  - chunked watch streams of ADDED/MODIFIED/DELETED/BOOKMARK events from a given version, and
 *    410 Gone (as an ERROR event) once history is compacted;
 *  - writes: POST (409 AlreadyExists), PUT with metadata.resourceVersion as precondition (409
 *    Conflict when stale, 404 when missing), DELETE with preconditions, each object checked by
 *    the resource's own rule (422 Invalid), as an API server with the CRD installed would;
 *  - bearer-token authentication (401), unserved versions (404), injected list and write
 *    failures, and dropped connections.
 * Each test suite wraps it for its resource: test/k8s/fake-apiserver.ts (VirtualServices),
 * test/policies/helpers/fake-wanpolicy-api.ts (WanPolicies).
 *
 * The real thing is test/helpers/kube-control-plane.ts (kube-apiserver + etcd), and what the
 * agent does in a cluster is proven there (test/k8s/real-apiserver.test.ts,
 * test/agent/cluster-real.test.ts). This fake stays for what a real server cannot be made to
 * show on cue: a 5xx on one chosen list page or write, a connection dropped between two chosen
 * watch events, an ERROR event of any kind, a Status body that is not JSON, a server that serves
 * only v1alpha3, an API server that is down before the agent starts and comes back mid-test
 * (behind test/helpers/recording-proxy.ts), and an exact record of every request the agent makes
 * (test/deploy/rbac.test.ts holds the RBAC to it; the real server then enforces that RBAC).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export interface StoredObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion?: string; creationTimestamp?: string; [k: string]: unknown };
  spec?: unknown;
}

export interface ApiResource<T extends StoredObject> {
  readonly group: string;
  readonly plural: string;
  readonly kind: string;
  /** The versions served; any other is 404, as on a cluster whose CRD lacks it. */
  readonly versions: readonly string[];
  /** Why the API server refuses this object on a write (422 Invalid); undefined when valid. */
  readonly invalid?: (object: T) => string | undefined;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly watch: boolean;
  readonly body?: unknown;
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export const FAKE_TOKEN = 'test-token';

export class FakeKubeApi<T extends StoredObject = StoredObject> {
  readonly requests: RecordedRequest[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly watchers = new Set<{ res: ServerResponse; namespace: string | undefined }>();
  private readonly objects = new Map<string, T>();
  private history: { rv: number; type: EventType; object: T }[] = [];
  /** Versions older than this are gone (410). */
  private oldestWatchable = 0;
  private rv = 100;
  private clock = Date.parse('2025-01-01T00:00:00Z');
  private listFailures: number[] = [];
  private writeFailures: number[] = [];
  private readonly path: RegExp;

  constructor(private readonly resource: ApiResource<T>) {
    const group = resource.group.replace(/\./g, '\\.');
    this.path = new RegExp(`^/apis/${group}/([^/]+)(?:/namespaces/([^/]+))?/${resource.plural}(?:/([^/]+))?$`);
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** A client configuration for this server, authenticated with the token it accepts. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'agent', token: FAKE_TOKEN }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'agent' }],
      currentContext: 'fake',
    });
    return kc;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  get(namespace: string, name: string): T | undefined {
    return this.objects.get(`${namespace}/${name}`);
  }

  /**
   * Stores the object as another client (kubectl, another node) writing directly would: a new
   * resourceVersion, creationTimestamp kept from the first write, and its watch event.
   */
  upsert(object: T): T {
    const key = `${object.metadata.namespace}/${object.metadata.name}`;
    const previous = this.objects.get(key);
    const stored = structuredClone(object);
    stored.metadata.resourceVersion = String(++this.rv);
    stored.metadata.creationTimestamp = previous?.metadata.creationTimestamp ?? stored.metadata.creationTimestamp ?? new Date((this.clock += 1000)).toISOString();
    this.objects.set(key, stored);
    this.publish(previous ? 'MODIFIED' : 'ADDED', stored);
    return stored;
  }

  remove(namespace: string, name: string): void {
    const old = this.objects.get(`${namespace}/${name}`);
    if (!old) return;
    this.objects.delete(`${namespace}/${name}`);
    const gone = structuredClone(old);
    gone.metadata.resourceVersion = String(++this.rv);
    this.publish('DELETED', gone);
  }

  /** Sends a BOOKMARK at the current version to every open watch. */
  bookmark(): void {
    this.rv++;
    const object = { kind: this.resource.kind, apiVersion: `${this.resource.group}/${this.resource.versions[0]}`, metadata: { resourceVersion: String(this.rv) } };
    for (const w of this.watchers) send(w.res, 'BOOKMARK', object);
  }

  /** Forgets history: a watch from any version before now gets 410 Gone. */
  compact(): void {
    this.history = [];
    this.oldestWatchable = this.rv;
  }

  /** The next lists answer with these HTTP statuses, in order. */
  failNextLists(...statuses: number[]): void {
    this.listFailures.push(...statuses);
  }

  /** The next writes answer with these statuses, whatever they ask. */
  failNextWrites(...statuses: number[]): void {
    this.writeFailures.push(...statuses);
  }

  /** Cuts every open connection mid-stream, like a load balancer or a restarting API server. */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
    this.watchers.clear();
  }

  private publish(type: EventType, object: T): void {
    this.history.push({ rv: Number(object.metadata.resourceVersion), type, object });
    for (const w of this.watchers) if (w.namespace === undefined || w.namespace === object.metadata.namespace) send(w.res, type, object);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    // GETs are answered in the same tick they arrive, as before any body is read.
    const text = method === 'GET' ? '' : await readBody(req);
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams);
    const watch = query.watch === 'true';
    this.requests.push({ method, path: url.pathname, query, watch, body });
    if (req.headers.authorization !== `Bearer ${FAKE_TOKEN}`) return status(res, 401, 'Unauthorized', 'Unauthorized');
    const m = this.path.exec(url.pathname);
    if (!m || !this.resource.versions.includes(m[1]!)) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
    const [version, namespace, name] = [m[1]!, m[2], m[3]];
    if (method === 'GET' && !name) return watch ? this.watch(res, namespace, query.resourceVersion ?? '') : this.list(res, version, namespace, query);
    if (namespace === undefined || method === 'GET') return status(res, 405, 'MethodNotAllowed', 'method not allowed');
    const failure = this.writeFailures.shift();
    if (failure !== undefined) return status(res, failure, 'InternalError', 'injected failure');
    if (method === 'POST' && !name) return this.create(res, namespace, body as unknown as T);
    if (method === 'PUT' && name) return this.replace(res, namespace, name, body as unknown as T);
    if (method === 'DELETE' && name) return this.delete(res, namespace, name, body);
    return status(res, 405, 'MethodNotAllowed', 'method not allowed');
  }

  private list(res: ServerResponse, version: string, namespace: string | undefined, query: Record<string, string>): void {
    const failure = this.listFailures.shift();
    if (failure !== undefined) return status(res, failure, 'InternalError', 'injected failure');
    const all = [...this.objects.values()]
      .filter((o) => namespace === undefined || o.metadata.namespace === namespace)
      .sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
    const start = query.continue ? Number(query.continue) : 0;
    const limit = query.limit ? Number(query.limit) : all.length;
    const more = start + limit < all.length;
    json(res, 200, {
      apiVersion: `${this.resource.group}/${version}`,
      kind: `${this.resource.kind}List`,
      metadata: { resourceVersion: String(this.rv), ...(more ? { continue: String(start + limit) } : {}) },
      items: all.slice(start, start + limit),
    });
  }

  private watch(res: ServerResponse, namespace: string | undefined, from: string): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    // A real API server sends the headers at once; the client's watch is open from then on.
    res.flushHeaders();
    const since = Number(from);
    if (!from || since < this.oldestWatchable) {
      // What a real API server does for a too-old version: an ERROR event with a 410 Status, then end.
      send(res, 'ERROR', { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: `too old resource version: ${from}` });
      res.end();
      return;
    }
    for (const e of this.history) {
      if (e.rv > since && (namespace === undefined || e.object.metadata.namespace === namespace)) send(res, e.type, e.object);
    }
    const watcher = { res, namespace };
    this.watchers.add(watcher);
    res.on('close', () => this.watchers.delete(watcher));
  }

  private create(res: ServerResponse, namespace: string, object: T): void {
    const invalid = this.resource.invalid?.(object);
    if (invalid) return status(res, 422, 'Invalid', invalid);
    const name = object.metadata.name;
    if (this.get(namespace, name)) return status(res, 409, 'AlreadyExists', `${this.qualified} "${name}" already exists`);
    json(res, 201, this.upsert({ ...object, metadata: { ...object.metadata, namespace } }));
  }

  private replace(res: ServerResponse, namespace: string, name: string, object: T): void {
    const current = this.get(namespace, name);
    if (!current) return status(res, 404, 'NotFound', `${this.qualified} "${name}" not found`);
    const invalid = this.resource.invalid?.(object);
    if (invalid) return status(res, 422, 'Invalid', invalid);
    const wanted = object.metadata.resourceVersion;
    if (wanted !== undefined && wanted !== current.metadata.resourceVersion) {
      return status(res, 409, 'Conflict', `Operation cannot be fulfilled on ${this.qualified} "${name}": the object has been modified; please apply your changes to the latest version and try again`);
    }
    json(res, 200, this.upsert({ ...object, metadata: { ...object.metadata, namespace } }));
  }

  private delete(res: ServerResponse, namespace: string, name: string, body: Record<string, unknown> | undefined): void {
    const current = this.get(namespace, name);
    if (!current) return status(res, 404, 'NotFound', `${this.qualified} "${name}" not found`);
    const wanted = (body?.preconditions as { resourceVersion?: string } | undefined)?.resourceVersion;
    if (wanted !== undefined && wanted !== current.metadata.resourceVersion) {
      return status(res, 409, 'Conflict', `Precondition failed: ResourceVersion in precondition: ${wanted}, the object's: ${current.metadata.resourceVersion}`);
    }
    this.remove(namespace, name);
    json(res, 200, { kind: 'Status', apiVersion: 'v1', status: 'Success', details: { name, kind: this.resource.plural } });
  }

  /** `wanpolicies.wansteer.io`, as the API server names the resource in its messages. */
  private get qualified(): string {
    return `${this.resource.plural}.${this.resource.group}`;
  }
}

function send(res: ServerResponse, type: string, object: unknown): void {
  res.write(`${JSON.stringify({ type, object })}\n`);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => resolve(text));
  });
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code });
}
