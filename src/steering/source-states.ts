/**
 * Where the engine's route rules and policies come from now, per source: `waiting` (nothing yet:
 * the cluster's first list has not come), `snapshot` (the node's last view of the cluster, as
 * when the API server is out of reach) or `synced` (its own source: a directory or file read,
 * or the cluster listed). The agent sets them as they change; /v1/status and the
 * wansteer_source_state metric read them.
 *
 * Beside the state, what is wrong now, read from the sources when asked: why a source cannot
 * list or watch (`forbidden: …` is not `unreachable`), and the objects it leaves out.
 */
export type SourceName = 'routes' | 'policies';
export type SourceState = 'waiting' | 'snapshot' | 'synced';

export const SOURCE_NAMES: readonly SourceName[] = ['routes', 'policies'];
export const SOURCE_STATES: readonly SourceState[] = ['waiting', 'snapshot', 'synced'];

/** Why a source fails now: `failure` is a kind (k8s/errors.ts SourceFailure), `message` the API server's words. */
export interface SourceProblem {
  readonly failure: string;
  readonly message: string;
}

/** An object a source leaves out, and why (a WS_* code and its message). */
export interface RefusedObject {
  readonly name: string;
  readonly code: string;
  readonly message: string;
}

export class SourceStates {
  private readonly states: Record<SourceName, SourceState> = { routes: 'waiting', policies: 'waiting' };
  private readonly problemProbes: Partial<Record<SourceName, () => SourceProblem | undefined>> = {};
  private refusedProbe: () => readonly RefusedObject[] = () => [];

  set(source: SourceName, state: SourceState): void {
    this.states[source] = state;
  }

  get(source: SourceName): SourceState {
    return this.states[source];
  }

  view(): Record<SourceName, SourceState> {
    return { ...this.states };
  }

  /** Where to ask why `source` fails. */
  watchProblem(source: SourceName, probe: () => SourceProblem | undefined): void {
    this.problemProbes[source] = probe;
  }

  /** Where to ask which policies are left out. */
  watchRefused(probe: () => readonly RefusedObject[]): void {
    this.refusedProbe = probe;
  }

  problem(source: SourceName): SourceProblem | undefined {
    return this.problemProbes[source]?.();
  }

  problems(): Partial<Record<SourceName, SourceProblem>> {
    const out: Partial<Record<SourceName, SourceProblem>> = {};
    for (const source of SOURCE_NAMES) {
      const problem = this.problem(source);
      if (problem) out[source] = problem;
    }
    return out;
  }

  refused(): readonly RefusedObject[] {
    return this.refusedProbe();
  }
}
