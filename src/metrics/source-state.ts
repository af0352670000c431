/**
 * wansteer_source_state{source, state}: where the agent's route rules and policies come from now,
 * one series per state, 1 for the state the source is in: `waiting` (nothing yet: the cluster's
 * first list has not come), `snapshot` (steering by the node's last view of the cluster, as when
 * the API server is out of reach) or `synced` (its own source: a directory or file read, or the
 * cluster listed). An edge node running on its snapshot for long is worth an alert.
 */
import { Gauge, type Registry } from 'prom-client';

export type SourceName = 'routes' | 'policies';
export type SourceState = 'waiting' | 'snapshot' | 'synced';

const STATES: readonly SourceState[] = ['waiting', 'snapshot', 'synced'];

/** The agent sets each source's state as it changes; the collector reads it at scrape time. */
export class SourceStates {
  private readonly states: Record<SourceName, SourceState> = { routes: 'waiting', policies: 'waiting' };

  set(source: SourceName, state: SourceState): void {
    this.states[source] = state;
  }

  get(source: SourceName): SourceState {
    return this.states[source];
  }
}

export function registerSourceState(registry: Registry, sources: SourceStates): void {
  new Gauge({
    name: 'wansteer_source_state',
    help: 'Where route rules and policies come from now: 1 for the current state (waiting, snapshot, synced).',
    labelNames: ['source', 'state'],
    registers: [registry],
    collect() {
      for (const source of ['routes', 'policies'] as const) {
        for (const state of STATES) this.set({ source, state }, sources.get(source) === state ? 1 : 0);
      }
    },
  });
}
