/**
 * The real-Envoy rig shared by envoy.test.ts and contract.test.ts: a two-link lab; in its edge
 * namespace the real `wansteer agent` (kernel datapath on wan0/wan1), the report tap in front of
 * it (report-tap.mjs), the inbound app (port 8080); in the cloud the cloud service (port 80 on
 * 10.20.0.1 and fd20::1); certificates made with openssl; and one Envoy per placement, each
 * built from `wansteer render envoyfilter` by the Istio stand-in (src/lab/envoy-mesh.ts).
 *
 *   Envoy            listeners (edge namespace)                         upstream
 *   sidecar-inbound  10.10.1.1:15006, [fd10:1::1]:15006, TLS :15443      the app, 127.0.0.1:8080
 *   sidecar-outbound 10.10.1.1:15001 cloud-service routes,               the cloud service
 *                    :15002 / [fd10:1::1]:15003 reviews routes           (reviews v2: mark class)
 *   gateway          10.10.1.1:18080 cloud-service routes                the cloud service
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseAllDocuments } from 'yaml';
import { runRender } from '../../src/cli/render.js';
import type { Reporter } from '../../src/cli/render/envoy-filter.js';
import type { Placement } from '../../src/cli/render/lua-source.js';
import { fromRoot } from '../../src/config/paths.js';
import { CLOUD, EDGE, LabEnvoy, meshBootstrap, routesFromVirtualService, WanLab, type ListenerSpec, type MeshSpec } from '../../src/lab/index.js';
import { DirectoryRuleSource } from '../../src/routes/directory-source.js';
import { RuleSet } from '../../src/routes/rule-set.js';
import type { VirtualService } from '../../src/routes/model.js';
import { spawnExampleAgent, type SpawnedAgent } from '../helpers/example-agent.js';

export const AGENT_PORT = 9090;
export const TAP_PORT = 9190;
export const APP_PORT = 8080;
export const SERVICE_PORT = 80;
/** reviews, the mark class's service, on ports of its own (IPv4, IPv6) so its packets can be counted apart. */
export const REVIEWS_PORT = { v4: 9080, v6: 9081 };
export const CLOUD_SERVICE = 'cloud-service.cloud.svc.cluster.local';
export const REVIEWS = 'reviews.default.svc.cluster.local';
export const TIMEOUT_MS = 200;
export const STEER_LABELS = { 'wansteer.io/steer': 'true' };
export const INBOUND = { v4: { host: EDGE.wan0.v4, port: 15006 }, v6: { host: EDGE.wan0.v6, port: 15006 }, tls: { host: EDGE.wan0.v4, port: 15443 } };
export const OUTBOUND = { cloud: { host: EDGE.wan0.v4, port: 15001 }, reviews4: { host: EDGE.wan0.v4, port: 15002 }, reviews6: { host: EDGE.wan0.v6, port: 15003 } };
export const GATEWAY = { host: EDGE.wan0.v4, port: 18080 };
/** The client certificate's identity: Istio's form, namespace `shop`. */
export const CLIENT_SPIFFE = 'spiffe://cluster.local/ns/shop/sa/frontend';

const TAP = fromRoot('test/envoy/report-tap.mjs');
const CLIENT = fromRoot('test/envoy/http-client.mjs');
const NS_HTTP = fromRoot('scripts/ns-http.mjs');

export interface TapEvent {
  event: 'ready' | 'mode' | 'report' | 'answered';
  mode?: string;
  id?: number;
  caller?: string;
  path?: string;
  contentType?: string;
  body?: string;
  status?: number;
  /** A batch's number, on each of its sessions' report events. */
  batch?: number;
  agent?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  at: number;
}

export interface ClientRequest {
  authority: string;
  path: string;
  method?: string;
  headers?: [string, string][];
  pause?: boolean;
}

export interface ClientConnection {
  host: string;
  port: number;
  protocol: 'h1' | 'h2';
  tls?: boolean;
  localAddress?: string;
  localPort?: number;
  requests: ClientRequest[];
}

export interface ConnectionResult {
  local: string;
  remote: string;
  sockets: number;
  responses: { status: number; body: string; ms: number; at: number }[];
  error?: string;
}

/** `n` requests of one user to the cloud service. */
export function requestsOf(user: string, n: number, authority = CLOUD_SERVICE): ClientRequest[] {
  return Array.from({ length: n }, (_, i) => ({ authority, path: `/orders/${i}`, headers: [['end-user', user]] as [string, string][] }));
}

export class EnvoyRig {
  readonly events: TapEvent[] = [];
  readonly envoys = new Map<Placement, LabEnvoy>();
  /** The rendered objects per placement, as YAML documents parsed to plain data. */
  readonly rendered = new Map<Placement, unknown[]>();
  private tap!: ChildProcess;
  agent!: SpawnedAgent;
  private virtualServices: VirtualService[] = [];

  private constructor(
    readonly lab: WanLab,
    readonly dir: string,
    /** The session reporter its Envoys are rendered with (the native one needs the module built). */
    readonly reporter: Reporter,
  ) {}

  static async create(tag: string, options: { reporter?: Reporter } = {}): Promise<EnvoyRig> {
    const rig = new EnvoyRig(WanLab.create(tag), mkdtempSync(join(tmpdir(), 'wansteer-envoy-rig-')), options.reporter ?? 'lua');
    try {
      await rig.build(tag);
    } catch (err) {
      await rig.destroy();
      throw err;
    }
    return rig;
  }

  private async build(tag: string): Promise<void> {
    const { lab } = this;
    this.makeCertificates();
    const ruleSet = new RuleSet();
    await new DirectoryRuleSource({ directory: fromRoot('examples/rules'), ruleSet }).load();
    this.virtualServices = ruleSet.virtualServices();
    await lab.spawnReady(lab.edge, [process.execPath, NS_HTTP, 'serve', String(APP_PORT)], 'the inbound app');
    await lab.spawnReady(lab.cloud, [process.execPath, NS_HTTP, 'serve', String(SERVICE_PORT)], 'the cloud service');
    for (const port of [REVIEWS_PORT.v4, REVIEWS_PORT.v6]) await lab.spawnReady(lab.cloud, [process.execPath, NS_HTTP, 'serve', String(port)], 'reviews');
    this.agent = await spawnExampleAgent(lab, { port: AGENT_PORT, pinDir: `/sys/fs/bpf/wst-${process.pid}-${tag}` });
    this.tap = lab.spawn(lab.edge, [process.execPath, TAP, String(TAP_PORT), EDGE.wan0.v4, EDGE.wan0.v6, String(AGENT_PORT)]);
    createInterface({ input: this.tap.stdout! }).on('line', (line) => this.events.push(JSON.parse(line) as TapEvent));
    await this.waitFor(() => this.events.some((e) => e.event === 'ready'), 'the report tap');
  }

  /** CA, the inbound listener's certificate, and a client certificate with a SPIFFE URI SAN. */
  private makeCertificates(): void {
    const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: this.dir, stdio: 'pipe' });
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=wansteer test CA', '-keyout', 'ca.key', '-out', 'ca.crt');
    const leaf = (name: string, san: string, usage: string) => {
      writeFileSync(join(this.dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=${usage}\nbasicConstraints=CA:FALSE\n`);
      openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
      openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.crt`);
    };
    leaf('server', `DNS:${CLOUD_SERVICE},IP:${EDGE.wan0.v4}`, 'serverAuth');
    leaf('client', `URI:${CLIENT_SPIFFE}`, 'clientAuth');
  }

  file(name: string): string {
    return join(this.dir, name);
  }

  /** `wansteer render envoyfilter` for a placement, reporting to the tap on both families' addresses. */
  async render(placement: Placement, extra: string[] = [], reporter: Reporter = this.reporter): Promise<unknown[]> {
    let out = '';
    let err = '';
    const argv = [
      'envoyfilter',
      '--rules', fromRoot('examples/rules'),
      '--policies', fromRoot('examples/policies.yaml'),
      '--mark-class', `jason-on-fibre=${REVIEWS}/v2`,
      '--context', placement,
      '--agent-host', EDGE.wan0.v4,
      '--agent-host', EDGE.wan0.v6,
      '--agent-port', String(TAP_PORT),
      '--timeout-ms', String(TIMEOUT_MS),
      '--reporter', reporter,
      ...extra,
    ];
    const code = await runRender(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
    if (code !== 0) throw new Error(`render failed (${code}): ${err}`);
    return parseAllDocuments(out).map((d) => d.toJS() as unknown);
  }

  /** The lab's listeners and clusters for a placement (see the table above). */
  meshSpec(placement: Placement, adminPort: number): MeshSpec {
    const vs = (name: string) => this.virtualServices.find((v) => v.name === name)!;
    const service = (port: number) => (host: string, subset: string | undefined) => `outbound|${port}|${subset ?? ''}|${host.includes('.') ? host : `${host}.default.svc.cluster.local`}`;
    const cloudRoutes = routesFromVirtualService(vs('cloud-service'), service(SERVICE_PORT));
    const clusters = [
      { name: `outbound|${SERVICE_PORT}||${CLOUD_SERVICE}`, address: CLOUD.service.v4, port: SERVICE_PORT },
      // reviews: v4 on service port 80, the same service's v6 endpoints as port 8080 (a name must be unique).
      ...['v1', 'v2'].flatMap((subset) => [
        { name: `outbound|80|${subset}|${REVIEWS}`, address: CLOUD.service.v4, port: REVIEWS_PORT.v4 },
        { name: `outbound|8080|${subset}|${REVIEWS}`, address: CLOUD.service.v6, port: REVIEWS_PORT.v6 },
      ]),
    ];
    let listeners: ListenerSpec[];
    if (placement === 'sidecar-inbound') {
      // Istio names an inbound sidecar's route "default": it says nothing about the rules.
      const routes = [{ name: 'default', cluster: `inbound|${APP_PORT}||` }];
      listeners = [
        { name: 'inbound-v4', context: 'SIDECAR_INBOUND', address: INBOUND.v4.host, port: INBOUND.v4.port, routes },
        { name: 'inbound-v6', context: 'SIDECAR_INBOUND', address: INBOUND.v6.host, port: INBOUND.v6.port, routes },
        {
          name: 'inbound-tls', context: 'SIDECAR_INBOUND', address: INBOUND.tls.host, port: INBOUND.tls.port, routes,
          tls: { cert: this.file('server.crt'), key: this.file('server.key'), ca: this.file('ca.crt') },
        },
      ];
      clusters.push({ name: `inbound|${APP_PORT}||`, address: '127.0.0.1', port: APP_PORT });
    } else if (placement === 'sidecar-outbound') {
      listeners = [
        { name: 'outbound-cloud', context: 'SIDECAR_OUTBOUND', address: OUTBOUND.cloud.host, port: OUTBOUND.cloud.port, routes: cloudRoutes },
        { name: 'outbound-reviews4', context: 'SIDECAR_OUTBOUND', address: OUTBOUND.reviews4.host, port: OUTBOUND.reviews4.port, routes: routesFromVirtualService(vs('reviews'), service(80)) },
        { name: 'outbound-reviews6', context: 'SIDECAR_OUTBOUND', address: OUTBOUND.reviews6.host, port: OUTBOUND.reviews6.port, routes: routesFromVirtualService(vs('reviews'), service(8080)) },
      ];
    } else {
      listeners = [{ name: 'gateway', context: 'GATEWAY', address: GATEWAY.host, port: GATEWAY.port, routes: cloudRoutes }];
    }
    return { role: placement === 'gateway' ? 'gateway' : 'sidecar', workloadLabels: STEER_LABELS, adminPort, listeners, clusters };
  }

  /** Start the Envoy of a placement from its render (kept in `rendered`). */
  async startEnvoy(placement: Placement, adminPort: number): Promise<LabEnvoy> {
    const docs = await this.render(placement);
    this.rendered.set(placement, docs);
    const envoy = await LabEnvoy.start(this.lab, this.lab.edge, meshBootstrap(docs, this.meshSpec(placement, adminPort)), { adminPort });
    this.envoys.set(placement, envoy);
    return envoy;
  }

  /** Set the tap's behaviour; resolves once it is in force. */
  async tapMode(mode: { mode: 'forward' } | { mode: 'slow'; ms: number } | { mode: 'status'; status: number } | { mode: 'down' }): Promise<void> {
    const before = this.events.length;
    this.tap.stdin!.write(JSON.stringify(mode) + '\n');
    await this.waitFor(() => this.events.slice(before).some((e) => e.event === 'mode' && e.mode === mode.mode), `tap mode ${mode.mode}`);
  }

  /**
   * Reports that arrived since event index `from`, parsed, with who sent them (a batch's sessions
   * one by one, see report-tap.mjs).
   */
  reportsSince(from: number): { id: number; caller: string; path: string; batch?: number; report: any; raw: string; at: number }[] { // eslint-disable-line @typescript-eslint/no-explicit-any
    return this.events
      .slice(from)
      .filter((e) => e.event === 'report')
      .map((e) => ({ id: e.id!, caller: e.caller!, path: e.path!, ...(e.batch !== undefined ? { batch: e.batch } : {}), report: JSON.parse(e.body!), raw: e.body!, at: e.at }));
  }

  answered(id: number): TapEvent | undefined {
    return this.events.find((e) => e.event === 'answered' && e.id === id);
  }

  /**
   * Run client connections in a namespace, one after the other. A request marked `pause` waits
   * for `onPause` (called with the results so far unknown, so with nothing) to resolve.
   */
  async clients(ns: string, connections: ClientConnection[], onPause?: () => Promise<void>): Promise<ConnectionResult[]> {
    const job = {
      connections: connections.map((c) => ({
        ...c,
        tls: c.tls ? { ca: this.file('ca.crt'), cert: this.file('client.crt'), key: this.file('client.key'), servername: CLOUD_SERVICE } : undefined,
      })),
    };
    const child = this.lab.spawn(ns, [process.execPath, CLIENT]);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin!.write(JSON.stringify(job) + '\n');
    let result: ConnectionResult[] | undefined;
    for await (const line of createInterface({ input: child.stdout! })) {
      if (line === '{"event":"paused"}') {
        await onPause?.();
        child.stdin!.write('go\n');
      } else if (line.startsWith('[')) {
        result = JSON.parse(line) as ConnectionResult[];
      }
    }
    if (!result) throw new Error(`the HTTP client failed: ${stderr}`);
    return result;
  }

  /** Poll `ok` until it holds; a generous deadline, since the machine is shared. */
  async waitFor(ok: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async destroy(): Promise<void> {
    for (const envoy of this.envoys.values()) envoy.stop();
    await this.agent?.stop().catch(() => {});
    this.lab.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
