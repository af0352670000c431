import type { ChildProcess } from 'node:child_process';
import { fromRoot } from '../config/paths.js';
import type { Lab } from './namespaces.js';

/** HTTP (and gRPC) from inside a namespace: scripts/ns-http.mjs under nsenter. */
const NS_HTTP = fromRoot('scripts/ns-http.mjs');

export interface LabRequest {
  method?: string;
  /** Path on the agent, e.g. `/v1/links`. */
  path: string;
  headers?: Record<string, string>;
  /** Sent as JSON. */
  body?: unknown;
}

export interface LabAnswer {
  /** 0 when the request failed (then `error` says why). */
  status: number;
  headers?: Record<string, string>;
  body?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  error?: string;
}

/** One entry of the agent's GET /v1/links. */
export interface LabLinkView {
  name: string;
  up: boolean;
  rttMs?: number;
  lossPercent?: number;
  jitterMs?: number;
  reason?: string;
  activeFor: string[];
}

/**
 * The agent's REST API as seen from inside a lab namespace (the source address is that
 * namespace's), for the demo, the tests and the benchmarks:
 *
 *   const api = new LabAgentClient(lab, lab.edge, 'http://10.10.1.1:9090', () => 'see agent.log');
 *   await api.waitReady(agentProcess, 30_000);
 *   const [answer] = api.http({ method: 'POST', path: '/v1/sessions', body: session });
 *   await api.waitLinks((ls) => ls.every((l) => l.up), 10_000, 'both links up');
 */
export class LabAgentClient {
  constructor(
    private readonly lab: Lab,
    private readonly ns: string,
    readonly base: string,
    /** Added to timeout errors: where the agent's log is, or its tail. */
    private readonly logHint: () => string = () => '',
  ) {}

  /** Requests in one client process, in order. */
  http(...reqs: LabRequest[]): LabAnswer[] {
    const job = {
      http: reqs.map((r) => ({
        method: r.method ?? 'GET',
        url: this.base + r.path,
        headers: { ...(r.body !== undefined ? { 'content-type': 'application/json' } : {}), ...r.headers },
        body: r.body === undefined ? undefined : JSON.stringify(r.body),
      })),
    };
    return JSON.parse(this.lab.exec(this.ns, [process.execPath, NS_HTTP, 'call'], JSON.stringify(job))) as LabAnswer[];
  }

  links(): LabLinkView[] {
    return (this.http({ path: '/v1/links' })[0]?.body?.items ?? []) as LabLinkView[];
  }

  /** Until /readyz answers 200; fails at once if the agent exits. */
  async waitReady(agent: ChildProcess, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (agent.exitCode !== null) throw new Error(`the agent exited (${agent.exitCode})${this.hint()}`);
      if (this.http({ path: '/readyz' })[0]?.status === 200) return;
      await sleep(200);
    }
    throw new Error(`the agent was not ready in ${timeoutMs / 1000} s${this.hint()}`);
  }

  /** Until GET /v1/links satisfies `ok`; returns what it saw last. */
  async waitLinks(ok: (links: LabLinkView[]) => boolean, timeoutMs: number, what: string): Promise<LabLinkView[]> {
    const deadline = Date.now() + timeoutMs;
    let last: LabLinkView[] = [];
    while (Date.now() < deadline) {
      last = this.links();
      if (ok(last)) return last;
      await sleep(100);
    }
    throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)}${this.hint()}`);
  }

  private hint(): string {
    const h = this.logHint();
    return h ? `; ${h}` : '';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
