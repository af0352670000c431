#!/usr/bin/env node
// A tap between Envoy and the wansteer agent, run in the lab's edge namespace by the Envoy tests:
// Envoy's agent clusters point here, every session report is written to stdout as it arrives
// and passed on to the real agent, from the address Envoy sent it from (so the agent's spoof
// check sees what it would see without the tap), and the agent's answer goes back to Envoy.
// Commands on stdin make the agent misbehave, as Envoy must survive it:
//
//   node report-tap.mjs PORT AGENT_V4 AGENT_V6 AGENT_PORT
//   stdin, one JSON a line:  {"mode":"forward"}              pass reports on (the start)
//                            {"mode":"slow","ms":3000}        hold each report, then pass it on
//                            {"mode":"status","status":429}   answer at once with this status
//                            {"mode":"down"}                  stop listening: connections refused
//   stdout, one JSON a line: {"event":"ready"} | {"event":"mode",...} once a mode is in force
//                            {"event":"report","id","caller","path","contentType","body","at"}
//                            {"event":"answered","id","status","agent":{...},"at"}
//   A batch (POST /v1/sessions:batch, {"sessions":[...]}, the native reporter's) is recorded as
//   one report per session, each with its own id, its exact bytes as `body` and `batch` (the
//   batch's number); once the agent answers the batch, each id gets its "answered" (with its own
//   outcome from the agent's answer as `agent`, when it has them).
//   `at`: milliseconds on CLOCK_MONOTONIC (process.hrtime), the same clock in every namespace.
import http from 'node:http';
import { createInterface } from 'node:readline';

const [port, agentV4, agentV6, agentPort] = process.argv.slice(2);
let mode = { mode: 'forward' };
let server;
let nextId = 1;
const sockets = new Set();
const now = () => Number(process.hrtime.bigint()) / 1e6;
const say = (event) => process.stdout.write(JSON.stringify({ ...event, at: now() }) + '\n');

/** A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d. */
const plain = (address) => address.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');

function forward(caller, req, body) {
  return new Promise((resolve) => {
    const v6 = caller.includes(':');
    const out = http.request(
      {
        host: v6 ? agentV6 : agentV4,
        port: Number(agentPort),
        localAddress: caller,
        method: req.method,
        path: req.url,
        headers: { 'content-type': req.headers['content-type'] ?? 'application/json', 'content-length': Buffer.byteLength(body) },
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode, text }));
      },
    );
    out.on('error', (e) => resolve({ status: 502, text: JSON.stringify({ error: e.message }) }));
    out.end(body);
  });
}

/**
 * The raw text of each element of a batch's "sessions" array, byte for byte as sent (a parse and
 * re-serialisation could change escapes, and the reports must compare byte-identical).
 */
function rawSessions(body) {
  const opening = '{"sessions":[';
  if (!body.startsWith(opening)) return [body];
  const start = opening.length - 1;
  const out = [];
  let depth = 0;
  let inString = false;
  let from = -1;
  for (let i = start + 1; i < body.length; i++) {
    const c = body[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (depth === 0) from = i;
      depth++;
    } else if (c === '}' || c === ']') {
      if (depth === 0) break; // the array's end
      depth--;
      if (depth === 0) out.push(body.slice(from, i + 1));
    }
  }
  return out;
}

let nextBatch = 1;

function handle(req, res) {
  const chunks = [];
  req.on('data', (d) => chunks.push(d));
  req.on('end', async () => {
    const caller = plain(req.socket.remoteAddress);
    const body = Buffer.concat(chunks).toString('utf8');
    const current = mode;
    const batch = req.url === '/v1/sessions:batch' ? nextBatch++ : undefined;
    const ids = [];
    for (const session of batch === undefined ? [body] : rawSessions(body)) {
      const id = nextId++;
      ids.push(id);
      say({ event: 'report', id, caller, path: req.url, contentType: req.headers['content-type'], body: session, ...(batch !== undefined ? { batch } : {}) });
    }
    let answer;
    if (current.mode === 'status') {
      answer = { status: current.status, text: JSON.stringify({ code: 'WS_TAP', message: `the tap answers ${current.status}` }) };
    } else {
      if (current.mode === 'slow') await new Promise((r) => setTimeout(r, current.ms));
      answer = await forward(caller, req, body);
    }
    let agent;
    try {
      agent = JSON.parse(answer.text);
    } catch {
      agent = answer.text;
    }
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(answer.text);
    // A batch's answer has an outcome per report, in order: each session gets its own.
    ids.forEach((id, i) => say({ event: 'answered', id, status: answer.status, agent: batch !== undefined && Array.isArray(agent?.outcomes) ? agent.outcomes[i] : agent }));
  });
}

function listen() {
  return new Promise((resolve) => {
    server = http.createServer(handle);
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    server.listen({ port: Number(port), host: '::', ipv6Only: false }, resolve);
  });
}

async function apply(next) {
  if (next.mode === 'down' && server) {
    await new Promise((resolve) => {
      server.close(resolve);
      for (const s of sockets) s.destroy();
    });
    server = undefined;
  } else if (next.mode !== 'down' && !server) {
    await listen();
  }
  mode = next;
  say({ event: 'mode', ...next });
}

await listen();
say({ event: 'ready' });
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim()) await apply(JSON.parse(line));
}
