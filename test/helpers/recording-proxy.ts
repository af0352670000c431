/**
 * A loopback proxy in front of fake API servers: requests go to the first route whose path prefix
 * matches (one kubeconfig server for VirtualServices and WanPolicies), each one recorded as
 * method, path and whether it is a watch. `down` cuts connections, as an API server out of reach.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { writeFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { FAKE_TOKEN } from './fake-kube-api.js';

/** The port of a server URL, for the proxy's routes. */
export const portOf = (url: string): number => Number(new URL(url).port);

export interface Recorded {
  readonly method: string;
  readonly path: string;
  readonly watch: boolean;
}

export class RecordingProxy {
  /** While true, every connection is cut at once, as when the API server cannot be reached. */
  down = false;
  readonly requests: Recorded[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly routes: () => { prefix: string; port: number }[]) {
    this.server = createServer((req, res) => this.forward(req, res));
    this.server.on('connection', (s) => {
      if (this.down) {
        s.destroy();
        return;
      }
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  /** Cut every open connection (watches too), e.g. to go down. */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  /**
   * Point this process's client-node at the proxy, the way kubectl finds a cluster: a kubeconfig
   * in `dir` named by KUBECONFIG, and the in-cluster variables absent.
   */
  useAsKubeconfig(dir: string): void {
    writeFileSync(
      join(dir, 'kubeconfig'),
      `apiVersion: v1\nkind: Config\nclusters: [{name: fake, cluster: {server: "${this.url}", insecure-skip-tls-verify: true}}]\nusers: [{name: agent, user: {token: ${FAKE_TOKEN}}}]\ncontexts: [{name: fake, context: {cluster: fake, user: agent}}]\ncurrent-context: fake\n`,
    );
    process.env.KUBECONFIG = join(dir, 'kubeconfig');
    delete process.env.KUBERNETES_SERVICE_HOST;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, watch: url.searchParams.get('watch') === 'true' });
    const route = this.routes().find((r) => url.pathname.startsWith(r.prefix));
    if (!route) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
      return;
    }
    const upstream = httpRequest({ host: '127.0.0.1', port: route.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      res.flushHeaders();
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  }
}
