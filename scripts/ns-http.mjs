#!/usr/bin/env node
// HTTP and gRPC from inside a lab namespace, run under nsenter by `wansteer demo` and the tests
// (plain JavaScript so it starts fast; the demo must not depend on the test helpers).
//   ns-http.mjs call                  reads one JSON job from stdin, prints one JSON answer (one line):
//                                       {"http": [{method, url, headers, body(string)}...]}
//                                         -> [{status, headers, body} | {status: 0, error}]
//                                       {"grpc": {target, method: "report"|"reportBatch", request}}
//                                         -> {ok: true, response} | {ok: false, code, details, metadata}
//   ns-http.mjs serve PORT [SAMPLE_MS]
//                                     the cloud service: HTTP on all addresses, reads each
//                                     request's body to its end; prints "ready". With SAMPLE_MS,
//                                     then every SAMPLE_MS each read since the last print, per
//                                     connection by the client's port, as the time it returned and
//                                     the body bytes so far, and the time of the print:
//                                       "g <port> <CLOCK_MONOTONIC ns>:<bytes> <ns>:<bytes> ..."
//                                       "t <CLOCK_MONOTONIC ns>"
//                                     (in-order bytes the application got: goodput, src/lab/goodput.ts)
//   ns-http.mjs upload SRC SPORT[,SPORT...] DST DPORT HOST USER MS [KIB_PER_S]
//                                     one real request per source port: POST / with `end-user:
//                                     USER`, its chunked body paced at KIB_PER_S (default 200)
//                                     for MS ms, from SRC:SPORT. Paced by the clock, not by the
//                                     socket: what a stalled connection could not send waits in
//                                     its buffer and goes when it can, as an application's would.
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const [mode, ...args] = process.argv.slice(2);

function request({ method = 'GET', url, headers = {}, body }) {
  return new Promise((resolve) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let parsed = text;
        try { parsed = JSON.parse(text); } catch { /* not JSON (metrics) */ }
        resolve({ status: res.statusCode, headers: res.headers, body: parsed });
      });
    });
    req.on('error', (e) => resolve({ status: 0, error: e.message }));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** One unary call to the agent's SessionIntake; grpc-js loads only for such a job. */
async function grpcCall({ target, method, request: message }) {
  const grpc = await import('@grpc/grpc-js');
  const loader = await import('@grpc/proto-loader');
  const proto = fileURLToPath(new URL('../proto/wansteer/v1/intake.proto', import.meta.url));
  const def = loader.loadSync(proto, { keepCase: false, longs: Number, enums: String, defaults: false, oneofs: true });
  const Service = grpc.loadPackageDefinition(def).wansteer.v1.SessionIntake;
  const client = new Service(target, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client[method](message, (err, response) => {
      client.close();
      resolve(err ? { ok: false, code: err.code, details: err.details, metadata: err.metadata?.getMap() } : { ok: true, response });
    });
  });
}

if (mode === 'call') {
  let input = '';
  for await (const chunk of process.stdin) input += chunk;
  const job = JSON.parse(input);
  if (job.grpc) {
    console.log(JSON.stringify(await grpcCall(job.grpc)));
  } else {
    const out = [];
    for (const r of job.http) out.push(await request(r));
    console.log(JSON.stringify(out));
  }
} else if (mode === 'serve') {
  const sampleMs = Number(args[1] ?? 0);
  /** Per open connection, by the client's port: body bytes so far, and each read not yet printed. */
  const conns = new Map();
  const server = http.createServer((req, res) => {
    const port = req.socket.remotePort;
    const c = { bytes: 0, reads: '' };
    if (sampleMs > 0) conns.set(port, c);
    req.on('data', (d) => {
      c.bytes += d.length;
      if (sampleMs > 0) c.reads += ` ${process.hrtime.bigint()}:${c.bytes}`;
    });
    req.on('end', () => res.end(`received ${c.bytes} bytes from ${req.headers['end-user'] ?? 'nobody'}\n`));
    req.on('error', () => {});
    req.socket.once('close', () => conns.delete(port));
  });
  server.listen({ port: Number(args[0]), host: '::', ipv6Only: false }, () => {
    console.log('ready');
    if (sampleMs > 0) {
      setInterval(() => {
        let out = '';
        for (const [port, c] of conns) {
          if (c.reads) out += `g ${port}${c.reads}\n`;
          c.reads = '';
        }
        process.stdout.write(`${out}t ${process.hrtime.bigint()}\n`);
      }, sampleMs);
    }
  });
} else if (mode === 'upload') {
  const [src, sports, dst, dport, host, user, ms, kibPerSecond = '200'] = args;
  const bytesPerMs = (Number(kibPerSecond) * 1024) / 1000;
  let open = 0;
  for (const sport of sports.split(',')) {
    const socket = net.connect({ host: dst, port: Number(dport), localAddress: src, localPort: Number(sport) });
    open++;
    socket.setNoDelay(true);
    socket.on('error', (e) => {
      console.error(`upload ${user} ${sport}: ${e.message}`);
      process.exit(1);
    });
    socket.on('connect', () => {
      socket.write(`POST / HTTP/1.1\r\nhost: ${host}\r\nend-user: ${user}\r\ntransfer-encoding: chunked\r\n\r\n`);
      const start = performance.now();
      let sent = 0;
      const timer = setInterval(() => {
        const elapsed = performance.now() - start;
        if (elapsed >= Number(ms)) {
          clearInterval(timer);
          socket.end('0\r\n\r\n');
          return;
        }
        const due = Math.floor(elapsed * bytesPerMs) - sent;
        if (due <= 0) return;
        socket.write(`${due.toString(16)}\r\n${'u'.repeat(due)}\r\n`);
        sent += due;
      }, 5);
    });
    socket.on('data', () => {});
    socket.on('close', () => {
      if (--open === 0) process.exit(0);
    });
  }
} else {
  console.error('usage: ns-http.mjs call < JOB | serve PORT [SAMPLE_MS] | upload SRC SPORT[,SPORT...] DST DPORT HOST USER MS [KIB_PER_S]');
  process.exit(2);
}
