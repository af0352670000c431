#!/usr/bin/env node
// HTTP load generator for bench/agent.ts: raw HTTP/1.1 over a few keep-alive sockets, requests
// made from a byte template (bench/load/reports.mjs), responses parsed by hand. Plain JS so the
// generator costs little next to the agent it measures.
//
//   node http-load.mjs '<json job>'   prints "start" and "stop" lines around the measured
//                                     window, then one JSON line with the result.
//
// Jobs (all take host, port, base = index of the first report's 5-tuple):
//   {mode:"open", rate, seconds, conns, pace}   open loop: report k is due at start + k/rate, sent
//       on socket k % conns; pipelined when a socket still has answers owed. pace "spin": sent
//       the moment it is due (a setImmediate loop, µs schedule, one core busy); "timer": every
//       1 ms, what has come due since (the generator sleeps in between).
//       Latency = from the write of a request to the last byte of its response.
//   {mode:"closed", conns, depth, warmup, seconds}   each socket keeps `depth` requests in
//       flight; reports/s = 200 answers in the measured window (after `warmup` s) / its length.
//   {mode:"fill", count, batch, depth}     `count` reports via POST /v1/sessions:batch.
import net from 'node:net';
import { reportObject, templated } from './reports.mjs';

const job = JSON.parse(process.argv[2] ?? '{}');
const { host = '127.0.0.1', port = 9090, base = 0 } = job;
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

function head(path, length) {
  return `POST ${path} HTTP/1.1\r\nhost: ${host}:${port}\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`;
}

/** Report i as a whole request, from the template. */
const singleRequest = templated((i) => {
  const body = JSON.stringify(reportObject(i));
  return Buffer.from(head('/v1/sessions', Buffer.byteLength(body)) + body, 'latin1');
});

function batchRequest(from, n) {
  const sessions = [];
  for (let i = 0; i < n; i++) sessions.push(reportObject(from + i));
  const body = JSON.stringify({ sessions });
  return Buffer.from(head('/v1/sessions:batch', Buffer.byteLength(body)) + body, 'latin1');
}

const CRLF2 = Buffer.from('\r\n\r\n');

/**
 * A keep-alive connection with pipelining: answers come back in order, so each write pushes
 * its time on a queue and each parsed answer shifts one off. onAnswer(status, sentAtMs, body).
 */
class Conn {
  constructor(onAnswer) {
    this.onAnswer = onAnswer;
    this.sent = [];
    this.head = 0;
    this.buf = null;
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.on('data', (chunk) => this.data(chunk));
    this.socket.on('error', (err) => fail(`socket: ${err.message}`));
    this.socket.on('close', () => {
      if (!closing) fail('the agent closed a connection');
    });
    this.ready = new Promise((resolve) => this.socket.once('connect', resolve));
  }

  get owed() {
    return this.sent.length - this.head;
  }

  write(bytes) {
    this.sent.push(now());
    this.socket.write(bytes);
  }

  data(chunk) {
    let buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      const end = buf.indexOf(CRLF2);
      if (end < 0) break;
      const text = buf.latin1Slice(0, end);
      const m = /\r\ncontent-length: *(\d+)/i.exec(text);
      const total = end + 4 + (m ? Number(m[1]) : 0);
      if (buf.length < total) break;
      const status = Number(text.slice(9, 12));
      const at = now();
      const sentAt = this.sent[this.head++];
      if (this.head > 4096 && this.head * 2 > this.sent.length) {
        this.sent = this.sent.slice(this.head);
        this.head = 0;
      }
      this.onAnswer(status, at - sentAt, status === 200 ? null : buf.latin1Slice(end + 4, total), buf, end + 4, total);
      buf = buf.subarray(total);
    }
    this.buf = buf.length ? buf : null;
  }
}

let closing = false;
function fail(message) {
  console.log(JSON.stringify({ error: message }));
  process.exit(1);
}

function percentiles(xs) {
  const s = Float64Array.from(xs).sort();
  const at = (p) => (s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] : NaN);
  return { n: s.length, p50: at(0.5), p99: at(0.99), p999: at(0.999), max: s.length ? s[s.length - 1] : NaN };
}

async function open() {
  const { rate, seconds, conns = 8, pace = 'spin' } = job;
  const total = Math.round(rate * seconds);
  // Made before the clock starts: the schedule must not wait on the generator's own work.
  const requests = Array.from({ length: total }, (_, k) => singleRequest(base + k));
  const latencies = new Float64Array(total);
  let answered = 0;
  let not200 = 0;
  let firstError = null;
  let done;
  const finished = new Promise((r) => (done = r));
  const pool = Array.from({ length: conns }, () =>
    new Conn((status, ms, body) => {
      latencies[answered++] = ms;
      if (status !== 200) {
        not200++;
        firstError ??= `${status} ${body}`;
      }
      if (answered === total) done();
    }),
  );
  await Promise.all(pool.map((c) => c.ready));
  console.log('start');
  const start = now();
  const interval = 1000 / rate;
  let next = 0;
  let worstLag = 0;
  let pipelined = 0;
  await new Promise((resolve) => {
    const due = () => {
      const t = now();
      while (next < total && start + next * interval <= t) {
        worstLag = Math.max(worstLag, t - (start + next * interval));
        const c = pool[next % conns];
        if (c.owed > 0) pipelined++;
        c.write(requests[next++]);
      }
      return next < total;
    };
    if (pace === 'spin') {
      const spin = () => (due() ? setImmediate(spin) : resolve());
      spin();
    } else {
      const timer = setInterval(() => {
        if (!due()) {
          clearInterval(timer);
          resolve();
        }
      }, 1);
    }
  });
  const sentIn = now() - start;
  const timeout = setTimeout(() => fail(`only ${answered} of ${total} answered 10 s after the last was sent`), 10_000);
  await finished;
  clearTimeout(timeout);
  console.log('stop');
  closing = true;
  for (const c of pool) c.socket.destroy();
  const p = percentiles(latencies);
  return { mode: 'open', pace, rate, sent: total, achievedRate: total / (sentIn / 1000), not200, firstError, worstLagMs: worstLag, pipelined, ...p, used: total };
}

async function closed() {
  const { conns = 8, depth = 16, warmup = 1, seconds = 5 } = job;
  let next = 0;
  let counting = false;
  let counted = 0;
  let not200 = 0;
  let firstError = null;
  const latencies = [];
  const pool = Array.from({ length: conns }, () => {
    const c = new Conn((status, ms, body) => {
      if (status !== 200) {
        not200++;
        firstError ??= `${status} ${body}`;
      }
      if (counting) {
        counted++;
        if ((counted & 7) === 0) latencies.push(ms);
      }
      if (!closing) c.write(singleRequest(base + next++));
    });
    return c;
  });
  await Promise.all(pool.map((c) => c.ready));
  for (const c of pool) for (let d = 0; d < depth; d++) c.write(singleRequest(base + next++));
  await new Promise((r) => setTimeout(r, warmup * 1000));
  console.log('start');
  counting = true;
  const t0 = now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  counting = false;
  const elapsed = (now() - t0) / 1000;
  console.log('stop');
  closing = true;
  // Let what is in flight come back, so every request sent is accounted for.
  await new Promise((r) => setTimeout(r, 300));
  for (const c of pool) c.socket.destroy();
  const p = percentiles(latencies);
  return { mode: 'closed', conns, depth, rate: counted / elapsed, answered: counted, not200, firstError, p50: p.p50, p99: p.p99, used: next };
}

async function fill() {
  const { count, batch = 1000, depth = 2 } = job;
  let next = 0;
  let steered = 0;
  let not200 = 0;
  let firstError = null;
  let done;
  const finished = new Promise((r) => (done = r));
  let inFlight = 0;
  const send = (c) => {
    if (next >= count) {
      if (inFlight === 0) done();
      return;
    }
    const n = Math.min(batch, count - next);
    c.write(batchRequest(base + next, n));
    next += n;
    inFlight++;
  };
  const c = new Conn((status, _ms, body, buf, from, to) => {
    inFlight--;
    if (status !== 200) {
      not200++;
      firstError ??= `${status} ${body}`;
    } else {
      steered += Number(/"steered":(\d+)/.exec(buf.latin1Slice(Math.max(from, to - 200), to))?.[1] ?? 0);
    }
    send(c);
  });
  await c.ready;
  console.log('start');
  const t0 = now();
  for (let d = 0; d < depth; d++) send(c);
  await finished;
  console.log('stop');
  closing = true;
  c.socket.destroy();
  return { mode: 'fill', count, steered, not200, firstError, seconds: (now() - t0) / 1000, used: count };
}

const modes = { open, closed, fill };
if (!modes[job.mode]) fail(`unknown mode ${job.mode}`);
modes[job.mode]().then(
  (result) => {
    console.log(JSON.stringify(result));
    process.exit(0);
  },
  (err) => fail(err.stack ?? String(err)),
);
