#!/usr/bin/env node
// gRPC stream load generator for bench/agent.ts: client-streaming ReportStream calls
// (proto/wansteer/v1/intake.proto) written as fast as the stream's backpressure allows.
// Messages are protobuf bytes made from one template (bench/load/reports.mjs), handed to
// grpc-js as they are (identity serializer), so the generator spends its time sending.
//
//   node grpc-stream.mjs '{"target":"127.0.0.1:9091","streams":1,"warmup":1,"seconds":5,"base":0,"client":"grpc-js"}'
//
// client "grpc-js" (the default) is the real client library; "http2" frames the same messages
// by hand over node:http2 (see rawStream), for when grpc-js on the client is the limit.
// A warm-up stream runs first (not counted); then `streams` streams (each on its own
// connection) run `seconds` and half-close. Prints "start" and "stop" around the measured
// streams, then one JSON line: the summed StreamSummary and rate = received / (time from the
// first write to the last summary), so it counts what the agent processed, not what was sent.
import { fileURLToPath } from 'node:url';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { reportObject, templated } from './reports.mjs';

const job = JSON.parse(process.argv[2] ?? '{}');
const { target = '127.0.0.1:9091', streams = 1, warmup = 1, seconds = 5, base = 0, client = 'grpc-js' } = job;
const METHOD = '/wansteer.v1.SessionIntake/ReportStream';

const root = protobuf.loadSync(fileURLToPath(new URL('../../proto/wansteer/v1/intake.proto', import.meta.url)));
const Report = root.lookupType('wansteer.v1.SessionReport');
const Summary = root.lookupType('wansteer.v1.StreamSummary');
const message = templated((i) => Buffer.from(Report.encode(Report.fromObject(reportObject(i))).finish()));
const decodeSummary = (b) => Summary.toObject(Summary.decode(b), { longs: Number, defaults: true });

let next = base;

/** One stream on its own connection, written until `ms` have passed; resolves to its summary. */
function stream(index, ms) {
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), { 'wst.connection': index });
  return new Promise((resolve, reject) => {
    const call = client.makeClientStreamRequest(METHOD, (b) => b, decodeSummary, (err, summary) => {
      client.close();
      if (err) reject(err);
      else resolve(summary);
    });
    const until = performance.now() + ms;
    const pump = () => {
      while (performance.now() < until) {
        if (!call.write(message(next++))) {
          call.once('drain', pump);
          return;
        }
      }
      call.end();
    };
    pump();
  });
}

/**
 * The same call without grpc-js on the client: node:http2 with the gRPC framing written by
 * hand (5-byte prefix + message), `batch` messages per write. The agent sees the same bytes
 * on the wire; the client spends next to nothing per message, so the agent is the limit.
 */
function rawStream(index, ms, batch = 256) {
  const [host, port] = target.split(':');
  const session = http2.connect(`http://${host}:${port}`, { settings: { initialWindowSize: 1 << 20 } });
  return new Promise((resolve, reject) => {
    session.on('error', reject);
    const call = session.request({ ':method': 'POST', ':path': METHOD, 'content-type': 'application/grpc', te: 'trailers' });
    const chunks = [];
    call.on('data', (d) => chunks.push(d));
    call.on('error', reject);
    call.on('trailers', (trailers) => {
      session.close();
      const status = Number(trailers['grpc-status']);
      if (status !== 0) return reject(new Error(`grpc-status ${status}: ${trailers['grpc-message']}`));
      const body = Buffer.concat(chunks);
      resolve(decodeSummary(body.subarray(5, 5 + body.readUInt32BE(1))));
    });
    const size = message(0).length + 5;
    const until = performance.now() + ms;
    const pump = () => {
      while (performance.now() < until) {
        const out = Buffer.allocUnsafe(size * batch);
        for (let k = 0; k < batch; k++) {
          out[k * size] = 0;
          out.writeUInt32BE(size - 5, k * size + 1);
          message(next++).copy(out, k * size + 5);
        }
        if (!call.write(out)) {
          call.once('drain', pump);
          return;
        }
      }
      call.end();
    };
    pump();
  });
}

function sum(summaries) {
  const out = { received: 0, steered: 0, unmatched: 0, rejected: 0, rejectedByReason: {}, firstError: '' };
  for (const s of summaries) {
    for (const k of ['received', 'steered', 'unmatched', 'rejected']) out[k] += s[k];
    for (const [k, v] of Object.entries(s.rejectedByReason ?? {})) out.rejectedByReason[k] = (out.rejectedByReason[k] ?? 0) + v;
    out.firstError ||= s.firstError;
  }
  return out;
}

try {
  const run = client === 'http2' ? rawStream : stream;
  const warm = await run(1000, warmup * 1000);
  console.log('start');
  const t0 = performance.now();
  const summaries = await Promise.all(Array.from({ length: streams }, (_, i) => run(i, seconds * 1000)));
  const elapsed = (performance.now() - t0) / 1000;
  console.log('stop');
  const total = sum(summaries);
  console.log(JSON.stringify({ mode: 'grpc-stream', client, streams, warmupReceived: warm.received, ...total, seconds: elapsed, rate: total.received / elapsed, steeredRate: total.steered / elapsed, used: next - base }));
  process.exit(0);
} catch (err) {
  console.log(JSON.stringify({ error: err.stack ?? String(err) }));
  process.exit(1);
}
