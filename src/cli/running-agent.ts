/** What a started agent (either mode: cli/agent.ts, cli/reply-agent.ts) gives its caller. */
export interface RunningAgent {
  readonly httpUrl: string;
  readonly grpcPort: number | null;
  /** Resolves once route rules and policies are in and the agent steers new sessions (/readyz 200). */
  readonly synced: Promise<void>;
  /** Resolves once the agent has shut down (on a signal, or stop()). */
  readonly stopped: Promise<void>;
  stop(): Promise<void>;
}
