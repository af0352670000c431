/**
 * The internet profile: an edge node built like a real one with two ISPs. Each ISP gives the
 * edge its own subnet and drops packets whose source is not its subscriber's (BCP 38); pods sit
 * behind the node's masquerade as a CNI puts them; a NodePort-style DNAT lets a cloud client
 * reach a pod; the cloud is a public address reachable through both ISPs.
 *
 *   pod0 10.244.0.10 fd44::10 ─┐                                    ┌─ isp0 ─ 192.0.2.0/24, 2001:db8:a::/64 ─┐
 *   pod1 10.244.0.11 fd44::11 ─┴─ cni0 ─ edge (masquerade, DNAT) ───┤   (wan0 .2, gateway .1)                  ├─ cloud 203.0.113.10
 *                                                                   └─ isp1 ─ 198.51.100.0/24, 2001:db8:b::/64 ┘        2001:db8:c::10
 *
 * The edge's main table routes by isp0 (its default route); a packet leaving by isp1 with isp0's
 * address is dropped there, as a real ISP would. Byte counters per link and direction sit at
 * the ISPs (IspCounters), where a user's bytes are paid for. Faults are made on the path, in
 * the ISP: carrier loss (its end of the line goes down) and a blackhole (it forwards nothing).
 */
import { ipBatch, Lab, nextTag, sh } from './namespaces.js';

export type IspName = 'isp0' | 'isp1';
export type WanName = 'wan0' | 'wan1';

export interface IspPlan {
  /** The edge's device on this ISP's line. */
  wan: WanName;
  subnet4: string;
  edge4: string;
  gateway4: string;
  subnet6: string;
  edge6: string;
  gateway6: string;
  /** The ISP's transit to the cloud: [ISP end, cloud end], per family. */
  transit4: [string, string];
  transit6: [string, string];
}

export const ISPS: Record<IspName, IspPlan> = {
  isp0: {
    wan: 'wan0', subnet4: '192.0.2.0/24', edge4: '192.0.2.2', gateway4: '192.0.2.1',
    subnet6: '2001:db8:a::/64', edge6: '2001:db8:a::2', gateway6: '2001:db8:a::1',
    transit4: ['100.64.0.1', '100.64.0.2'], transit6: ['2001:db8:f0::1', '2001:db8:f0::2'],
  },
  isp1: {
    wan: 'wan1', subnet4: '198.51.100.0/24', edge4: '198.51.100.2', gateway4: '198.51.100.1',
    subnet6: '2001:db8:b::/64', edge6: '2001:db8:b::2', gateway6: '2001:db8:b::1',
    transit4: ['100.64.1.1', '100.64.1.2'], transit6: ['2001:db8:f1::1', '2001:db8:f1::2'],
  },
};

/** The ISP a WAN link reaches. */
export const ISP_OF: Record<WanName, IspName> = { wan0: 'isp0', wan1: 'isp1' };

/** The cloud's public service addresses (a reflector and servers listen there). */
export const INTERNET_CLOUD = { v4: '203.0.113.10', v6: '2001:db8:c::10' };

export const PODS = {
  cidr4: '10.244.0.0/24', gateway4: '10.244.0.1', cidr6: 'fd44::/64', gateway6: 'fd44::1',
  pod0: { v4: '10.244.0.10', v6: 'fd44::10' },
  pod1: { v4: '10.244.0.11', v6: 'fd44::11' },
};

/** NodePort-style DNAT on the edge's WAN addresses: NODE_PORT -> pod0:POD_PORT. */
export const NODE_PORT = 30080;
export const POD_PORT = 8080;

export class EdgeLab extends Lab {
  readonly edge: string;
  readonly cloud: string;
  readonly pods: { pod0: string; pod1: string };
  readonly isps: Record<IspName, string>;

  private constructor(tag: string) {
    super(tag);
    this.edge = this.nsName('e');
    this.cloud = this.nsName('c');
    this.pods = { pod0: this.nsName('p0'), pod1: this.nsName('p1') };
    this.isps = { isp0: this.nsName('i0'), isp1: this.nsName('i1') };
  }

  /** Build a lab; names carry this process's pid, so a lab of a dead process is reaped. */
  static create(tag = nextTag()): EdgeLab {
    return Lab.built(new EdgeLab(tag), (lab) => lab.build());
  }

  private build(): void {
    for (const ns of [this.edge, this.cloud, this.pods.pod0, this.pods.pod1, this.isps.isp0, this.isps.isp1]) this.addNamespace(ns);
    this.buildPods();
    for (const isp of ['isp0', 'isp1'] as const) this.buildIsp(isp);
    ipBatch(this.edge, [
      `route add default via ${ISPS.isp0.gateway4} dev wan0`,
      `route add default via ${ISPS.isp0.gateway6} dev wan0`,
    ]);
    ipBatch(this.cloud, [
      `addr add ${INTERNET_CLOUD.v4}/32 dev lo`,
      `addr add ${INTERNET_CLOUD.v6}/128 dev lo nodad`,
    ]);
    this.sysctl(this.edge, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');
    this.buildNodeNat();
  }

  /** Two pods on a bridge, as a CNI's bridge plugin wires them. */
  private buildPods(): void {
    const lines = [
      'link add cni0 type bridge',
      `addr add ${PODS.gateway4}/24 dev cni0`,
      `addr add ${PODS.gateway6}/64 dev cni0 nodad`,
      'link set cni0 up',
    ];
    for (const pod of ['pod0', 'pod1'] as const) {
      lines.push(`link add v${pod} type veth peer name eth0 netns ${this.pods[pod]}`, `link set v${pod} master cni0`, `link set v${pod} up`);
    }
    ipBatch(this.edge, lines);
    for (const pod of ['pod0', 'pod1'] as const) {
      ipBatch(this.pods[pod], [
        `addr add ${PODS[pod].v4}/24 dev eth0`,
        `addr add ${PODS[pod].v6}/64 dev eth0 nodad`,
        'link set eth0 up',
        `route add default via ${PODS.gateway4}`,
        `route add default via ${PODS.gateway6}`,
      ]);
    }
  }

  /** One ISP: the subscriber line to the edge, a transit to the cloud, and source filtering. */
  private buildIsp(name: IspName): void {
    const p = ISPS[name];
    const ns = this.isps[name];
    ipBatch(this.edge, [
      `link add ${p.wan} type veth peer name sub netns ${ns}`,
      `addr add ${p.edge4}/24 dev ${p.wan}`,
      `addr add ${p.edge6}/64 dev ${p.wan} nodad`,
      `link set ${p.wan} up`,
    ]);
    ipBatch(ns, [
      `link add net type veth peer name ${name} netns ${this.cloud}`,
      `addr add ${p.gateway4}/24 dev sub`,
      `addr add ${p.gateway6}/64 dev sub nodad`,
      `addr add ${p.transit4[0]}/30 dev net`,
      `addr add ${p.transit6[0]}/64 dev net nodad`,
      'link set sub up',
      'link set net up',
      `route add default via ${p.transit4[1]}`,
      `route add default via ${p.transit6[1]}`,
    ]);
    ipBatch(this.cloud, [
      `addr add ${p.transit4[1]}/30 dev ${name}`,
      `addr add ${p.transit6[1]}/64 dev ${name} nodad`,
      `link set ${name} up`,
      `route add ${p.subnet4} via ${p.transit4[0]}`,
      `route add ${p.subnet6} via ${p.transit6[0]}`,
    ]);
    // keep_addr_on_down: a line that goes down and up keeps its IPv6 gateway address, as ISP gear does.
    this.sysctl(ns, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv6.conf.sub.keep_addr_on_down=1');
    // BCP 38: the ISP forwards only its subscriber's sources.
    this.nft(ns, [
      'table inet bcp38 {',
      '  chain forward {',
      '    type filter hook forward priority filter; policy accept;',
      `    iifname "sub" ip saddr != ${p.subnet4} counter drop`,
      `    iifname "sub" ip6 saddr != ${p.subnet6} counter drop`,
      '  }',
      '}',
    ]);
  }

  /** What the CNI and kube-proxy do on a node: masquerade pods, DNAT a NodePort to pod0. */
  private buildNodeNat(): void {
    this.nft(this.edge, [
      'table inet lab_cni {',
      '  chain postrouting {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      `    ip saddr ${PODS.cidr4} ip daddr != ${PODS.cidr4} masquerade`,
      `    ip6 saddr ${PODS.cidr6} ip6 daddr != ${PODS.cidr6} masquerade`,
      '  }',
      '  chain prerouting {',
      '    type nat hook prerouting priority dstnat; policy accept;',
      `    iifname { "wan0", "wan1" } tcp dport ${NODE_PORT} dnat ip to ${PODS.pod0.v4}:${POD_PORT}`,
      `    iifname { "wan0", "wan1" } tcp dport ${NODE_PORT} dnat ip6 to [${PODS.pod0.v6}]:${POD_PORT}`,
      '  }',
      '}',
    ]);
  }

  /** Load an nft script in a namespace (lines joined; statements end with a newline). */
  nft(ns: string, lines: string[]): void {
    this.exec(ns, ['nft', '-f', '-'], lines.join('\n') + '\n');
  }

  /** Packets each ISP dropped for a foreign source (BCP 38), IPv4 and IPv6 together. */
  spoofDrops(isp: IspName): number {
    const json = JSON.parse(this.exec(this.isps[isp], ['nft', '-j', 'list', 'table', 'inet', 'bcp38'])) as NftJson;
    return counters(json).reduce((n, c) => n + c.packets, 0);
  }

  /** Carrier loss on a WAN link: the ISP's end of the line goes down (and back up). */
  setCarrier(wan: WanName, up: boolean): void {
    sh('ip', ['-n', this.isps[ISP_OF[wan]], 'link', 'set', 'sub', up ? 'up' : 'down']);
  }

  /**
   * A blackhole in the ISP (carrier up, nothing forwarded either way), or its end. On the path,
   * so it hits steered connections and probes alike. Returns when the fault is in force, with the
   * moment it was ordered (before the nft command, as the benchmarks take a fault's time): a gap
   * measured from it includes the command's own run time instead of hiding part of the gap
   * behind it.
   */
  blackhole(wan: WanName, on: boolean): bigint {
    const ordered = process.hrtime.bigint();
    const ns = this.isps[ISP_OF[wan]];
    this.nft(ns, [
      'table inet lab_fault {}',
      'delete table inet lab_fault',
      ...(on ? ['table inet lab_fault {', '  chain forward {', '    type filter hook forward priority -300; policy drop;', '  }', '}'] : []),
    ]);
    return ordered;
  }

  /** The conntrack table of a namespace (one line per connection, as /proc/net/nf_conntrack has it). */
  conntrack(ns: string): string[] {
    return this.exec(ns, ['cat', '/proc/net/nf_conntrack']).split('\n').filter((l) => l.length > 0);
  }
}

interface NftJson {
  nftables: { rule?: { comment?: string; expr: { counter?: { packets: number; bytes: number } }[] } }[];
}

function counters(json: NftJson): { comment?: string; packets: number; bytes: number }[] {
  const out: { comment?: string; packets: number; bytes: number }[] = [];
  for (const item of json.nftables) {
    const c = item.rule?.expr.find((e) => e.counter)?.counter;
    if (c) out.push({ ...(item.rule!.comment ? { comment: item.rule!.comment } : {}), packets: c.packets, bytes: c.bytes });
  }
  return out;
}

/**
 * Bytes of named flows per ISP and direction, counted where the ISP forwards them (after its
 * source filter: what it carried). `up` is the edge-to-cloud direction, `down` the reply.
 *
 *   const c = IspCounters.install(lab, [{ name: 'boss', up: 'tcp dport 8001', down: 'tcp sport 8001' }]);
 *   c.read()   // { 'boss|isp0|up': { packets, bytes }, 'boss|isp1|down': … }
 */
export interface IspFlow {
  name: string;
  /** nft expression for the flow's packets from the edge to the cloud (after NAT: the ISP sees the link's address). */
  up: string;
  /** nft expression for its packets from the cloud to the edge. */
  down: string;
}

export interface ByteCount {
  packets: number;
  bytes: number;
}

export class IspCounters {
  private constructor(private readonly lab: EdgeLab) {}

  static install(lab: EdgeLab, flows: IspFlow[]): IspCounters {
    for (const isp of ['isp0', 'isp1'] as const) {
      const rules = flows.flatMap((f) => [
        `    iifname "sub" ${f.up} counter comment "${f.name}|${isp}|up"`,
        `    oifname "sub" ${f.down} counter comment "${f.name}|${isp}|down"`,
      ]);
      lab.nft(lab.isps[isp], [
        'table inet lab_count {}',
        'delete table inet lab_count',
        'table inet lab_count {',
        '  chain forward {',
        '    type filter hook forward priority 10; policy accept;',
        ...rules,
        '  }',
        '}',
      ]);
    }
    return new IspCounters(lab);
  }

  /** Counts per `flow|isp|direction`. */
  read(): Record<string, ByteCount> {
    const out: Record<string, ByteCount> = {};
    for (const isp of ['isp0', 'isp1'] as const) {
      const json = JSON.parse(this.lab.exec(this.lab.isps[isp], ['nft', '-j', 'list', 'table', 'inet', 'lab_count'])) as NftJson;
      for (const c of counters(json)) if (c.comment) out[c.comment] = { packets: c.packets, bytes: c.bytes };
    }
    return out;
  }
}
