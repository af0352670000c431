#!/usr/bin/env node
// Calls the agent from inside a network namespace (run under nsenter), as a sidecar would:
// plain JavaScript so it starts fast. Reads one JSON job from stdin, prints one JSON answer.
//   {"http": [{"method","url","headers","body"(string)}...]}   -> [{status, headers, body}]
//   {"grpc": {"target","method":"report|reportBatch","request"}} -> {ok, response | code, details, metadata}
import http from 'node:http';
import { fileURLToPath } from 'node:url';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const job = JSON.parse(input);

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

if (job.http) {
  const out = [];
  for (const r of job.http) out.push(await request(r));
  console.log(JSON.stringify(out));
} else if (job.grpc) {
  const grpc = await import('@grpc/grpc-js');
  const loader = await import('@grpc/proto-loader');
  const proto = fileURLToPath(new URL('../../proto/wansteer/v1/intake.proto', import.meta.url));
  const def = loader.loadSync(proto, { keepCase: false, longs: Number, enums: String, defaults: false, oneofs: true });
  const Service = grpc.loadPackageDefinition(def).wansteer.v1.SessionIntake;
  const client = new Service(job.grpc.target, grpc.credentials.createInsecure());
  client[job.grpc.method](job.grpc.request, (err, response) => {
    console.log(JSON.stringify(err ? { ok: false, code: err.code, details: err.details, metadata: err.metadata?.getMap() } : { ok: true, response }));
    client.close();
  });
}
