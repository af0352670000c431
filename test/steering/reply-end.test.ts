/**
 * The cloud end's link keeper (src/steering/reply-end.ts) over the in-memory reply datapath:
 * links are written with the interface and next hops the config names, a missing interface is
 * waited for (and named) until it appears, health moves a link down and up, and the views say
 * what the datapath holds. No kernel: what the programs do is test/datapath/reply-packets.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { MemoryReplyDatapath } from '../../src/datapath/index.js';
import type { LinkConfig } from '../../src/config/schema.js';
import { ReplyEnd } from '../../src/steering/reply-end.js';

const LINKS: LinkConfig[] = [
  { name: 'tun0', interface: 'wg0', nextHop4: '10.10.1.1', nextHop6: 'fd10:1::1' },
  { name: 'tun1', interface: 'wg1', nextHop4: '10.10.2.1' },
];

/** A host whose interfaces can appear and be recreated while the agent runs. */
class Host extends MemoryReplyDatapath {
  readonly present = new Map<string, number>();
  attached: string[] = [];
  override ifindex(ifname: string): number {
    const i = this.present.get(ifname);
    if (i === undefined) throw new Error(`no interface named ${ifname}`);
    return i;
  }
  override attach(ifname: string): { ifname: string; ifindex: number } {
    this.attached.push(ifname);
    return { ifname, ifindex: this.ifindex(ifname) };
  }
}

describe('ReplyEnd', () => {
  it('writes each link with its interface and next hops, attaches both, and is ready', () => {
    const dp = new Host();
    dp.present.set('wg0', 7).set('wg1', 8);
    const end = new ReplyEnd({ datapath: dp, links: LINKS });
    end.start();
    expect(dp.listLinks()).toEqual(new Map([
      [0, { ifindex: 7, up: true, nextHop4: '10.10.1.1', nextHop6: 'fd10:1::1' }],
      [1, { ifindex: 8, up: true, nextHop4: '10.10.2.1' }],
    ]));
    expect(dp.attached).toEqual(['wg0', 'wg1']);
    expect(end.waitingFor()).toEqual([]);
    expect(end.status().map((s) => [s.name, s.up])).toEqual([['tun0', true], ['tun1', true]]);
  });

  it('waits for an interface that is not there yet, names it, and takes it when it appears or is recreated', () => {
    const dp = new Host();
    dp.present.set('wg0', 7);
    const end = new ReplyEnd({ datapath: dp, links: LINKS });
    end.start();
    expect(end.waitingFor()).toEqual([expect.stringMatching(/^link tun1: interface wg1 not found/)]);
    expect(end.status()[1]).toMatchObject({ name: 'tun1', up: false, ifindex: null, reason: expect.stringContaining('wg1 not found') });
    expect(dp.listLinks().has(1)).toBe(false);
    dp.present.set('wg1', 9);
    end.refresh();
    expect(end.waitingFor()).toEqual([]);
    expect(dp.listLinks().get(1)?.ifindex).toBe(9);
    dp.present.set('wg1', 12); // the tunnel was recreated: a new ifindex
    end.refresh();
    expect(dp.listLinks().get(1)?.ifindex).toBe(12);
    expect(dp.attached).toEqual(['wg0', 'wg1', 'wg1']);
  });

  it('marks a link down and up again as its health says, and keeps its state across a refresh', () => {
    const dp = new Host();
    dp.present.set('wg0', 7).set('wg1', 8);
    const end = new ReplyEnd({ datapath: dp, links: LINKS });
    end.start();
    expect(end.setLinkHealth('tun1', { up: false, reason: 'no carrier' })).toBe(true);
    expect(dp.listLinks().get(1)?.up).toBe(false);
    expect(end.status()[1]).toMatchObject({ up: false, reason: 'no carrier' });
    dp.present.set('wg1', 10);
    end.refresh(); // rewritten for the new ifindex, still down
    expect(dp.listLinks().get(1)).toMatchObject({ ifindex: 10, up: false });
    end.setLinkHealth('tun1', { up: true });
    expect(dp.listLinks().get(1)?.up).toBe(true);
    expect(end.setLinkHealth('nope', { up: false })).toBe(false);
  });

  it('lists learned flows with their link names and idle time', () => {
    const dp = new Host();
    dp.present.set('wg0', 7).set('wg1', 8);
    const end = new ReplyEnd({ datapath: dp, links: LINKS });
    end.start();
    const now = process.hrtime.bigint();
    dp.setArrival({ protocol: 'tcp', src: '10.20.0.1', sport: 443, dst: '10.10.1.1', dport: 40000 }, 1, now - 2_500_000_000n);
    expect(end.arrivals(10, now)).toEqual([{ protocol: 'tcp', src: '10.20.0.1', sport: 443, dst: '10.10.1.1', dport: 40000, link: 'tun1', idleSeconds: 2.5 }]);
  });
});
