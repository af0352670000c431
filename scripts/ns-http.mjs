#!/usr/bin/env node
// HTTP and gRPC from inside a lab namespace, run under nsenter by `wansteer demo` and the tests
// (plain JavaScript so it starts fast; the demo must not depend on the test helpers).
//   ns-http.mjs call                  reads one JSON job from stdin, prints one JSON answer (one line):
//                                       {"http": [{method, url, headers, body(string)}...]}
//                                         -> [{status, headers, body} | {status: 0, error}]
//                                       {"grpc": {target, method: "report"|"reportBatch", request}}
//                                         -> {ok: true, response} | {ok: false, code, details, metadata}
//   ns-http.mjs serve PORT            the cloud service: HTTP on all addresses, reads each
//                                     request's body to its end; prints "ready"
//   ns-http.mjs upload SRC SPORT DST DPORT HOST USER MS
//                                     one real request: POST / with `end-user: USER`, its
//                                     chunked body 1 KiB every 5 ms for MS ms, from SRC:SPORT
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
  const server = http.createServer((req, res) => {
    let bytes = 0;
    req.on('data', (d) => (bytes += d.length));
    req.on('end', () => res.end(`received ${bytes} bytes from ${req.headers['end-user'] ?? 'nobody'}\n`));
    req.on('error', () => {});
  });
  server.listen({ port: Number(args[0]), host: '::', ipv6Only: false }, () => console.log('ready'));
} else if (mode === 'upload') {
  const [src, sport, dst, dport, host, user, ms] = args;
  const socket = net.connect({ host: dst, port: Number(dport), localAddress: src, localPort: Number(sport) });
  socket.setNoDelay(true);
  socket.on('error', (e) => {
    console.error(`upload ${user} ${sport}: ${e.message}`);
    process.exit(1);
  });
  socket.on('connect', () => {
    socket.write(`POST / HTTP/1.1\r\nhost: ${host}\r\nend-user: ${user}\r\ntransfer-encoding: chunked\r\n\r\n`);
    const chunk = `400\r\n${'u'.repeat(1024)}\r\n`;
    const end = Date.now() + Number(ms);
    const timer = setInterval(() => {
      if (Date.now() < end) return void socket.write(chunk);
      clearInterval(timer);
      socket.end('0\r\n\r\n');
    }, 5);
  });
  socket.on('data', () => {});
  socket.on('close', () => process.exit(0));
} else {
  console.error('usage: ns-http.mjs call < JOB | serve PORT | upload SRC SPORT DST DPORT HOST USER MS');
  process.exit(2);
}
