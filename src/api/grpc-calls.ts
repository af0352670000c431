/**
 * What every gRPC call pays and may hold, as a grpc-js server interceptor:
 *
 *   - one token of its caller's rate budget at its start, before any message is read (refused:
 *     RESOURCE_EXHAUSTED, WS_API_RATE_LIMITED);
 *   - a read slot while it receives a message. grpc-js keeps a call's stream paused until the
 *     call asks for a message, then buffers the message whole as it arrives. Here the ask waits
 *     for a slot: at most `readers` calls receive at once, `readersPerAddress` from one address,
 *     and a waiting call's sender is held by HTTP/2 flow control to the stream window (64 KiB).
 *     Partial messages so hold at most readers × the message limit, plus 64 KiB a stream.
 *     A small message arrives in the same packet as its call and holds its slot for microseconds.
 *     At most `waitingPerAddress` calls of one address wait; one more is refused at once
 *     (RESOURCE_EXHAUSTED, WS_API_OVERLOADED), so an address that opens hundreds of calls and
 *     stalls their messages does not leave hundreds of calls to end together at the deadline;
 *   - deadlines: a call waits at most `messageTimeoutMs` for a slot (then RESOURCE_EXHAUSTED,
 *     WS_API_OVERLOADED), and its message must arrive within `messageTimeoutMs` of getting one
 *     (then DEADLINE_EXCEEDED, WS_API_REQUEST_TIMEOUT). A stream that sends nothing for that long
 *     is ended the same way.
 */
import * as grpc from '@grpc/grpc-js';
import { AddressCounts } from './address-counts.js';
import { callerAddress } from './caller.js';
import { Overloaded, RequestTimeout, type ApiError } from './errors.js';
import type { SessionIntake } from './intake.js';

export interface CallLimits {
  readers: number;
  readersPerAddress: number;
  waitingPerAddress: number;
  messageTimeoutMs: number;
}

type Grant = () => void;
const NOTHING_TO_WITHDRAW = (): void => {};

/** Read slots, handed out first come first served among the addresses under their share. */
export class ReadSlots {
  private inUse = 0;
  private readonly byAddress = new AddressCounts();
  private readonly waiting: { address: string; grant: Grant }[] = [];

  private readonly waitingByAddress = new AddressCounts();

  constructor(
    private readonly total: number,
    private readonly perAddress: number,
    private readonly waitingPerAddress = Number.POSITIVE_INFINITY,
  ) {}

  /**
   * Calls `grant` now or when a slot frees; the returned function withdraws the wish. Undefined
   * when `address` already has `waitingPerAddress` wishes waiting: the wish is refused.
   */
  acquire(address: string, grant: Grant): (() => void) | undefined {
    if (this.fits(address)) {
      this.take(address);
      grant();
      return NOTHING_TO_WITHDRAW;
    }
    if (this.waitingByAddress.of(address) >= this.waitingPerAddress) return undefined;
    this.waitingByAddress.add(address);
    const wish = { address, grant };
    this.waiting.push(wish);
    return () => {
      const i = this.waiting.indexOf(wish);
      if (i >= 0) {
        this.waiting.splice(i, 1);
        this.waitingByAddress.remove(address);
      }
    };
  }

  release(address: string): void {
    this.byAddress.remove(address);
    this.inUse--;
    if (this.waiting.length === 0) return;
    const next = this.waiting.findIndex((w) => this.fits(w.address));
    if (next < 0) return;
    const [wish] = this.waiting.splice(next, 1);
    this.waitingByAddress.remove(wish!.address);
    this.take(wish!.address);
    wish!.grant();
  }

  get readers(): number {
    return this.inUse;
  }

  private fits(address: string): boolean {
    return this.inUse < this.total && this.byAddress.of(address) < this.perAddress;
  }

  private take(address: string): void {
    this.inUse++;
    this.byAddress.add(address);
  }
}

/** A catalogue error as the status a grpc-js call ends with (the code in `ws-error-code`). */
function status(code: grpc.status, err: ApiError): grpc.StatusObject {
  const metadata = new grpc.Metadata();
  metadata.set('ws-error-code', err.code);
  return { code, details: err.message, metadata };
}

/** The interceptor. */
export function guardCalls(intake: SessionIntake, limits: CallLimits, slots = new ReadSlots(limits.readers, limits.readersPerAddress, limits.waitingPerAddress)): grpc.ServerInterceptor {
  return (_method, next) => {
    const address = callerAddress(next.getConnectionInfo().remoteAddress);
    const call = new GuardedCall(next, address, slots, limits.messageTimeoutMs);
    if (!intake.limiter.take(address, 1)) {
      intake.countRateLimited('grpc');
      call.refuse(grpc.status.RESOURCE_EXHAUSTED, intake.rateLimited(address));
    }
    return call;
  };
}

class GuardedCall extends grpc.ServerInterceptingCall {
  /** Where the call's current ask for a message stands, and since when (performance.now()). */
  private phase: 'idle' | 'waiting' | 'reading' = 'idle';
  private since = 0;
  /** One timer per call, re-armed lazily: a stream's messages do not each set a timer. */
  private timer: NodeJS.Timeout | undefined;
  private withdraw: (() => void) | undefined;
  private refused: grpc.StatusObject | undefined;
  private ended = false;
  /** True while startRead asks for a slot: a grant then is at once, and the ask's time stands. */
  private asking = false;
  private readonly granted = (): void => {
    this.withdraw = undefined;
    if (!this.asking) this.since = performance.now(); // after a wait, the read's deadline starts now
    this.phase = 'reading';
    super.startRead();
  };
  private readonly onTimer = (): void => {
    this.timer = undefined;
    if (this.ended || this.phase === 'idle') return;
    const left = this.since + this.messageTimeoutMs - performance.now();
    if (left > 0) {
      this.timer = setTimeout(this.onTimer, left);
      return;
    }
    if (this.phase === 'waiting') {
      this.sendStatus(status(grpc.status.RESOURCE_EXHAUSTED, Overloaded(`no read slot within ${this.messageTimeoutMs} ms: the agent receives as many messages at once as it holds memory for`)));
    } else {
      this.sendStatus(status(grpc.status.DEADLINE_EXCEEDED, RequestTimeout(`no message within ${this.messageTimeoutMs} ms of asking for it`)));
    }
  };

  constructor(
    next: grpc.ServerInterceptingCallInterface,
    private readonly address: string,
    private readonly slots: ReadSlots,
    private readonly messageTimeoutMs: number,
  ) {
    // The listener and responder hooks run after construction; `self` is bound by then.
    let self!: GuardedCall;
    super(next, {
      start: (startNext) => {
        // Refused at its start: the handler never sees the call; its status goes out instead.
        if (self.refused) return void self.sendStatus(self.refused);
        startNext({
          onReceiveMessage: (message, nextMessage) => {
            self.readDone();
            nextMessage(message);
          },
          onReceiveHalfClose: (nextHalfClose) => {
            self.readDone();
            nextHalfClose();
          },
          onCancel: () => self.end(),
        });
      },
      sendStatus: (s, nextStatus) => {
        self.end();
        nextStatus(s);
      },
    });
    self = this;
  }

  refuse(code: grpc.status, err: ApiError): void {
    this.refused = status(code, err);
  }

  /**
   * The handler asks for the next message: it waits at most `messageTimeoutMs` for a read slot,
   * then has `messageTimeoutMs` to arrive.
   */
  override startRead(): void {
    if (this.ended || this.refused) return;
    this.phase = 'waiting';
    this.since = performance.now();
    this.timer ??= setTimeout(this.onTimer, this.messageTimeoutMs);
    this.asking = true;
    const withdraw = this.slots.acquire(this.address, this.granted);
    this.asking = false;
    if (withdraw === undefined) {
      this.sendStatus(status(grpc.status.RESOURCE_EXHAUSTED, Overloaded('too many calls from this address already wait for a read slot')));
      return;
    }
    if (this.phase === 'waiting') this.withdraw = withdraw;
  }

  /** A message (or the half-close) arrived: the slot goes, and the deadline with the ask. */
  private readDone(): void {
    if (this.phase === 'reading') this.slots.release(this.address);
    this.phase = 'idle';
  }

  private end(): void {
    if (this.ended) return;
    this.readDone();
    this.ended = true;
    this.withdraw?.();
    this.withdraw = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
