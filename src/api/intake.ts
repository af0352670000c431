/**
 * What both session intakes do after a report has passed its schema: charge the caller's rate
 * limit, hand the reports to the engine in one call, and count what was rejected, by reason.
 * HTTP and gRPC go through here, so they share the limits, the counts and the semantics. The
 * spoof check (local address is the caller's own, or the caller is an allowed proxy) is the
 * engine's, with the caller address given here.
 *
 * Counting on the session path is a plain number increment; prom-client reads the numbers at
 * scrape time (the counters' collect), like every other collector of the agent.
 */
import { Counter, type Registry } from 'prom-client';
import { RejectReasons, type SessionOutcome, type SessionReport, type SteeringEngine } from '../steering/types.js';
import { RateLimited, type ApiError } from './errors.js';
import { ReportRateLimiter } from './rate-limiter.js';

export type Transport = 'http' | 'grpc';

/** Why the intake refused a report, as counted: the engine's reasons, plus schema failures. */
export type RefusalReason = (typeof RejectReasons)[number] | 'invalid';
const REFUSAL_REASONS: readonly RefusalReason[] = [...RejectReasons, 'invalid'];

/** The intake's limits (the `intake` section of the agent config). */
export interface IntakeLimits {
  /** Session reports per second per caller address. */
  ratePerClient: number;
  /** Most reports in one batch call. */
  maxBatch: number;
}

/** Bytes a report is allowed on average in a batch; also what one token of the rate budget buys in body bytes. */
export const REPORT_BYTES = 2 * 1024;

/** Largest batch body (HTTP) or message (gRPC) by default: 2 KiB a report, 64 KiB to 32 MiB. */
export function defaultBatchBytes(maxBatch: number): number {
  return Math.min(32 * 1024 * 1024, Math.max(64 * 1024, maxBatch * REPORT_BYTES));
}

/** One count, incremented on the session path and read at scrape time. */
class Count {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
}

const TRANSPORTS: readonly Transport[] = ['http', 'grpc'];

export class SessionIntake {
  readonly received: Record<Transport, Count> = { http: new Count(), grpc: new Count() };
  readonly refused: Record<Transport, Record<RefusalReason, Count>> = { http: byReason(), grpc: byReason() };

  constructor(
    private readonly engine: SteeringEngine,
    readonly limiter: ReportRateLimiter,
    registry?: Registry,
  ) {
    if (registry) registerIntake(registry, this);
  }

  static create(engine: SteeringEngine, limits: IntakeLimits, registry?: Registry): SessionIntake {
    // A bucket holds at least one full batch, or a batch could never pass.
    const limiter = new ReportRateLimiter({ ratePerSecond: limits.ratePerClient, burst: Math.max(limits.ratePerClient, limits.maxBatch) });
    return new SessionIntake(engine, limiter, registry);
  }

  /**
   * All or nothing: the reports go to the engine, or none do and this throws WS_API_RATE_LIMITED.
   * A report costs one token; `prepaid` tokens were charged for the request before it was parsed.
   */
  report(reports: readonly SessionReport[], caller: string, transport: Transport, receivedAtNs?: bigint, prepaid = 0): SessionOutcome[] {
    this.received[transport].inc(reports.length);
    const owed = reports.length - prepaid;
    if (owed > 0 && !this.limiter.take(caller, owed)) {
      this.refused[transport]['rate-limited'].inc(reports.length);
      throw this.rateLimited(caller, owed);
    }
    return this.steer(reports, caller, transport, receivedAtNs);
  }

  /** The 429 for `caller`, short of `tokens`, with when to retry. */
  rateLimited(caller: string, tokens = 1): ApiError {
    const retry = this.limiter.secondsUntil(caller, tokens);
    return RateLimited(String(this.limiter.ratePerSecond), caller).withHeaders({ 'retry-after': String(retry) });
  }

  /**
   * The 429 that turns a new connection of `caller` away as it connects, when its budget could
   * not pay for one request, or for the one it was last refused (rate-limiter.ts): all its
   * requests would be refused, and each would cost the agent a parse first.
   */
  turnAway(caller: string): ApiError | undefined {
    const needed = this.limiter.tokensToAdmit(caller);
    return needed > 0 ? this.rateLimited(caller, needed) : undefined;
  }

  /** A request refused for its caller's budget before it was read: counted as one report received and refused. */
  countRateLimited(transport: Transport): void {
    this.received[transport].inc();
    this.refused[transport]['rate-limited'].inc();
  }

  /**
   * As many of `reports` as the caller's bucket allows go to the engine; the rest are refused
   * as rate-limited. For the gRPC stream, which has no per-report answer to fail.
   */
  reportAdmitting(
    reports: readonly SessionReport[],
    caller: string,
    transport: Transport,
    receivedAtNs?: bigint,
    /** Reports already paid for (the call's own token covers its first report). */
    prepaid = 0,
  ): { outcomes: SessionOutcome[]; limited: number } {
    this.received[transport].inc(reports.length);
    const covered = Math.min(prepaid, reports.length);
    const admitted = covered + this.limiter.takeUpTo(caller, reports.length - covered);
    const limited = reports.length - admitted;
    if (limited > 0) this.refused[transport]['rate-limited'].inc(limited);
    if (admitted === 0) return { outcomes: [], limited };
    const admittedReports = admitted === reports.length ? reports : reports.slice(0, admitted);
    return { outcomes: this.steer(admittedReports, caller, transport, receivedAtNs), limited };
  }

  /** A report that failed its schema (it never reaches the engine). */
  countInvalid(transport: Transport, n = 1): void {
    this.received[transport].inc(n);
    this.refused[transport].invalid.inc(n);
  }

  private steer(reports: readonly SessionReport[], caller: string, transport: Transport, receivedAtNs?: bigint): SessionOutcome[] {
    const outcomes = this.engine.reportSessions(reports, caller, receivedAtNs);
    const refused = this.refused[transport];
    for (let i = 0; i < outcomes.length; i++) {
      const o = outcomes[i]!;
      if (o.status === 'rejected') refused[o.reason].inc();
    }
    return outcomes;
  }
}

function byReason(): Record<RefusalReason, Count> {
  return Object.fromEntries(REFUSAL_REASONS.map((r) => [r, new Count()])) as Record<RefusalReason, Count>;
}

/** The intakes counted in each registry (the agent has one; tests may give two one registry). */
const intakesOf = new WeakMap<Registry, SessionIntake[]>();

/** wansteer_intake_reports_total and wansteer_intake_rejected_total, summed over the registry's intakes at scrape time. */
function registerIntake(registry: Registry, intake: SessionIntake): void {
  const known = intakesOf.get(registry);
  if (known) {
    known.push(intake);
    return;
  }
  const intakes = [intake];
  intakesOf.set(registry, intakes);
  new Counter({
    name: 'wansteer_intake_reports_total',
    help: 'Session reports received, valid or not.',
    labelNames: ['transport'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const transport of TRANSPORTS) this.inc({ transport }, intakes.reduce((n, i) => n + i.received[transport].value, 0));
    },
  });
  new Counter({
    name: 'wansteer_intake_rejected_total',
    help: 'Session reports refused by the intake or rejected by the engine, by reason.',
    labelNames: ['transport', 'reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const transport of TRANSPORTS) {
        for (const reason of REFUSAL_REASONS) this.inc({ transport, reason }, intakes.reduce((n, i) => n + i.refused[transport][reason].value, 0));
      }
    },
  });
}
