/**
 * `wansteer agent` in reply-by-arrival mode, started as the CLI starts it but in the in-memory
 * dry run (no root): it serves health, readiness, its links, its learned flows and its metrics,
 * and has no policy or session routes. The kernel side runs in test/overlay/nat-downloads.test.ts.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../src/cli/agent.js';
import { loadConfig } from '../../src/config/load.js';

describe('wansteer agent, mode: reply-by-arrival (dry run)', () => {
  let dir: string;
  let agent: RunningAgent;
  const get = async (path: string) => {
    const r = await fetch(agent.httpUrl + path);
    return { status: r.status, text: await r.text() };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wansteer-reply-agent-'));
    await writeFile(join(dir, 'config.yaml'), [
      'mode: reply-by-arrival',
      'links:',
      '  - { name: tun0, interface: wg0, nextHop4: 10.10.1.1 }',
      '  - { name: tun1, interface: wg1, nextHop4: 10.10.2.1 }',
      `datapath: { dryRun: true, pinDir: ${dir}/pins, flowTableSize: 4096 }`,
    ].join('\n') + '\n');
    const config = await loadConfig({ file: join(dir, 'config.yaml'), env: {} });
    agent = await startAgent({ ...config, listen: { http: '127.0.0.1:0' } }, pino({ level: 'silent' }), { handleSignals: false });
  });

  afterAll(async () => {
    await agent?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('is live and ready once its links are set up', async () => {
    expect(await get('/healthz')).toEqual({ status: 200, text: '{"status":"ok"}' });
    expect((await get('/readyz')).status).toBe(200);
  });

  it('lists its links and the flows it learned (none: nothing arrives in a dry run)', async () => {
    const links = JSON.parse((await get('/v1/links')).text) as { items: unknown[] };
    expect(links.items).toEqual([
      { name: 'tun0', interface: 'wg0', ifindex: 1000, up: true, arrived: { packets: 0, bytes: 0 }, replied: { packets: 0, bytes: 0 } },
      { name: 'tun1', interface: 'wg1', ifindex: 1001, up: true, arrived: { packets: 0, bytes: 0 }, replied: { packets: 0, bytes: 0 } },
    ]);
    expect(JSON.parse((await get('/v1/arrivals?limit=5')).text)).toEqual({ items: [] });
    expect((await get('/v1/arrivals?limit=0')).status).toBe(400);
  });

  it('exports its own metrics', async () => {
    const { text } = await get('/metrics');
    expect(text).toContain('wansteer_reply_link_up{link="tun1"} 1');
    expect(text).toContain('wansteer_reply_sent_bytes_total{link="tun0"} 0');
    expect(text).toContain('wansteer_reply_arrivals 0');
    expect(text).toContain('wansteer_reply_datapath_packets_total{reason="no_match"} 0');
  });

  it('has no policies and no session intake at this end', async () => {
    expect((await get('/v1/policies')).status).toBe(404);
    const r = await fetch(agent.httpUrl + '/v1/sessions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(r.status).toBe(404);
    expect(JSON.parse(await r.text())).toMatchObject({ code: 'WS_API_NOT_FOUND' });
  });
});
