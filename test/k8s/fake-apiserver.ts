/**
 * A loopback HTTP server that speaks the Kubernetes list/watch protocol for one custom resource:
 * paged lists with a resourceVersion, chunked watch streams of ADDED/MODIFIED/DELETED/BOOKMARK
 * events from a given version, 410 Gone (as an ERROR event) once history is compacted, injected
 * list failures, and dropped connections. Real sockets, real client-node on the other end.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export interface StoredObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion?: string; [k: string]: unknown };
  spec?: unknown;
}

interface HistoryEvent {
  readonly rv: number;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: StoredObject;
}

export interface RecordedRequest {
  readonly path: string;
  readonly query: Record<string, string>;
  readonly watch: boolean;
}

export class FakeApiServer {
  readonly requests: RecordedRequest[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly watchers = new Set<{ res: ServerResponse; namespace: string | undefined }>();
  private readonly objects = new Map<string, StoredObject>();
  private history: HistoryEvent[] = [];
  /** Versions older than this are gone (410). */
  private oldestWatchable = 0;
  private rv = 100;
  private listFailures: number[] = [];

  constructor(
    private readonly options: { group?: string; plural?: string; servedVersions?: string[] } = {},
  ) {
    this.server = createServer((req, res) => this.handle(req, res));
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

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'agent', token: 'test-token' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'agent' }],
      currentContext: 'fake',
    });
    return kc;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  upsert(object: StoredObject): void {
    const key = `${object.metadata.namespace}/${object.metadata.name}`;
    const type = this.objects.has(key) ? 'MODIFIED' : 'ADDED';
    const stored = structuredClone(object);
    stored.metadata.resourceVersion = String(++this.rv);
    this.objects.set(key, stored);
    this.publish({ rv: this.rv, type, object: stored });
  }

  remove(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const old = this.objects.get(key);
    if (!old) return;
    this.objects.delete(key);
    const gone = structuredClone(old);
    gone.metadata.resourceVersion = String(++this.rv);
    this.publish({ rv: this.rv, type: 'DELETED', object: gone });
  }

  /** Sends a BOOKMARK at the current version to every open watch. */
  bookmark(): void {
    this.rv++;
    for (const w of this.watchers) {
      this.write(w.res, { type: 'BOOKMARK', object: { kind: 'VirtualService', apiVersion: 'networking.istio.io/v1', metadata: { resourceVersion: String(this.rv) } } });
    }
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

  /** Cuts every open connection mid-stream, like a load balancer or a restarting API server. */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
    this.watchers.clear();
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  private publish(event: HistoryEvent): void {
    this.history.push(event);
    for (const w of this.watchers) {
      if (w.namespace === undefined || w.namespace === event.object.metadata.namespace) this.write(w.res, event);
    }
  }

  private write(res: ServerResponse, event: { type: string; object: unknown }): void {
    res.write(`${JSON.stringify({ type: event.type, object: event.object })}\n`);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams);
    const watch = query.watch === 'true';
    this.requests.push({ path: url.pathname, query, watch });
    const group = this.options.group ?? 'networking.istio.io';
    const plural = this.options.plural ?? 'virtualservices';
    const m = new RegExp(`^/apis/${group.replace(/\./g, '\\.')}/([^/]+)(?:/namespaces/([^/]+))?/${plural}$`).exec(url.pathname);
    const served = this.options.servedVersions ?? ['v1', 'v1beta1', 'v1alpha3'];
    if (!m || !served.includes(m[1]!)) return this.status(res, 404, 'NotFound', 'the server could not find the requested resource');
    if (req.headers.authorization !== 'Bearer test-token') return this.status(res, 401, 'Unauthorized', 'Unauthorized');
    const namespace = m[2];
    if (watch) return this.watch(res, namespace, query.resourceVersion ?? '');
    return this.list(res, namespace, query);
  }

  private list(res: ServerResponse, namespace: string | undefined, query: Record<string, string>): void {
    const failure = this.listFailures.shift();
    if (failure !== undefined) return this.status(res, failure, 'InternalError', 'injected failure');
    const all = [...this.objects.values()]
      .filter((o) => namespace === undefined || o.metadata.namespace === namespace)
      .sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
    const start = query.continue ? Number(query.continue) : 0;
    const limit = query.limit ? Number(query.limit) : all.length;
    const items = all.slice(start, start + limit);
    const more = start + limit < all.length;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualServiceList',
      metadata: { resourceVersion: String(this.rv), ...(more ? { continue: String(start + limit) } : {}) },
      items,
    }));
  }

  private watch(res: ServerResponse, namespace: string | undefined, from: string): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    // A real API server sends the headers at once; the client's watch is open from then on.
    res.flushHeaders();
    const since = Number(from);
    if (!from || since < this.oldestWatchable) {
      // What a real API server does for a too-old version: an ERROR event with a 410 Status, then end.
      this.write(res, { type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: `too old resource version: ${from}` } });
      res.end();
      return;
    }
    for (const e of this.history) {
      if (e.rv > since && (namespace === undefined || e.object.metadata.namespace === namespace)) this.write(res, e);
    }
    const watcher = { res, namespace };
    this.watchers.add(watcher);
    res.on('close', () => this.watchers.delete(watcher));
  }

  private status(res: ServerResponse, code: number, reason: string, message: string): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code }));
  }
}

export function virtualService(namespace: string, name: string, header = 'jason', apiVersion = 'networking.istio.io/v1'): StoredObject {
  return {
    apiVersion,
    kind: 'VirtualService',
    metadata: { name, namespace },
    spec: {
      hosts: [name],
      http: [
        { name: 'special', match: [{ headers: { 'end-user': { exact: header } } }], route: [{ destination: { host: name, subset: 'v2' } }] },
        { name: 'default', route: [{ destination: { host: name, subset: 'v1' } }] },
      ],
    },
  };
}
