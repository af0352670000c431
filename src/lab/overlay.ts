/**
 * The overlay profile: an edge site and a cloud site joined by two WAN links whose addresses are
 * valid on both (tunnels, a private WAN). Redirect at the WAN link's egress is the whole story
 * here; the internet profile (internet.ts) is the one with NAT and a per-ISP address.
 *
 *   edge ns                                   cloud ns
 *   wan0 10.10.1.1/24 fd10:1::1/64  ──veth──  c0 10.10.1.2  fd10:1::2
 *   wan1 10.10.2.1/24 fd10:2::1/64  ──veth──  c1 10.10.2.2  fd10:2::2
 *   default route via wan0                    service 10.20.0.1, fd20::1 (on lo)
 *
 * The cloud answers on whichever link a packet came in by (replies go back by the edge's
 * connected subnets), and has reverse-path filtering off so steered packets are accepted.
 *
 * With `{ pods: true }` the edge is a node as a CNI and kube-proxy leave it: a pod on a bridge
 * behind the node's masquerade, and NodePorts DNATed to it — one with DNAT alone (a Service with
 * externalTrafficPolicy: Local), one also masqueraded towards the pod (Cluster, the default):
 *
 *   pod 10.244.0.10 fd44::10 ── cni0 10.244.0.1 fd44::1 ── edge (masquerade; :30080, :30081 -> pod:8080)
 *
 * The edge then accepts packets for any of its addresses on any link (rp_filter off), as an edge
 * must when the cloud end sends replies back by the link a flow arrived on.
 */
import { fromRoot } from '../config/paths.js';
import { DelayLine } from './delay-line.js';
import { ipBatch, Lab, nextTag, sh } from './namespaces.js';

/** The delay line (scripts/delay-line.py) and the tc program it turns frames around with. */
const DELAY_TOOL = fromRoot('scripts/delay-line.py');
const DELAY_PROGRAM = fromRoot('build/bpf/lab_delay.bpf.o');

export const EDGE = {
  wan0: { v4: '10.10.1.1', v6: 'fd10:1::1' },
  wan1: { v4: '10.10.2.1', v6: 'fd10:2::1' },
};
export const CLOUD = {
  c0: { v4: '10.10.1.2', v6: 'fd10:1::2' },
  c1: { v4: '10.10.2.2', v6: 'fd10:2::2' },
  service: { v4: '10.20.0.1', v6: 'fd20::1' },
};

/** The cloud's end of each of the edge's links. */
const FAR_END = { wan0: 'c0', wan1: 'c1' } as const;
/** The pod behind the edge's masquerade (`{ pods: true }`), and its bridge. */
export const EDGE_POD = {
  cidr4: '10.244.0.0/24', gateway4: '10.244.0.1', cidr6: 'fd44::/64', gateway6: 'fd44::1',
  v4: '10.244.0.10', v6: 'fd44::10',
};
/** NodePorts on the edge's WAN addresses, DNATed to the pod's POD_SERVICE_PORT. */
export const NODE_PORTS = { local: 30080, cluster: 30081 };
export const POD_SERVICE_PORT = 8080;

export interface WanLabOptions {
  /** A pod behind the edge's masquerade, with NodePorts DNATed to it. */
  pods?: boolean;
}

export class WanLab extends Lab {
  readonly edge: string;
  readonly cloud: string;
  /** The pod's namespace (with `{ pods: true }`). */
  readonly pod: string | undefined;

  private constructor(tag: string, opts: WanLabOptions) {
    super(tag);
    this.edge = this.nsName('e');
    this.cloud = this.nsName('c');
    this.pod = opts.pods ? this.nsName('p') : undefined;
  }

  /** Build a lab; names carry this process's pid, so a lab of a dead process is reaped. */
  static create(tag = nextTag(), opts: WanLabOptions = {}): WanLab {
    return Lab.built(new WanLab(tag, opts), (lab) => lab.build());
  }

  private build(): void {
    const { edge: e, cloud: c } = this;
    this.addNamespace(e);
    this.addNamespace(c);
    // Create the veths in the edge ns and move the far ends to the cloud.
    ipBatch(e, [
      `link add wan0 type veth peer name c0 netns ${c}`,
      `link add wan1 type veth peer name c1 netns ${c}`,
      `addr add ${EDGE.wan0.v4}/24 dev wan0`,
      `addr add ${EDGE.wan1.v4}/24 dev wan1`,
      `addr add ${EDGE.wan0.v6}/64 dev wan0 nodad`,
      `addr add ${EDGE.wan1.v6}/64 dev wan1 nodad`,
      'link set wan0 up',
      'link set wan1 up',
      `route add default via ${CLOUD.c0.v4} dev wan0`,
      `route add default via ${CLOUD.c0.v6} dev wan0`,
    ]);
    ipBatch(c, [
      `addr add ${CLOUD.c0.v4}/24 dev c0`,
      `addr add ${CLOUD.c1.v4}/24 dev c1`,
      `addr add ${CLOUD.c0.v6}/64 dev c0 nodad`,
      `addr add ${CLOUD.c1.v6}/64 dev c1 nodad`,
      `addr add ${CLOUD.service.v4}/32 dev lo`,
      `addr add ${CLOUD.service.v6}/128 dev lo nodad`,
      'link set c0 up',
      'link set c1 up',
    ]);
    this.sysctl(c, ...['all', 'default', 'c0', 'c1'].map((key) => `net.ipv4.conf.${key}.rp_filter=0`));
    // A carrier loss is c0/c1 set down: their IPv6 addresses (the edge's IPv6 next hops) stay.
    this.sysctl(c, 'net.ipv6.conf.c0.keep_addr_on_down=1', 'net.ipv6.conf.c1.keep_addr_on_down=1');
    if (this.pod) this.buildPod(this.pod);
  }

  /** A pod on a bridge, as a CNI's bridge plugin wires it, and what kube-proxy does for NodePorts. */
  private buildPod(pod: string): void {
    this.addNamespace(pod);
    ipBatch(this.edge, [
      'link add cni0 type bridge',
      `addr add ${EDGE_POD.gateway4}/24 dev cni0`,
      `addr add ${EDGE_POD.gateway6}/64 dev cni0 nodad`,
      'link set cni0 up',
      `link add vpod type veth peer name eth0 netns ${pod}`,
      'link set vpod master cni0',
      'link set vpod up',
    ]);
    ipBatch(pod, [
      `addr add ${EDGE_POD.v4}/24 dev eth0`,
      `addr add ${EDGE_POD.v6}/64 dev eth0 nodad`,
      'link set eth0 up',
      `route add default via ${EDGE_POD.gateway4}`,
      `route add default via ${EDGE_POD.gateway6}`,
    ]);
    this.sysctl(this.edge, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', ...['all', 'default', 'wan0', 'wan1'].map((key) => `net.ipv4.conf.${key}.rp_filter=0`));
    const { local, cluster } = NODE_PORTS;
    this.exec(this.edge, ['nft', '-f', '-'], [
      'table inet lab_cni {',
      '  chain prerouting {',
      '    type nat hook prerouting priority dstnat; policy accept;',
      // kube-proxy marks what it must masquerade towards the pod (externalTrafficPolicy: Cluster)
      `    iifname { "wan0", "wan1" } tcp dport ${cluster} meta mark set 0x4000`,
      `    iifname { "wan0", "wan1" } tcp dport { ${local}, ${cluster} } dnat ip to ${EDGE_POD.v4}:${POD_SERVICE_PORT}`,
      `    iifname { "wan0", "wan1" } tcp dport { ${local}, ${cluster} } dnat ip6 to [${EDGE_POD.v6}]:${POD_SERVICE_PORT}`,
      '  }',
      '  chain postrouting {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      '    meta mark 0x4000 masquerade',
      `    ip saddr ${EDGE_POD.cidr4} ip daddr != ${EDGE_POD.cidr4} masquerade`,
      `    ip6 saddr ${EDGE_POD.cidr6} ip6 daddr != ${EDGE_POD.cidr6} masquerade`,
      '  }',
      '}',
    ].join('\n') + '\n');
  }

  /**
   * A delay line on the frames a device sends (this kernel has no sch_netem): see
   * scripts/delay-line.py. Resolves once it is ready; killed with the lab.
   */
  async delayLine(ns: string, dev: string): Promise<DelayLine> {
    const child = this.spawn(ns, ['python3', DELAY_TOOL, dev, DELAY_PROGRAM]);
    const line = new DelayLine(child);
    await line.ready;
    return line;
  }

  /**
   * Lose packets on the path of `link`, edge -> cloud: all of them (a blackhole, carrier up) or a
   * random share; null removes the fault. `family` limits it to IPv4 (`ip`) or IPv6 (`ip6`).
   * Returns when the fault took effect, with the moment it was ordered (before the nft command,
   * as the benchmarks take a fault's time): a gap measured from it is never shortened by the
   * command's own run time.
   *
   * The packets are dropped where they arrive, on the netdev ingress hook of the link's far end
   * (the cloud's c0/c1): that sees everything the edge sent over the link, steered or not. The
   * edge's own egress hook would not: nftables skips it for packets a tc program redirected to
   * the device (bpf_redirect_neigh), so a drop there hits the probes and not the sessions. (This
   * kernel has no sch_netem.) ARP and IPv6 neighbour discovery pass: the far end's router still
   * answers for itself, as one whose upstream died does — the lab's blackhole is a dead path, not
   * a dead next hop (that is carrier loss, setCloudLink).
   */
  drop(link: 'wan0' | 'wan1', percent: number | null, family?: 'ip' | 'ip6'): bigint {
    const ordered = process.hrtime.bigint();
    const table = `wsfault_${link}`;
    const dev = FAR_END[link];
    const which = family ? `meta protocol ${family}` : 'meta protocol { ip, ip6 }';
    const share = percent !== null && percent < 100 ? ` numgen random mod 100 < ${percent}` : '';
    const script = [
      `add table netdev ${table}`,
      `delete table netdev ${table}`,
      ...(percent === null
        ? []
        : [
            `add table netdev ${table}`,
            `add chain netdev ${table} path { type filter hook ingress device ${dev} priority -500; policy accept; }`,
            `add rule netdev ${table} path icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept`,
            `add rule netdev ${table} path ${which}${share} drop`,
          ]),
    ];
    this.exec(this.cloud, ['nft', '-f', '-'], script.join('\n') + '\n');
    return ordered;
  }

  /** Set a link down or up from the cloud side (carrier loss on the edge's wanN). */
  setCloudLink(dev: 'c0' | 'c1', up: boolean): void {
    sh('ip', ['-n', this.cloud, 'link', 'set', dev, up ? 'up' : 'down']);
  }
}
