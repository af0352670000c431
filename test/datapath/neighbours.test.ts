/**
 * Proves the datapath's neighbour flush (src/datapath/neighbours.ts) against the kernel, in the
 * edge namespace of the two-link lab, over the facade's own rtnetlink socket: packets sent to
 * neighbours that do not answer wait in their unresolved entries (here for 30 s: the test sets
 * 3 × 10 s of resolution); flushing wan1's unresolved entries deletes them in IPv4 and
 * IPv6, the senders are told at once (EHOSTUNREACH), and resolved or permanent entries, and
 * every entry of wan0, stay. Flushing everything takes resolved entries too, never permanent ones.
 */
import { rmSync } from 'node:fs';
import { constants } from 'node:os';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DatapathDriver } from '../helpers/driver-client.js';
import { WanLab } from '../helpers/netns.js';
import { describePrivileged } from '../helpers/privilege.js';

/**
 * Connects a UDP socket per address, sends one datagram each, prints "sent", then each socket's
 * error as it comes: "<addr> <errno>". RECVERR: a UDP socket hears of a soft error (host
 * unreachable) only with it.
 */
const SENDER = `
import select, socket, sys
socks = {}
for dst in sys.argv[1:]:
    v6 = ':' in dst
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6 if v6 else socket.IPPROTO_IP, 25 if v6 else 11, 1)  # IPV6_RECVERR / IP_RECVERR
    s.connect((dst, 9))
    s.send(b'x')
    socks[s] = dst
print('sent', flush=True)
while socks:
    for s in select.select(list(socks), [], [], 120)[0]:
        try:
            s.recv(16)
            err = 0
        except OSError as e:
            err = e.errno
        print(socks.pop(s), err, flush=True)
`;

const UNRESOLVED = { v4: '10.10.2.77', v6: 'fd10:2::77' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describePrivileged('datapath: neighbour entries of a link traffic moved off', () => {
  let lab: WanLab;
  let dp: DatapathDriver;
  const pinDir = `/sys/fs/bpf/wst-${process.pid}-neigh`;
  const errors = new Map<string, { errno: number; at: number }>();
  const neigh = (dev: string) => lab.exec(lab.edge, ['ip', 'neigh', 'show', 'dev', dev]);

  beforeAll(async () => {
    lab = WanLab.create('neigh');
    // 3 solicitations 10 s apart: an unresolved entry holds its packets for 30 s.
    lab.sysctl(lab.edge, ...['ipv4', 'ipv6'].flatMap((f) => ['wan0', 'wan1'].map((d) => `net.${f}.neigh.${d}.retrans_time_ms=10000`)));
    for (const [addr, mac, nud] of [['10.10.2.50', '02:00:00:00:00:50', 'permanent'], ['10.10.2.51', '02:00:00:00:00:51', 'stale'], ['fd10:2::50', '02:00:00:00:00:52', 'permanent'], ['fd10:2::51', '02:00:00:00:00:53', 'stale']]) {
      lab.exec(lab.edge, ['ip', 'neigh', 'add', addr!, 'lladdr', mac!, 'dev', 'wan1', 'nud', nud!]);
    }
    dp = DatapathDriver.start(lab, lab.edge);
    await dp.call('open', { pinDir, flowTableSize: 4096 });
  }, 30_000);

  afterAll(async () => {
    await dp?.call('destroy').catch(() => {});
    lab?.destroy();
    rmSync(pinDir, { recursive: true, force: true });
  });

  it('deletes the unresolved entries of the link only, IPv4 and IPv6, and their packets are released at once', async () => {
    // Nobody has these addresses; 10.10.1.77 is on wan0, a link traffic did not leave.
    const sender = lab.spawn(lab.edge, ['python3', '-c', SENDER, UNRESOLVED.v4, UNRESOLVED.v6, '10.10.1.77']);
    const lines = createInterface({ input: sender.stdout! });
    const sent = new Promise((r) => lines.once('line', r));
    lines.on('line', (line) => {
      const [addr, errno] = line.split(' ');
      if (errno !== undefined) errors.set(addr!, { errno: Number(errno), at: Date.now() });
    });
    await sent;
    for (let i = 0; i < 50 && (neigh('wan1').match(/INCOMPLETE/g) ?? []).length < 2; i++) await sleep(20);
    expect(neigh('wan1')).toMatch(new RegExp(`${UNRESOLVED.v4} INCOMPLETE`));
    expect(neigh('wan1')).toMatch(new RegExp(`${UNRESOLVED.v6} INCOMPLETE`));
    expect(neigh('wan0')).toMatch(/10\.10\.1\.77 INCOMPLETE/);

    const wan1 = await dp.call<number>('ifindex', 'wan1');
    const flushedAt = Date.now();
    expect(await dp.call<number>('flushNeighbours', wan1, 'unresolved')).toBe(2);

    const left = neigh('wan1');
    expect(left).not.toMatch(/INCOMPLETE|FAILED/);
    expect(left).toMatch(/10\.10\.2\.50 lladdr 02:00:00:00:00:50 PERMANENT/);
    expect(left).toMatch(/10\.10\.2\.51 lladdr 02:00:00:00:00:51 STALE/);
    expect(left).toMatch(/fd10:2::50 lladdr 02:00:00:00:00:52 PERMANENT/);
    expect(left).toMatch(/fd10:2::51 lladdr 02:00:00:00:00:53 STALE/);
    expect(neigh('wan0')).toMatch(/10\.10\.1\.77 INCOMPLETE/);

    // The queued datagrams were freed and their senders told, long before the 30 s were up.
    for (let i = 0; i < 100 && errors.size < 2; i++) await sleep(50);
    expect(errors.get(UNRESOLVED.v4)?.errno).toBe(constants.errno.EHOSTUNREACH);
    expect(errors.get(UNRESOLVED.v6)?.errno).toBe(constants.errno.EHOSTUNREACH);
    console.log(`flush -> senders told: IPv4 ${errors.get(UNRESOLVED.v4)!.at - flushedAt} ms, IPv6 ${errors.get(UNRESOLVED.v6)!.at - flushedAt} ms`);
    expect(errors.has('10.10.1.77')).toBe(false); // wan0's entry still holds its datagram
  }, 20_000);

  it('with everything in scope (carrier lost) deletes resolved entries too, never permanent ones', async () => {
    const wan1 = await dp.call<number>('ifindex', 'wan1');
    expect(await dp.call<number>('flushNeighbours', wan1, 'all')).toBe(2);
    const left = neigh('wan1');
    expect(left).not.toMatch(/STALE/);
    expect(left.trim().split('\n').map((l) => l.trim()).sort()).toEqual([
      '10.10.2.50 lladdr 02:00:00:00:00:50 PERMANENT',
      'fd10:2::50 lladdr 02:00:00:00:00:52 PERMANENT',
    ]);
    expect(await dp.call<number>('flushNeighbours', wan1, 'all')).toBe(0); // nothing left to take
  });
});
