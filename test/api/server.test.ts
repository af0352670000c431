// Proves startServer over a real socket: it listens where told, with the keep-alive and the
// header and request deadlines of http-listener.ts, the caller address is the real peer's, and
// a signal closes it gracefully.
import { afterEach, describe, expect, it } from 'vitest';
import { parseListen, startServer, type RunningServer } from '../../src/api/server.js';
import { fixture, report } from './helpers/app-fixture.js';

let running: RunningServer | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

describe('startServer', () => {
  it('serves on the loopback with keep-alive and bounded timeouts; the caller is the socket peer', async () => {
    // Proves the real-socket path end to end, spoof check included: 127.0.0.1 may report 127.0.0.1.
    const { app, engine } = fixture();
    running = await startServer(app, '127.0.0.1:0', { handleSignals: false });
    expect(running.url).toBe(`http://127.0.0.1:${running.port}`);
    expect(app.server.keepAliveTimeout).toBe(75_000);
    expect(app.server.headersTimeout).toBe(5_000);
    expect(app.server.requestTimeout).toBe(10_000);
    // Checked every second, so a deadline cuts a request within a second of passing (Node's default: 30 s).
    expect((app.server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval).toBe(1_000);
    const res = await fetch(`${running.url}/v1/sessions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(report({ local: '127.0.0.1:5000' })),
    });
    expect(res.status).toBe(200);
    expect(engine.calls[0]?.caller).toBe('127.0.0.1');
    const spoofed = await fetch(`${running.url}/v1/sessions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(report()),
    });
    expect(spoofed.status).toBe(403);
  });

  it('closes gracefully on SIGTERM and then runs the agent\'s shutdown', async () => {
    // Proves the signal path: the server stops listening, onShutdown runs, the handlers are removed.
    const { app } = fixture();
    const before = new Set(process.listeners('SIGTERM'));
    let shutdownFor: string | undefined;
    running = await startServer(app, '127.0.0.1:0', { onShutdown: async (signal) => { shutdownFor = signal; } });
    const ours = process.listeners('SIGTERM').filter((l) => !before.has(l));
    expect(ours).toHaveLength(1);
    ours[0]!('SIGTERM');
    await expect.poll(() => shutdownFor).toBe('SIGTERM');
    expect(app.server.listening).toBe(false);
    expect(process.listeners('SIGTERM').filter((l) => !before.has(l))).toEqual([]);
    await expect(fetch(`${running.url}/healthz`)).rejects.toThrow();
  });

  it('reads listen addresses in both families and refuses others', () => {
    // Proves host:port parsing, IPv6 in brackets.
    expect(parseListen('0.0.0.0:8080')).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(parseListen('[::]:9090')).toEqual({ host: '::', port: 9090 });
    expect(() => parseListen('8080')).toThrow(/host:port/);
    expect(() => parseListen('a:70000')).toThrow(/host:port/);
  });
});
