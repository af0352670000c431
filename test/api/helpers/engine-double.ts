/**
 * Test double of the SteeringEngine: just enough real logic to drive the API. It parses the
 * report's local address, applies the spoof check the real engine owns (local == caller, or the
 * caller is an allowed proxy), steers sessions whose authority is in `steer`, and records every
 * call so tests can see what reached the engine.
 */
import { FlowCursorError } from '../../../src/steering/types.js';
import type { FlowFilter, FlowView, FlowViewPage, LinkStatus, PolicyStatus, SessionExplanation, SessionOutcome, SessionReport, SessionRequest, SteeringEngine } from '../../../src/steering/types.js';

export interface EngineDoubleOptions {
  allowedProxies?: string[];
  /** authority -> policy and link a session with it is steered to. */
  steer?: Record<string, { policy: string; link: string }>;
}

function host(endpoint: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-f:.]+)\]|([0-9.]+)):([0-9]{1,5})$/i.exec(endpoint);
  if (!m) return undefined;
  const port = Number(m[3]);
  const h = (m[1] ?? m[2])!;
  if (port > 65_535 || (m[2] !== undefined && m[2].split('.').some((o) => Number(o) > 255))) return undefined;
  return { host: h.toLowerCase(), port };
}

export class EngineDouble implements SteeringEngine {
  /** Every reportSessions call, in order. */
  readonly calls: { reports: SessionReport[]; caller: string }[] = [];
  readonly stored: FlowView[] = [];
  isReady = true;
  /** When set, reportSessions throws it (an engine bug, for the 5xx path). */
  failWith: Error | undefined;
  private readonly allowed: Set<string>;
  private readonly steer: Record<string, { policy: string; link: string }>;

  constructor(options: EngineDoubleOptions = {}) {
    this.allowed = new Set(options.allowedProxies ?? []);
    this.steer = options.steer ?? { 'boss.example': { policy: 'boss-fibre', link: 'fibre' } };
  }

  get reportCount(): number {
    return this.calls.reduce((n, c) => n + c.reports.length, 0);
  }

  reportSessions(reports: readonly SessionReport[], caller: string): SessionOutcome[] {
    if (this.failWith) throw this.failWith;
    this.calls.push({ reports: [...reports], caller });
    return reports.map((r): SessionOutcome => {
      const local = host(r.local);
      const remote = host(r.remote);
      if (!local || !remote) return { status: 'rejected', reason: 'bad-address', message: `cannot parse ${local ? r.remote : r.local}` };
      if (local.host !== caller && !this.allowed.has(caller)) {
        return { status: 'rejected', reason: 'spoofed-local', message: `${caller} may not report sessions of ${local.host}` };
      }
      const target = this.steer[r.request.authority];
      if (!target) return { status: 'unmatched', reason: 'no-virtual-service' };
      const flow: FlowView = { protocol: r.protocol ?? 'tcp', src: local.host, sport: local.port, dst: remote.host, dport: remote.port, policy: target.policy };
      this.stored.push(flow);
      return { status: 'steered', policy: target.policy, link: target.link, flow };
    });
  }

  /** Echoes the request it was handed (in place of a route trace), so a test sees what the API passed. */
  explainSession(request: SessionRequest & { port?: number }): SessionExplanation {
    const target = this.steer[request.authority];
    const outcome = target ? { status: 'steered' as const, ...target } : { status: 'unmatched' as const, reason: 'no-virtual-service' as const };
    return { route: { request }, outcome } as unknown as SessionExplanation;
  }

  policyStatus(): PolicyStatus[] {
    return [
      { name: 'boss-fibre', id: 1, links: ['fibre', 'lte'], link: 'fibre', dscp: 46, sla: { maxLossPercent: 5 }, slaMet: true, installed: true, reason: 'fibre: first usable link of its preference' },
      { name: 'voice-lte', id: 2, links: ['lte'], installed: false, reason: 'no usable link: lte down (no carrier)' },
    ];
  }

  links(): LinkStatus[] {
    return [
      { name: 'fibre', interface: 'eth1', ifindex: 3, up: true, activeFor: ['boss-fibre'], rttMs: 4.2 },
      { name: 'lte', interface: 'wwan0', ifindex: null, up: false, activeFor: [], reason: 'no carrier' },
    ];
  }

  /** Pages of `stored` (filtered by policy); the cursor is `i<index of the next flow>`. */
  flows(filter: FlowFilter = {}): FlowViewPage {
    const from = filter.after === undefined ? 0 : Number(/^i([0-9]+)$/.exec(filter.after)?.[1] ?? NaN);
    if (Number.isNaN(from)) throw new FlowCursorError(filter.after!, 'not a cursor of the double');
    const matching = this.stored.filter((f) => filter.policy === undefined || f.policy === filter.policy);
    const end = Math.min(matching.length, from + (filter.limit ?? 1000));
    return { items: matching.slice(from, end), ...(end < matching.length && { next: `i${end}` }) };
  }

  ready(): boolean {
    return this.isReady;
  }

  waitingFor(): string[] {
    return this.isReady ? [] : ['policies: the WanPolicies are not listed yet'];
  }
}
