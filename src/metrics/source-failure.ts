/**
 * wansteer_source_failing{source, failure}: 1 while a source's lists or watches fail, labelled by
 * the kind of failure — `forbidden` (the RBAC), `unauthorized` (the credentials), `not-served`
 * (the CRD), `server-error`, `unreachable`. No series while all is well. A source that keeps its
 * last list still steers by it, so this is the alert that its picture is going stale.
 */
import { Gauge, type Registry } from 'prom-client';
import { SOURCE_NAMES, type SourceStates } from '../steering/source-states.js';

export function registerSourceFailure(registry: Registry, sources: Pick<SourceStates, 'problem'>): void {
  new Gauge({
    name: 'wansteer_source_failing',
    help: 'Route rules or policies cannot be listed or watched now: 1, labelled by the kind of failure.',
    labelNames: ['source', 'failure'],
    registers: [registry],
    collect() {
      this.reset();
      for (const source of SOURCE_NAMES) {
        const problem = sources.problem(source);
        if (problem) this.set({ source, failure: problem.failure }, 1);
      }
    },
  });
}
