/**
 * Failover on internet links: a connection bound to a link that dies cannot move (its address
 * is that link's), so the agent resets it at once — the class moves to the other link, the dead
 * link's conntrack entries are deleted, and the connection's next packet gets a TCP reset — and
 * a client that reconnects on error is back over the other link, with that link's address.
 * Faults are made in the ISP (on the path), for carrier loss and a blackhole.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EdgeRig, INTERNET_CLOUD, ISPS, PODS, SESSION_PORT, SESSIONS_TOOL } from '../../src/lab/index.js';
import { describePrivileged } from '../helpers/privilege.js';

const TOS_CLASS_10 = 10 << 2;

interface LoopEvent {
  event: 'first-byte' | 'error' | 'done';
  t?: string | number;
  seen?: string;
  error?: string;
}

/** A client that asks for 4 KB every 20 ms and reconnects when its connection breaks. */
function startLoop(rig: EdgeRig, dst: string, ms: number): { child: ChildProcess; events: LoopEvent[] } {
  const child = rig.lab.spawn(rig.lab.pods.pod0, ['python3', SESSIONS_TOOL, 'loop', dst, String(SESSION_PORT), String(ms), '0', '4096', String(TOS_CLASS_10)]);
  const events: LoopEvent[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => events.push(JSON.parse(l) as LoopEvent));
  return { child, events };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describePrivileged('internet links: failover resets bound connections, clients reconnect over the other link', () => {
  let rig: EdgeRig;
  beforeAll(async () => {
    rig = await EdgeRig.start({ tag: 'fail' });
    const put = rig.putPolicy('video', { match: { dscp: 10 }, action: { links: ['wan1', 'wan0'], mode: 'redirect' } });
    expect(put.status).toBe(201);
  }, 60_000);
  afterAll(async () => {
    await rig?.stop();
  });
  afterEach(async () => {
    rig.lab.setCarrier('wan1', true);
    rig.lab.blackhole('wan1', false);
    await rig.api.waitLinks((ls) => ls.every((l) => l.up), 20_000, 'both links up again');
  });

  const faults: { name: string; inject: () => bigint }[] = [
    { name: 'carrier loss', inject: () => { const t = process.hrtime.bigint(); rig.lab.setCarrier('wan1', false); return t; } },
    { name: 'blackhole in the ISP (carrier up)', inject: () => rig.lab.blackhole('wan1', true) },
  ];
  for (const family of [4, 6] as const) {
    for (const fault of faults) {
      it(`IPv${family}, ${fault.name}: the connection on wan1 is reset and the client is back on wan0 with wan0's address`, async () => {
        const dst = family === 4 ? INTERNET_CLOUD.v4 : INTERNET_CLOUD.v6;
        const [wan1, wan0] = family === 4 ? [ISPS.isp1.edge4, ISPS.isp0.edge4] : [ISPS.isp1.edge6, ISPS.isp0.edge6];
        const loop = startLoop(rig, dst, 12_000);
        await until('the first answer', () => loop.events.some((e) => e.event === 'first-byte'), 5000);
        expect(loop.events[0]!.seen, JSON.stringify(loop.events)).toBe(wan1);
        await sleep(300);
        const at = fault.inject();
        await until('an answer over wan0', () => loop.events.some((e) => e.event === 'first-byte' && e.seen === wan0), 5000);
        const back = loop.events.find((e) => e.event === 'first-byte' && e.seen === wan0)!;
        const gapMs = Number(BigInt(back.t!) - at) / 1e6;
        const errors = loop.events.filter((e) => e.event === 'error');
        console.log(`IPv${family} ${fault.name}: back on wan0 ${gapMs.toFixed(0)} ms after the fault; errors: ${errors.map((e) => e.error).join(', ')}`);
        // The old connection ended in an error (a reset, not a silent hang) and a new one took wan0.
        expect(errors.length).toBeGreaterThan(0);
        expect(gapMs).toBeGreaterThan(0);
        loop.child.kill();
        // Nothing is left bound to the dead link.
        const bound = rig.lab.conntrack(rig.lab.edge).filter((l) => /mark=33554432\b/.test(l) && l.includes('dport=8000'));
        expect(bound, JSON.stringify(loop.events)).toEqual([]);
        await until('the agent\'s log line', () => /internet link wan1 is down: its connections were reset/.test(rig.log), 5000);
        const metrics = rig.call('GET', '/metrics').body as string;
        expect(Number(/^wansteer_connection_resets_total\{link="wan1"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
      }, 30_000);
    }
  }

  it('a download\'s receiver, which only reads, is reset too when its link dies, not left waiting for its own timeout', async () => {
    // The receiver sends nothing of its own accord: the agent pokes it so it takes the reset (poke.ts).
    const child = rig.lab.spawn(rig.lab.pods.pod1, ['python3', SESSIONS_TOOL, 'exchange', INTERNET_CLOUD.v4, String(SESSION_PORT), '0', String(4 * 1024 ** 3), String(TOS_CLASS_10)]);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((r) => child.once('exit', r));
    const established = () => rig.lab.conntrack(rig.lab.edge).some((l) => l.includes('ESTABLISHED') && l.includes(`src=${PODS.pod1.v4} `) && l.includes('dport=8000'));
    await until('the download under way', established, 10_000);
    rig.lab.blackhole('wan1', true);
    await exited;
    const result = JSON.parse(out) as { error?: string };
    expect(result.error).toMatch(/reset/i); // the socket's own timeout would say "timed out"
  }, 30_000);

  it('a link whose ISP stops taking its address is reported down by its probes (they leave as steered connections do), and the class moves', async () => {
    // The probes share steered connections' fate: the link's own address, through its own table.
    const isp1 = rig.lab.isps.isp1;
    rig.lab.nft(isp1, [
      'table inet lab_refuse {',
      '  chain forward {',
      '    type filter hook forward priority -1; policy accept;',
      `    iifname "sub" ip saddr ${ISPS.isp1.edge4} drop`,
      `    iifname "sub" ip6 saddr ${ISPS.isp1.edge6} drop`,
      '  }',
      '}',
    ]);
    try {
      await rig.api.waitLinks((ls) => ls.some((l) => l.name === 'wan1' && !l.up), 5000, 'wan1 reported down');
      expect(rig.exchange('pod0', { tos: TOS_CLASS_10 }).seen).toBe(ISPS.isp0.edge4);
    } finally {
      rig.lab.nft(isp1, ['delete table inet lab_refuse']);
    }
  }, 30_000);

  it('a link whose routing table lost its route is reported down, and the agent puts the route back', async () => {
    rig.lab.exec(rig.lab.edge, ['ip', 'route', 'flush', 'table', '3601']);
    rig.lab.exec(rig.lab.edge, ['ip', '-6', 'route', 'flush', 'table', '3601']);
    await rig.api.waitLinks((ls) => ls.some((l) => l.name === 'wan1' && !l.up), 5000, 'wan1 reported down');
    await rig.api.waitLinks((ls) => ls.every((l) => l.up), 15_000, 'wan1 up again');
    expect(rig.lab.exec(rig.lab.edge, ['ip', 'route', 'show', 'table', '3601'])).toMatch(/default via 198\.51\.100\.1 dev wan1/);
    expect(rig.exchange('pod0', { tos: TOS_CLASS_10 }).seen).toBe(ISPS.isp1.edge4);
  }, 30_000);
});

