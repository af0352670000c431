#!/usr/bin/env node
// HTTP clients for the Envoy tests, run under nsenter in a lab namespace: each connection is one
// TCP (or TLS) connection carrying its requests one after the other, HTTP/1.1 kept alive or
// HTTP/2, and says which addresses it had, so a test knows the 4-tuple Envoy saw.
//
//   node http-client.mjs             the job: one JSON line on stdin
//   JOB:    {"connections": [{"host", "port", "protocol": "h1"|"h2", "localAddress"?, "localPort"?,
//                             "tls"?: {"ca", "cert", "key", "servername"} (file names),
//                             "requests": [{"authority", "path", "method"?, "headers": [[name, value], ...],
//                                           "pause"?: true}]}]}
//   prints: {"event":"paused"} before a request with "pause", then waits for a line on stdin;
//           at the end one line: [{"local": "ip:port", "remote": "ip:port", "sockets": N,
//             "responses": [{"status", "body", "ms", "at"}]} | {"error"}]
//   A header named twice is sent twice. `sockets` counts the connections the requests used (1).
//   `at`: when the response ended, ms on CLOCK_MONOTONIC (the same clock in every namespace).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { createInterface } from 'node:readline';

const endpoint = (address, port) => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);
const plain = (address) => address.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
const now = () => Number(process.hrtime.bigint()) / 1e6;

const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Before a request marked `pause`: say so, and wait for the test's go-ahead. */
async function pause(r) {
  if (!r.pause) return;
  process.stdout.write('{"event":"paused"}\n');
  await stdin.next();
}

function headerObject(pairs) {
  const out = {};
  for (const [name, value] of pairs ?? []) {
    const key = name.toLowerCase();
    out[key] = key in out ? [].concat(out[key], value) : value;
  }
  return out;
}

function tlsOptions(tls) {
  if (!tls) return {};
  return { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key), servername: tls.servername };
}

async function h1(conn) {
  const lib = conn.tls ? https : http;
  const agent = new lib.Agent({ keepAlive: true, maxSockets: 1, ...tlsOptions(conn.tls) });
  const sockets = new Set();
  const responses = [];
  let local;
  let remote;
  for (const r of conn.requests) {
    await pause(r);
    const start = now();
    responses.push(
      await new Promise((resolve, reject) => {
        const req = lib.request(
          {
            host: conn.host,
            port: conn.port,
            method: r.method ?? 'GET',
            path: r.path,
            agent,
            localAddress: conn.localAddress,
            localPort: conn.localPort,
            headers: { host: r.authority, ...headerObject(r.headers) },
          },
          (res) => {
            sockets.add(res.socket);
            local = endpoint(plain(res.socket.localAddress), res.socket.localPort);
            remote = endpoint(plain(res.socket.remoteAddress), res.socket.remotePort);
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d) => (body += d));
            res.on('end', () => resolve({ status: res.statusCode, body, ms: now() - start, at: now() }));
          },
        );
        req.on('error', reject);
        req.end();
      }),
    );
  }
  agent.destroy();
  return { local, remote, sockets: sockets.size, responses };
}

async function h2(conn) {
  const authority = `${conn.tls ? 'https' : 'http'}://${endpoint(conn.host, conn.port)}`;
  const session = http2.connect(authority, { ...tlsOptions(conn.tls), localAddress: conn.localAddress, localPort: conn.localPort });
  await new Promise((resolve, reject) => {
    session.once('connect', resolve);
    session.once('error', reject);
  });
  const socket = session.socket;
  const local = endpoint(plain(socket.localAddress), socket.localPort);
  const remote = endpoint(plain(socket.remoteAddress), socket.remotePort);
  const responses = [];
  for (const r of conn.requests) {
    await pause(r);
    const start = now();
    responses.push(
      await new Promise((resolve, reject) => {
        const stream = session.request({ ':method': r.method ?? 'GET', ':path': r.path, ':authority': r.authority, ...headerObject(r.headers) });
        let status = 0;
        let body = '';
        stream.on('response', (headers) => (status = headers[':status']));
        stream.setEncoding('utf8');
        stream.on('data', (d) => (body += d));
        stream.on('end', () => resolve({ status, body, ms: now() - start, at: now() }));
        stream.on('error', reject);
        stream.end();
      }),
    );
  }
  session.close();
  return { local, remote, sockets: 1, responses };
}

// The job is the first line on stdin; go-aheads for paused requests follow.
const job = JSON.parse((await stdin.next()).value);
const out = [];
for (const conn of job.connections) {
  try {
    out.push(await (conn.protocol === 'h2' ? h2(conn) : h1(conn)));
  } catch (err) {
    out.push({ error: err.message });
  }
}
console.log(JSON.stringify(out));
process.exit(0);
