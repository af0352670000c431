/**
 * Where the engine's route rules and policies come from now, per source: `waiting` (nothing yet:
 * the cluster's first list has not come), `snapshot` (the node's last view of the cluster, as
 * when the API server is out of reach) or `synced` (its own source: a directory or file read,
 * or the cluster listed). The agent sets them as they change; /v1/status and the
 * wansteer_source_state metric read them.
 */
export type SourceName = 'routes' | 'policies';
export type SourceState = 'waiting' | 'snapshot' | 'synced';

export const SOURCE_NAMES: readonly SourceName[] = ['routes', 'policies'];
export const SOURCE_STATES: readonly SourceState[] = ['waiting', 'snapshot', 'synced'];

export class SourceStates {
  private readonly states: Record<SourceName, SourceState> = { routes: 'waiting', policies: 'waiting' };

  set(source: SourceName, state: SourceState): void {
    this.states[source] = state;
  }

  get(source: SourceName): SourceState {
    return this.states[source];
  }

  view(): Record<SourceName, SourceState> {
    return { ...this.states };
  }
}
