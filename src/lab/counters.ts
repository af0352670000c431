import type { WanLab } from './overlay.js';

/**
 * Packet counters in the cloud namespace, by incoming link and by DSCP, kept by nftables in a
 * table of our own. Each watched flow is named; `read()` returns its counts per link.
 */
export interface FlowMatch {
  name: string;
  /** nft expression that selects the flow's packets, e.g. `tcp sport 40001`. */
  match: string;
}

export class IngressCounters {
  private constructor(
    private readonly lab: WanLab,
    private readonly flows: FlowMatch[],
    private readonly dscps: number[],
  ) {}

  static install(lab: WanLab, flows: FlowMatch[], dscps: number[] = []): IngressCounters {
    const rules: string[] = [];
    for (const f of flows) {
      for (const dev of ['c0', 'c1']) {
        rules.push(`add rule inet wstest count iifname "${dev}" ${f.match} counter comment "${f.name}|${dev}"`);
        for (const d of dscps) {
          rules.push(
            `add rule inet wstest count iifname "${dev}" ${f.match} ip dscp ${d} counter comment "${f.name}|${dev}|dscp${d}"`,
            `add rule inet wstest count iifname "${dev}" ${f.match} ip6 dscp ${d} counter comment "${f.name}|${dev}|dscp${d}"`,
          );
        }
      }
    }
    const script = [
      'add table inet wstest',
      'add chain inet wstest count { type filter hook prerouting priority -300; policy accept; }',
      ...rules,
    ].join('\n');
    lab.exec(lab.cloud, ['nft', '-f', '-'], script + '\n');
    return new IngressCounters(lab, flows, dscps);
  }

  /** Packets per `name|dev` and `name|dev|dscpN`. */
  read(): Record<string, number> {
    return this.readBoth().packets;
  }

  /** Packets and bytes per `name|dev` and `name|dev|dscpN`. */
  readBoth(): { packets: Record<string, number>; bytes: Record<string, number> } {
    const packets: Record<string, number> = {};
    const bytes: Record<string, number> = {};
    const json = JSON.parse(this.lab.exec(this.lab.cloud, ['nft', '-j', 'list', 'table', 'inet', 'wstest'])) as {
      nftables: { rule?: { comment?: string; expr: { counter?: { packets: number; bytes: number } }[] } }[];
    };
    for (const item of json.nftables) {
      const r = item.rule;
      if (!r?.comment) continue;
      const c = r.expr.find((e) => e.counter)?.counter;
      packets[r.comment] = (packets[r.comment] ?? 0) + (c?.packets ?? 0);
      bytes[r.comment] = (bytes[r.comment] ?? 0) + (c?.bytes ?? 0);
    }
    return { packets, bytes };
  }
}
