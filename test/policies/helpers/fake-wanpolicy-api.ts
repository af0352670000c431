/**
 * A loopback HTTP server that speaks the Kubernetes API for WanPolicy in the way client-node
 * uses it: paged lists with a resourceVersion, chunked watch streams from a version, and writes
 * — POST (409 AlreadyExists), PUT with metadata.resourceVersion as precondition (409 Conflict
 * when stale, 404 when missing), DELETE with preconditions — each spec checked against the CRD's
 * schema in deploy/crds (422 Invalid), as an API server with the CRD installed would.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { fromRoot } from '../../../src/config/paths.js';
import type { WanPolicyObject } from '../../../src/policies/wan-policy-object.js';
import { crdSpecSchema, structuralErrors } from './structural-schema.js';

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export class FakeWanPolicyApi {
  readonly requests: { method: string; path: string; body?: unknown }[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly watchers = new Set<{ res: ServerResponse; namespace: string }>();
  private readonly objects = new Map<string, WanPolicyObject>();
  private readonly history: { rv: number; type: EventType; object: WanPolicyObject }[] = [];
  private readonly specSchema = crdSpecSchema(parse(readFileSync(fromRoot('deploy/crds/wanpolicy.yaml'), 'utf8')));
  private rv = 100;
  private clock = Date.parse('2025-01-01T00:00:00Z');
  private writeFailures: number[] = [];

  constructor() {
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
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    const server = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server, skipTLSVerify: true }],
      users: [{ name: 'agent', token: 'test-token' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'agent' }],
      currentContext: 'fake',
    });
    return kc;
  }

  get(namespace: string, name: string): WanPolicyObject | undefined {
    return this.objects.get(`${namespace}/${name}`);
  }

  /** What another client (kubectl, another node's agent) writing directly would cause. */
  put(namespace: string, name: string, spec: unknown): WanPolicyObject {
    const previous = this.objects.get(`${namespace}/${name}`);
    const object: WanPolicyObject = { apiVersion: 'wansteer.io/v1alpha1', kind: 'WanPolicy', metadata: { ...(previous?.metadata ?? { name, namespace }) }, spec };
    return this.store(object, previous ? 'MODIFIED' : 'ADDED');
  }

  /** `kubectl label`: a metadata-only change, with its watch event. */
  label(namespace: string, name: string, labels: Record<string, string>): WanPolicyObject {
    const current = this.objects.get(`${namespace}/${name}`)!;
    return this.store({ ...current, metadata: { ...current.metadata, labels } }, 'MODIFIED');
  }

  remove(namespace: string, name: string): void {
    const old = this.objects.get(`${namespace}/${name}`);
    if (!old) return;
    this.objects.delete(`${namespace}/${name}`);
    const gone = structuredClone(old);
    gone.metadata.resourceVersion = String(++this.rv);
    this.publish('DELETED', gone);
  }

  /** The next writes answer with these statuses, whatever they ask. */
  failNextWrites(...statuses: number[]): void {
    this.writeFailures.push(...statuses);
  }

  private store(object: WanPolicyObject, type: EventType): WanPolicyObject {
    const stored = structuredClone(object);
    stored.metadata.resourceVersion = String(++this.rv);
    stored.metadata.creationTimestamp ??= new Date((this.clock += 1000)).toISOString();
    this.objects.set(`${stored.metadata.namespace}/${stored.metadata.name}`, stored);
    this.publish(type, stored);
    return stored;
  }

  private publish(type: EventType, object: WanPolicyObject): void {
    this.history.push({ rv: Number(object.metadata.resourceVersion), type, object });
    for (const w of this.watchers) if (w.namespace === object.metadata.namespace) w.res.write(`${JSON.stringify({ type, object })}\n`);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const text = await readBody(req);
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, body });
    if (req.headers.authorization !== 'Bearer test-token') return status(res, 401, 'Unauthorized', 'Unauthorized');
    const m = /^\/apis\/wansteer\.io\/v1alpha1\/namespaces\/([^/]+)\/wanpolicies(?:\/([^/]+))?$/.exec(url.pathname);
    if (!m) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
    const [namespace, name] = [m[1]!, m[2]];
    if (req.method === 'GET' && !name) {
      return url.searchParams.get('watch') === 'true' ? this.watch(res, namespace, url.searchParams.get('resourceVersion') ?? '') : this.list(res, namespace, url.searchParams);
    }
    const failure = this.writeFailures.shift();
    if (failure !== undefined) return status(res, failure, 'InternalError', 'injected failure');
    if (req.method === 'POST' && !name) return this.create(res, namespace, body as unknown as WanPolicyObject);
    if (req.method === 'PUT' && name) return this.replace(res, namespace, name, body as unknown as WanPolicyObject);
    if (req.method === 'DELETE' && name) return this.delete(res, namespace, name, body);
    return status(res, 405, 'MethodNotAllowed', 'method not allowed');
  }

  private list(res: ServerResponse, namespace: string, query: URLSearchParams): void {
    const all = [...this.objects.values()].filter((o) => o.metadata.namespace === namespace).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const start = Number(query.get('continue') ?? 0);
    const limit = Number(query.get('limit') ?? all.length);
    const more = start + limit < all.length;
    json(res, 200, { apiVersion: 'wansteer.io/v1alpha1', kind: 'WanPolicyList', metadata: { resourceVersion: String(this.rv), ...(more ? { continue: String(start + limit) } : {}) }, items: all.slice(start, start + limit) });
  }

  private watch(res: ServerResponse, namespace: string, from: string): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    for (const e of this.history) if (e.rv > Number(from) && e.object.metadata.namespace === namespace) res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
    const watcher = { res, namespace };
    this.watchers.add(watcher);
    res.on('close', () => this.watchers.delete(watcher));
  }

  private create(res: ServerResponse, namespace: string, object: WanPolicyObject): void {
    const invalid = this.invalid(object);
    if (invalid) return status(res, 422, 'Invalid', invalid);
    if (this.objects.has(`${namespace}/${object.metadata.name}`)) return status(res, 409, 'AlreadyExists', `wanpolicies.wansteer.io "${object.metadata.name}" already exists`);
    json(res, 201, this.store({ ...object, metadata: { ...object.metadata, namespace } }, 'ADDED'));
  }

  private replace(res: ServerResponse, namespace: string, name: string, object: WanPolicyObject): void {
    const current = this.objects.get(`${namespace}/${name}`);
    if (!current) return status(res, 404, 'NotFound', `wanpolicies.wansteer.io "${name}" not found`);
    const invalid = this.invalid(object);
    if (invalid) return status(res, 422, 'Invalid', invalid);
    const wanted = object.metadata.resourceVersion;
    if (wanted !== undefined && wanted !== current.metadata.resourceVersion) {
      return status(res, 409, 'Conflict', `Operation cannot be fulfilled on wanpolicies.wansteer.io "${name}": the object has been modified; please apply your changes to the latest version and try again`);
    }
    json(res, 200, this.store({ ...object, metadata: { ...object.metadata, creationTimestamp: current.metadata.creationTimestamp, namespace } }, 'MODIFIED'));
  }

  private delete(res: ServerResponse, namespace: string, name: string, body: Record<string, unknown> | undefined): void {
    const current = this.objects.get(`${namespace}/${name}`);
    if (!current) return status(res, 404, 'NotFound', `wanpolicies.wansteer.io "${name}" not found`);
    const wanted = (body?.preconditions as { resourceVersion?: string } | undefined)?.resourceVersion;
    if (wanted !== undefined && wanted !== current.metadata.resourceVersion) {
      return status(res, 409, 'Conflict', `Precondition failed: ResourceVersion in precondition: ${wanted}, the object's: ${current.metadata.resourceVersion}`);
    }
    this.remove(namespace, name);
    json(res, 200, { kind: 'Status', apiVersion: 'v1', status: 'Success', details: { name, kind: 'wanpolicies' } });
  }

  private invalid(object: WanPolicyObject): string | undefined {
    const errors = structuralErrors(this.specSchema, object.spec, 'spec');
    return errors.length > 0 ? `WanPolicy.wansteer.io "${object.metadata.name}" is invalid: ${errors.join(', ')}` : undefined;
  }
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

