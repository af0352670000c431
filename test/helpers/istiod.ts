/**
 * A real istiod (pilot-discovery, built by `scripts/setup-k8s.sh` into
 * /var/cache/wansteer/istio/<version>/bin, version in scripts/k8s-versions.sh) reading a real
 * kube-apiserver (KubeControlPlane), and the Envoy bootstrap of a sidecar that takes its
 * configuration from it, as pilot-agent would write it (Istio's
 * tools/packaging/common/envoy_bootstrap.json, trimmed to what istiod reads).
 *
 *   const istiod = await Istiod.start(cp);               // plaintext xDS on loopback, ready
 *   const bridge = await istiod.unixBridge(path);        // the xDS port as a Unix socket, for an
 *                                                        // Envoy in a network namespace
 *   LabEnvoy.start(lab, ns, sidecarBootstrap({ ... xdsSocket: path }), { adminPort });
 *   await istiod.stop();
 *
 * What is left out, and why: no CA (ENABLE_CA_SERVER=false, PILOT_CERT_PROVIDER=none) and no TLS
 * ports (xDS on the plaintext gRPC port, webhooks multiplexed on the HTTP port), so the test
 * makes no certificates; the mesh config turns off what the stock Envoy cannot load, since it is
 * not istio-proxy: the metadata exchange and ALPN filters (istio.metadata_exchange, istio.alpn
 * are istio-proxy's own extensions), tracing, and auto mTLS (its SDS secrets come from
 * pilot-agent). A PeerAuthentication DISABLE makes the inbound chains plaintext for the same
 * reason. None of this touches the EnvoyFilter machinery under test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts, PILOT_DISCOVERY, type KubeControlPlane } from './kube-control-plane.js';

/** The Istio line the pinned istio.io/istio commit belongs to (scripts/k8s-versions.sh). */
export const ISTIO_LINE = '1.31';

const MESH_CONFIG = `# istiod's mesh config for the tests (see test/helpers/istiod.ts for why each line)
rootNamespace: istio-system
trustDomain: cluster.local
enableTracing: false
enableAutoMtls: false
accessLogFile: ""
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
`;

export class Istiod {
  private readonly bridges: Server[] = [];
  private readonly killAll = (): void => {
    this.child.kill('SIGKILL');
  };

  private constructor(
    readonly dir: string,
    private readonly child: ChildProcess,
    /** 127.0.0.1:PORT of the plaintext xDS (gRPC) server. */
    readonly xdsAddress: { host: string; port: number },
    /** http://127.0.0.1:PORT: /ready, /debug/… */
    readonly httpUrl: string,
    readonly logFile: string,
  ) {
    process.once('exit', this.killAll);
  }

  /** Starts pilot-discovery against the control plane (as its admin) and waits for /ready. */
  static async start(cp: KubeControlPlane, env: Record<string, string> = {}): Promise<Istiod> {
    const dir = mkdtempSync(join(tmpdir(), 'wansteer-istiod-'));
    const [grpcPort = 0, httpPort = 0] = await freePorts(2);
    const kubeconfig = cp.writeKubeconfig(cp.adminConfig(), join(dir, 'kubeconfig'));
    writeFileSync(join(dir, 'mesh.yaml'), MESH_CONFIG);
    writeFileSync(join(dir, 'meshNetworks.yaml'), 'networks: {}\n');
    const logFile = join(dir, 'istiod.log');
    const out = createWriteStream(logFile, { flags: 'a' });
    const child = spawn(PILOT_DISCOVERY, [
      'discovery',
      `--kubeconfig=${kubeconfig}`,
      `--meshConfig=${join(dir, 'mesh.yaml')}`,
      `--networksConfig=${join(dir, 'meshNetworks.yaml')}`,
      `--grpcAddr=127.0.0.1:${grpcPort}`,
      `--httpAddr=127.0.0.1:${httpPort}`,
      // No TLS listeners: secure xDS and the webhooks off (multiplexed on httpAddr), monitoring too.
      '--secureGRPCAddr=', '--httpsAddr=', '--monitoringAddr=',
      '--domain=cluster.local',
      '--keepaliveMaxServerConnectionAge=30m',
      '--log_output_level=default:info',
    ], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        POD_NAMESPACE: 'istio-system',
        POD_NAME: 'istiod-test',
        REVISION: 'default',
        ENABLE_CA_SERVER: 'false',
        PILOT_CERT_PROVIDER: 'none',
        PILOT_ENABLE_METADATA_EXCHANGE: 'false',
        PILOT_ENABLE_ALPN_FILTER: 'false',
        PILOT_ENABLE_GATEWAY_API: 'false',
        INJECTION_WEBHOOK_CONFIG_NAME: '',
        VALIDATION_WEBHOOK_CONFIG_NAME: '',
        // Pushes follow a change within ~100 ms, not the default debounce's up to 10 s.
        PILOT_DEBOUNCE_AFTER: '50ms',
        PILOT_DEBOUNCE_MAX: '1s',
        ...env,
      },
    });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    const istiod = new Istiod(dir, child, { host: '127.0.0.1', port: grpcPort }, `http://127.0.0.1:${httpPort}`, logFile);
    try {
      await istiod.waitReady(180_000);
    } catch (err) {
      await istiod.stop();
      throw err;
    }
    return istiod;
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await fetch(`${this.httpUrl}/ready`).catch(() => undefined);
      if (res?.status === 200) return;
      if (this.child.exitCode !== null || this.child.signalCode !== null || Date.now() > deadline) {
        throw new Error(`istiod ${this.child.exitCode !== null ? `exited (${this.child.exitCode})` : `not ready after ${timeoutMs} ms`}:\n${this.logTail()}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** The last lines of istiod's log, for failure messages. */
  logTail(lines = 40): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** istiod's own view: GET /debug/<what> on its HTTP port, as JSON. */
  async debug(what: string): Promise<unknown> {
    const res = await fetch(`${this.httpUrl}/debug/${what}`);
    return res.json();
  }

  /**
   * The plaintext xDS port as a Unix socket at `path`: a socket file is reachable from any network
   * namespace, so an Envoy in a lab namespace gets xDS from istiod on the host's loopback (as
   * istio-proxy gets it from pilot-agent's XDS socket).
   */
  async unixBridge(path: string): Promise<void> {
    const server = createServer((downstream) => {
      const upstream = connect(this.xdsAddress.port, this.xdsAddress.host);
      downstream.pipe(upstream).pipe(downstream);
      const close = () => {
        downstream.destroy();
        upstream.destroy();
      };
      downstream.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve));
    this.bridges.push(server);
  }

  async stop(): Promise<void> {
    for (const server of this.bridges.splice(0)) {
      server.close();
    }
    const child = this.child;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    process.off('exit', this.killAll);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface SidecarIdentity {
  /** The pod's name and namespace, as the node id and metadata name them. */
  readonly pod: string;
  readonly namespace: string;
  readonly ip: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly serviceAccount?: string;
}

/** Envoy's node id for a sidecar, as pilot-agent makes it: `sidecar~IP~POD.NS~NS.svc.cluster.local`. */
export function sidecarNodeId(id: SidecarIdentity): string {
  return `sidecar~${id.ip}~${id.pod}.${id.namespace}~${id.namespace}.svc.cluster.local`;
}

/**
 * The bootstrap of a sidecar Envoy fed by istiod over ADS (Istio's envoy_bootstrap.json: the
 * node with the metadata istiod reads, ADS for LDS and CDS, the xds-grpc cluster), with its admin
 * on 127.0.0.1:adminPort and xDS over the Unix socket `xdsSocket` (Istiod.unixBridge).
 */
export function sidecarBootstrap(id: SidecarIdentity, options: { adminPort: number; xdsSocket: string }): object {
  const app = id.labels.app ?? id.pod;
  return {
    node: {
      id: sidecarNodeId(id),
      cluster: `${app}.${id.namespace}`,
      metadata: {
        // What pilot-agent puts there (pkg/model/proxy.go NodeMetadata) and istiod uses.
        ISTIO_VERSION: `${ISTIO_LINE}.0`,
        CLUSTER_ID: 'Kubernetes',
        NAMESPACE: id.namespace,
        NAME: id.pod,
        WORKLOAD_NAME: app,
        OWNER: `kubernetes://apis/v1/namespaces/${id.namespace}/pods/${id.pod}`,
        SERVICE_ACCOUNT: id.serviceAccount ?? 'default',
        LABELS: id.labels,
        INSTANCE_IPS: id.ip,
        INTERCEPTION_MODE: 'REDIRECT',
        MESH_ID: 'cluster.local',
        ENVOY_STATUS_PORT: 15021,
        ENVOY_PROMETHEUS_PORT: 15090,
      },
    },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: options.adminPort } } },
    dynamic_resources: {
      lds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
      cds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
      ads_config: {
        api_type: 'GRPC',
        set_node_on_first_message_only: true,
        transport_api_version: 'V3',
        grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }],
      },
    },
    static_resources: {
      clusters: [
        {
          name: 'xds-grpc',
          type: 'STATIC',
          connect_timeout: '1s',
          load_assignment: {
            cluster_name: 'xds-grpc',
            endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: options.xdsSocket } } } }] }],
          },
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
        },
      ],
    },
  };
}
