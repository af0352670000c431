/**
 * wansteer_source_state{source, state}: where the agent's route rules and policies come from now
 * (src/steering/source-states.ts), one series per state, 1 for the state the source is in. An
 * edge node running on its snapshot of the cluster for long is worth an alert.
 */
import { Gauge, type Registry } from 'prom-client';
import { SOURCE_NAMES, SOURCE_STATES, type SourceStates } from '../steering/source-states.js';

export function registerSourceState(registry: Registry, sources: Pick<SourceStates, 'get'>): void {
  new Gauge({
    name: 'wansteer_source_state',
    help: 'Where route rules and policies come from now: 1 for the current state (waiting, snapshot, synced).',
    labelNames: ['source', 'state'],
    registers: [registry],
    collect() {
      for (const source of SOURCE_NAMES) {
        for (const state of SOURCE_STATES) this.set({ source, state }, sources.get(source) === state ? 1 : 0);
      }
    },
  });
}
