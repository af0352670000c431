/**
 * Bytes of named flows per link and direction in the overlay lab, each counted where it lands:
 * `up` (edge to cloud) at the cloud's ingress (c0 is wan0's far end, c1 wan1's), `down` (cloud to
 * edge) at the edge's ingress. Counted by nftables at prerouting before conntrack, so what NAT
 * does afterwards cannot move a byte between links.
 *
 *   const c = OverlayCounters.install(lab, [{ name: 'minion', up: 'tcp dport 8001', down: 'tcp sport 8001' }]);
 *   c.read()   // { 'minion|wan1|up': { packets, bytes }, 'minion|wan1|down': … }
 */
import type { WanLab } from './overlay.js';

export interface OverlayFlow {
  name: string;
  /** nft expression for the flow's packets from the edge to the cloud, as the cloud receives them. */
  up: string;
  /** nft expression for its packets from the cloud to the edge, as the edge receives them (before NAT). */
  down: string;
}

export interface ByteCount {
  packets: number;
  bytes: number;
}

/** The edge's link and the cloud's end of it. */
const LINKS = [
  { wan: 'wan0', far: 'c0' },
  { wan: 'wan1', far: 'c1' },
] as const;
const TABLE = 'lab_overlay_count';

interface NftJson {
  nftables: { rule?: { comment?: string; expr: { counter?: { packets: number; bytes: number } }[] } }[];
}

export class OverlayCounters {
  private constructor(private readonly lab: WanLab) {}

  /** Install (or replace) the counters of `flows` in both namespaces. */
  static install(lab: WanLab, flows: readonly OverlayFlow[]): OverlayCounters {
    const script = (dev: 'wan' | 'far', direction: 'up' | 'down') => [
      `table inet ${TABLE} {}`,
      `delete table inet ${TABLE}`,
      `table inet ${TABLE} {`,
      '  chain count {',
      '    type filter hook prerouting priority -300; policy accept;',
      ...flows.flatMap((f) => LINKS.map((l) => `    iifname "${l[dev]}" ${f[direction]} counter comment "${f.name}|${l.wan}|${direction}"`)),
      '  }',
      '}',
    ];
    lab.exec(lab.cloud, ['nft', '-f', '-'], script('far', 'up').join('\n') + '\n');
    lab.exec(lab.edge, ['nft', '-f', '-'], script('wan', 'down').join('\n') + '\n');
    return new OverlayCounters(lab);
  }

  /** Counts per `flow|wanN|up` and `flow|wanN|down`. */
  read(): Record<string, ByteCount> {
    const out: Record<string, ByteCount> = {};
    for (const ns of [this.lab.cloud, this.lab.edge]) {
      const json = JSON.parse(this.lab.exec(ns, ['nft', '-j', 'list', 'table', 'inet', TABLE])) as NftJson;
      for (const item of json.nftables) {
        const c = item.rule?.expr.find((e) => e.counter)?.counter;
        if (c && item.rule?.comment) out[item.rule.comment] = { packets: c.packets, bytes: c.bytes };
      }
    }
    return out;
  }

  /** Bytes of one flow per link and direction, as numbers (0 where nothing was counted). */
  bytes(name: string): { wan0: { up: number; down: number }; wan1: { up: number; down: number } } {
    const all = this.read();
    const b = (wan: string, d: string) => all[`${name}|${wan}|${d}`]?.bytes ?? 0;
    return { wan0: { up: b('wan0', 'up'), down: b('wan0', 'down') }, wan1: { up: b('wan1', 'up'), down: b('wan1', 'down') } };
  }
}
