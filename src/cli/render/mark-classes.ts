/**
 * Mark mode's classes: which upstream cluster carries the sessions of a DSCP-matched policy.
 * A policy says `match: { dscp: 10 }`; the user says which DestinationRule subset that class is
 * routed to, on the command line:
 *
 *   --mark-class jason-on-fibre=reviews.default.svc.cluster.local/v2        every port
 *   --mark-class voice-ef=media.edge.svc.cluster.local:5060/voice           one port
 *
 * Each class's upstream sockets then carry IP_TOS = DSCP << 2, so the BPF program can read the
 * class off every packet (docs/envoy.md, "Mark mode").
 */
import type { WanPolicySpec } from '../../policies/model.js';
import { DEFAULT_CLUSTER_DOMAIN, resolveDestinationHost } from '../../routes/hosts.js';
import type { VirtualService } from '../../routes/model.js';

export interface MarkClass {
  readonly policy: string;
  readonly dscp: number;
  /** The service's FQDN, as in Istio's cluster names (`outbound|PORT|SUBSET|HOST`). */
  readonly host: string;
  readonly subset: string;
  readonly port?: number;
}

export interface MarkClassSpec {
  readonly policy: string;
  readonly host: string;
  readonly subset: string;
  readonly port?: number;
}

const SPEC = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)=([a-z0-9]([-.a-z0-9]*[a-z0-9])?)(?::(\d{1,5}))?\/([A-Za-z0-9]([-._A-Za-z0-9]*[A-Za-z0-9])?)$/;

/** Parses `POLICY=HOST[:PORT]/SUBSET`; throws an Error saying what is wrong. */
export function parseMarkClass(text: string): MarkClassSpec {
  const m = SPEC.exec(text);
  if (!m) throw new Error(`--mark-class wants POLICY=HOST[:PORT]/SUBSET, got ${JSON.stringify(text)}`);
  const [, policy, , host, , port, subset] = m;
  if (!host!.includes('.')) {
    throw new Error(`--mark-class ${text}: give the service's full name (e.g. ${host}.default.svc.${DEFAULT_CLUSTER_DOMAIN}), as Istio names its clusters`);
  }
  const spec: MarkClassSpec = { policy: policy!, host: host!, subset: subset! };
  if (port === undefined) return spec;
  const n = Number(port);
  if (n < 1 || n > 65535) throw new Error(`--mark-class ${text}: port must be 1-65535`);
  return { ...spec, port: n };
}

export interface ResolvedMarkClasses {
  readonly classes: MarkClass[];
  /** Things that render fine but probably do not do what was meant. */
  readonly warnings: string[];
}

/**
 * Checks each class against the policies (it must name a policy that matches a DSCP) and the
 * rules (some route should send traffic to that subset, or the class carries nothing).
 */
export function resolveMarkClasses(
  specs: readonly MarkClassSpec[],
  policies: readonly { name: string; spec: WanPolicySpec }[],
  virtualServices: readonly VirtualService[],
): ResolvedMarkClasses {
  const classes: MarkClass[] = [];
  const warnings: string[] = [];
  const routed = routedSubsets(virtualServices);
  for (const spec of specs) {
    const policy = policies.find((p) => p.name === spec.policy);
    if (!policy) throw new Error(`--mark-class ${spec.policy}: no such policy in --policies`);
    if (!('dscp' in policy.spec.match)) {
      throw new Error(`--mark-class ${spec.policy}: the policy matches a route, not a DSCP; mark mode needs match: { dscp: N }`);
    }
    const clash = classes.find((c) => c.host === spec.host && c.subset === spec.subset && c.port === spec.port);
    if (clash) throw new Error(`--mark-class ${spec.policy}: ${spec.host}/${spec.subset} already carries class ${clash.policy}`);
    if (!routed.has(`${spec.host}/${spec.subset}`)) {
      warnings.push(`mark class ${spec.policy}: no VirtualService route sends traffic to ${spec.host} subset ${spec.subset}`);
    }
    classes.push({ ...spec, dscp: policy.spec.match.dscp });
  }
  return { classes, warnings };
}

function routedSubsets(virtualServices: readonly VirtualService[]): Set<string> {
  const out = new Set<string>();
  for (const vs of virtualServices) {
    for (const route of vs.http) {
      for (const { destination } of route.route) {
        if (destination.subset === undefined) continue;
        out.add(`${resolveDestinationHost(destination.host, vs.namespace, DEFAULT_CLUSTER_DOMAIN)}/${destination.subset}`);
      }
    }
  }
  return out;
}
