#!/usr/bin/env node
// Attacks and a victim for bench/abuse.ts: the holes issue 19 found, each reachable without a
// token, made from a separate process over the loopback, and a legitimate caller measuring its
// latency meanwhile. Plain JS, so the generator costs little next to the agent it attacks.
//
//   node abuse.mjs '<json job>'   prints one JSON line with the result (and its own CPU seconds).
//
// Every job takes host, port (HTTP) or grpcPort, `from` (the local address to connect from:
// 127.0.0.2 for the victim, 127.0.0.3 for an attacker, so the agent tells them apart) and
// `seconds` (how long the attack lasts).
//   {mode:"victim", rate}            POST /v1/sessions of its own sessions, `rate` a second over
//       one keep-alive connection (open loop; pipelined when an answer is owed). Latency runs
//       from the write to the answer's last byte.
//   {mode:"slow-body", connections, bytes}   each connection sends a batch's headers declaring
//       `bytes` and then all of its body but the last byte, and holds.
//   {mode:"grpc-partial", calls, sessions, bytes}   `calls` unary ReportBatch calls spread over
//       `sessions` HTTP/2 connections, each declaring a `bytes` message and sending all but 1000
//       bytes of it, and holding.
//   {mode:"flows", connections, limit}   GET /v1/flows?limit=… in a closed loop.
//   {mode:"nested", senders, bytes}   POST /v1/sessions:batch of `{"sessions":[[[…]]]}`, `bytes`
//       long, one after the other on each sender.
//   {mode:"trickle", bytes}           one request whose body comes at one byte a second; how
//       long until the agent cuts it (at most `seconds`).
import http2 from 'node:http2';
import net from 'node:net';

const job = JSON.parse(process.argv[2] ?? '{}');
const { host = '127.0.0.1', port = 9090, grpcPort = 9091, from, seconds = 10 } = job;
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function percentiles(xs) {
  const s = Float64Array.from(xs).sort();
  const at = (p) => (s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] : NaN);
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s.length ? s[s.length - 1] : NaN };
}

function connect() {
  return net.connect({ host, port, noDelay: true, ...(from ? { localAddress: from } : {}) });
}

/** Counts answers by `<status> <code>` (the WS_* code of a JSON error body, when there is one). */
class Tally {
  counts = {};
  add(status, body) {
    const code = /"code":"(WS_[A-Z_]+)"/.exec(body ?? '')?.[1] ?? '';
    const key = `${status}${code ? ` ${code}` : ''}`;
    this.counts[key] = (this.counts[key] ?? 0) + 1;
  }
}

/** Parses HTTP/1.1 answers off a socket as they complete: onAnswer(status, body). */
function answers(socket, onAnswer) {
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.latin1Slice(0, end);
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < end + 4 + length) return;
      onAnswer(Number(head.slice(9, 12)), buf.latin1Slice(end + 4, end + 4 + length));
      buf = buf.subarray(end + 4 + length);
    }
  });
}

const post = (path, length) =>
  `POST ${path} HTTP/1.1\r\nhost: ${host}:${port}\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`;

async function victim() {
  const { rate = 200 } = job;
  const latencies = [];
  const tally = new Tally();
  let errors = 0;
  let sent = [];
  let socket;
  const open = () => {
    socket = connect();
    socket.on('error', () => {});
    socket.on('close', () => {
      errors += sent.length; // owed answers that will not come
      sent = [];
      if (!stopping) open();
    });
    answers(socket, (status, body) => {
      const at = sent.shift();
      if (at !== undefined) latencies.push(now() - at);
      if (status !== 200) tally.add(status, body);
    });
  };
  let stopping = false;
  open();
  await new Promise((r) => socket.once('connect', r));
  const t0 = now();
  let k = 0;
  while (now() - t0 < seconds * 1000) {
    const due = t0 + (k * 1000) / rate;
    if (due > now()) await sleep(due - now());
    const body = JSON.stringify({
      direction: 'outbound',
      local: `${from}:${20000 + (k % 40000)}`,
      remote: '10.99.0.1:8080',
      request: { authority: 'cloud-service.cloud.svc.cluster.local', path: '/', method: 'GET', headers: { 'end-user': 'boss' } },
    });
    if (!socket.destroyed && socket.writable) {
      sent.push(now());
      socket.write(post('/v1/sessions', Buffer.byteLength(body)) + body);
    } else errors++;
    k++;
  }
  await sleep(500);
  stopping = true;
  errors += sent.length;
  socket.destroy();
  return { mode: 'victim', sent: k, ...percentiles(latencies), not200: tally.counts, errors };
}

/** Opens `n` sockets, `onOpen(socket, tally)` each; resolves after `seconds` with how many the agent closed. */
async function holdSockets(n, onOpen) {
  const tally = new Tally();
  let closedByAgent = 0;
  let holding = true;
  const closedAt = [];
  const t0 = now();
  const sockets = [];
  for (let i = 0; i < n; i++) {
    const s = connect();
    s.on('error', () => {});
    s.on('close', () => {
      if (holding) {
        closedByAgent++;
        closedAt.push((now() - t0) / 1000);
      }
    });
    answers(s, (status, body) => tally.add(status, body));
    s.once('connect', () => onOpen(s));
    sockets.push(s);
    if (i % 50 === 49) await sleep(10); // a burst, not one packet storm
  }
  await sleep(seconds * 1000 - (now() - t0));
  holding = false;
  const open = sockets.filter((s) => !s.destroyed).length;
  for (const s of sockets) s.destroy();
  return { connections: n, closedByAgent, openAtEnd: open, lastClosedAfterS: closedAt.length ? Math.max(...closedAt) : null, answers: tally.counts };
}

async function slowBody() {
  const { connections = 300, bytes = 2_000_000 } = job;
  const prefix = '{"sessions":[';
  const body = Buffer.alloc(bytes - 1, 0x20);
  body.write(prefix);
  const result = await holdSockets(connections, (s) => {
    s.write(post('/v1/sessions:batch', bytes));
    s.write(body);
  });
  return { mode: 'slow-body', bytes, ...result };
}

async function grpcPartial() {
  const { calls = 400, sessions = 4, bytes = 2_000_000 } = job;
  const tally = {};
  let endedByAgent = 0;
  let holding = true;
  const t0 = now();
  const endedAt = [];
  const clients = [];
  const payload = Buffer.alloc(bytes - 1000, 0x0a);
  for (let c = 0; c < sessions; c++) {
    // The attacker's own session queues 100 × 2 MB to send: Node's default 10 MB cap would refuse its streams itself.
    const session = http2.connect(`http://${host}:${grpcPort}`, { maxSessionMemory: 4096, ...(from ? { localAddress: from } : {}) });
    session.on('error', () => {});
    clients.push(session);
  }
  for (let i = 0; i < calls; i++) {
    const session = clients[i % sessions];
    if (session.destroyed || session.closed) continue;
    let call;
    try {
      call = session.request({ ':method': 'POST', ':path': '/wansteer.v1.SessionIntake/ReportBatch', 'content-type': 'application/grpc', te: 'trailers' });
    } catch {
      continue;
    }
    call.on('error', () => {});
    const ended = (headers) => {
      if (!holding) return;
      endedByAgent++;
      endedAt.push((now() - t0) / 1000);
      const key = `grpc-status ${headers?.['grpc-status'] ?? 'none'}${headers?.['ws-error-code'] ? ` ${headers['ws-error-code']}` : ''}`;
      tally[key] = (tally[key] ?? 0) + 1;
    };
    let ends = 0;
    call.on('response', (h) => h['grpc-status'] !== undefined && ends++ === 0 && ended(h));
    call.on('trailers', (h) => ends++ === 0 && ended(h));
    call.on('close', () => ends++ === 0 && ended({ 'grpc-status': `rst ${call.rstCode}` }));
    const head = Buffer.alloc(5);
    head.writeUInt32BE(bytes, 1);
    call.write(head);
    call.write(payload);
    if (i % 20 === 19) await sleep(5);
  }
  await sleep(seconds * 1000 - (now() - t0));
  holding = false;
  for (const s of clients) s.destroy();
  return { mode: 'grpc-partial', calls, sessions, bytes, endedByAgent, lastEndedAfterS: endedAt.length ? Math.max(...endedAt) : null, answers: tally };
}

async function flows() {
  const { connections = 4, limit = 1 } = job;
  const latencies = [];
  const tally = new Tally();
  let stop = false;
  const request = `GET /v1/flows?limit=${limit} HTTP/1.1\r\nhost: ${host}\r\n\r\n`;
  await Promise.all(
    Array.from({ length: connections }, () => new Promise((resolve) => {
      let socket;
      let at = 0;
      const open = () => {
        socket = connect();
        socket.on('error', () => {});
        socket.on('close', () => (stop ? resolve() : setTimeout(open, 10)));
        socket.once('connect', () => {
          at = now();
          socket.write(request);
        });
        answers(socket, (status, body) => {
          latencies.push(now() - at);
          tally.add(status, status === 200 ? '' : body);
          if (stop) return socket.destroy();
          at = now();
          socket.write(request);
        });
      };
      open();
    })).concat(sleep(seconds * 1000).then(() => (stop = true))),
  );
  return { mode: 'flows', limit, ...percentiles(latencies), answers: tally.counts };
}

async function nested() {
  const { senders = 2, bytes = 1_800_000 } = job;
  const depth = Math.floor((bytes - 14) / 2);
  const body = Buffer.from(`{"sessions":${'['.repeat(depth)}${']'.repeat(depth)}}`);
  const tally = new Tally();
  const latencies = [];
  const t0 = now();
  const sender = async () => {
    while (now() - t0 < seconds * 1000) {
      await new Promise((resolve) => {
        const s = connect();
        const at = now();
        let done = false;
        const finish = (status, text) => {
          if (done) return;
          done = true;
          latencies.push(now() - at);
          tally.add(status, text);
          s.destroy();
          resolve();
        };
        s.on('error', () => {});
        s.on('close', () => finish('closed', ''));
        answers(s, finish);
        s.once('connect', () => {
          s.write(post('/v1/sessions:batch', body.length));
          s.write(body);
        });
      });
    }
  };
  await Promise.all(Array.from({ length: senders }, sender));
  return { mode: 'nested', bytes: body.length, ...percentiles(latencies), answers: tally.counts };
}

async function trickle() {
  const { bytes = 1000 } = job;
  const t0 = now();
  let answer = null;
  const cutAfter = await new Promise((resolve) => {
    const s = connect();
    s.on('error', () => {});
    answers(s, (status, body) => (answer = { status, code: /"code":"(WS_[A-Z_]+)"/.exec(body)?.[1] ?? null }));
    let timer;
    s.on('close', () => {
      clearInterval(timer);
      resolve((now() - t0) / 1000);
    });
    s.once('connect', () => {
      s.write(post('/v1/sessions', bytes));
      timer = setInterval(() => s.write(' '), 1000);
    });
    setTimeout(() => {
      s.destroy();
    }, seconds * 1000);
  });
  return { mode: 'trickle', cutAfterS: cutAfter, cutByAgent: cutAfter < seconds - 0.5, answer };
}

const modes = { victim, 'slow-body': slowBody, 'grpc-partial': grpcPartial, flows, nested, trickle };
if (!modes[job.mode]) {
  console.log(JSON.stringify({ error: `unknown mode ${job.mode}` }));
  process.exit(1);
}
modes[job.mode]().then(
  (result) => {
    // This process's own CPU, so the benchmark can tell what everyone else used meanwhile.
    const { user, system } = process.cpuUsage();
    console.log(JSON.stringify({ ...result, cpuSeconds: (user + system) / 1e6 }));
    process.exit(0);
  },
  (err) => {
    console.log(JSON.stringify({ error: err.stack ?? String(err) }));
    process.exit(1);
  },
);
