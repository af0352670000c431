/**
 * Address parsing/formatting (src/datapath/addr.ts) and map key/value encoding
 * (src/datapath/codec.ts): pure, no kernel. Every bad input must be refused with
 * WS_DATAPATH_INVALID before a byte reaches a map.
 */
import { describe, expect, it } from 'vitest';
import { Layout } from '../../src/datapath/abi.js';
import { formatAddress, parseAddress } from '../../src/datapath/addr.js';
import {
  checkDscp,
  checkLinkId,
  checkPolicyId,
  decodeFlowKey,
  decodeFlowValue,
  decodeLink,
  decodePolicy,
  encodeFlowKey,
  encodeFlowValue,
  encodeLink,
  encodePolicy,
  protocolNumber,
  type FlowKey,
} from '../../src/datapath/codec.js';
import { DatapathError, DatapathErrorCode } from '../../src/datapath/errors.js';
import { prng } from '../helpers/packet.js';

const hex = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString('hex');
const v4bytes = (...b: number[]) => hex(Uint8Array.from([...b, ...new Array<number>(12).fill(0)]));

function expectInvalid(fn: () => unknown): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a DatapathError').toBeInstanceOf(DatapathError);
  expect((err as DatapathError).code).toBe(DatapathErrorCode.INVALID);
  expect((err as DatapathError).errno).toBe(0);
}

describe('parseAddress', () => {
  // Proves IPv4 lands in the first four bytes with the rest zero, as struct ws_flow_key holds it.
  it('parses IPv4 into bytes 0..3', () => {
    expect(parseAddress('10.0.0.1')).toEqual({ family: 4, bytes: Uint8Array.from([10, 0, 0, 1, ...new Array<number>(12).fill(0)]) });
    expect(hex(parseAddress('255.255.255.255')?.bytes)).toBe(v4bytes(255, 255, 255, 255));
    expect(hex(parseAddress(' 192.0.2.1 ')?.bytes)).toBe(v4bytes(192, 0, 2, 1));
  });

  // Proves `::` expands wherever it stands and that full and short forms agree.
  it('parses IPv6 with and without ::', () => {
    const cases: Array<[string, string]> = [
      ['::', '00000000000000000000000000000000'],
      ['::1', '00000000000000000000000000000001'],
      ['1::', '00010000000000000000000000000000'],
      ['2001:db8::1', '20010db8000000000000000000000001'],
      ['2001:0DB8:0000:0000:0000:0000:0000:0001', '20010db8000000000000000000000001'],
      ['2001:db8:1:2:3:4:5:6', '20010db8000100020003000400050006'],
      ['fd00:0:0:1::5', 'fd000000000000010000000000000005'],
      ['1:2:3:4:5:6:7::', '00010002000300040005000600070000'],
      ['::2:3:4:5:6:7:8', '00000002000300040005000600070008'],
    ];
    for (const [text, bytes] of cases) {
      const a = parseAddress(text);
      expect(a?.family, text).toBe(6);
      expect(hex(a?.bytes), text).toBe(bytes);
    }
  });

  // Proves a dotted IPv4 tail inside IPv6 text is read as the last 32 bits.
  it('parses embedded IPv4 (NAT64, compatible, full form)', () => {
    expect(hex(parseAddress('64:ff9b::192.0.2.33')?.bytes)).toBe('0064ff9b0000000000000000c0000221');
    expect(hex(parseAddress('::1.2.3.4')?.bytes)).toBe('00000000000000000000000001020304');
    expect(hex(parseAddress('1:2:3:4:5:6:1.2.3.4')?.bytes)).toBe('00010002000300040005000601020304');
    expect(parseAddress('::1.2.3.4')?.family).toBe(6);
  });

  // Proves IPv4-mapped IPv6 becomes IPv4: a dual-stack socket's packets leave as IPv4.
  it('turns v4-mapped IPv6 into IPv4, in any spelling', () => {
    for (const text of ['::ffff:10.0.0.1', '::FFFF:10.0.0.1', '::ffff:a00:1', '0:0:0:0:0:ffff:0a00:0001', '[::ffff:10.0.0.1]']) {
      const a = parseAddress(text);
      expect(a?.family, text).toBe(4);
      expect(hex(a?.bytes), text).toBe(v4bytes(10, 0, 0, 1));
    }
    // v4-translated (::ffff:0:a.b.c.d) and ffff elsewhere stay IPv6
    expect(parseAddress('::ffff:0:10.0.0.1')?.family).toBe(6);
    expect(parseAddress('ffff::a00:1')?.family).toBe(6);
  });

  // Proves brackets and a zone are dropped, leaving the bare address.
  it('accepts brackets and a zone', () => {
    const bare = hex(parseAddress('fe80::1')?.bytes);
    for (const text of ['[fe80::1]', 'fe80::1%eth0', '[fe80::1%eth0]', 'fe80::1%25eth0', 'fe80::1%3']) {
      expect(parseAddress(text)?.family, text).toBe(6);
      expect(hex(parseAddress(text)?.bytes), text).toBe(bare);
    }
  });

  // Proves anything that is not exactly an address is refused (null), never half-parsed.
  it('refuses what is not an address', () => {
    const bad = [
      '', ' ', '1.2.3', '1.2.3.4.5', '256.0.0.1', '010.0.0.1', '1.2.3.-1', '1.2.3.4/24', 'example.com', 'localhost',
      ':::', '1::2::3', '12345::', 'gggg::', '2001:db8::1/64', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '::1.2.3',
      '::256.1.1.1', '[2001:db8::1', '2001:db8::1]', '[]', '%eth0', '0x0a000001', '167772161',
    ];
    for (const text of bad) expect(parseAddress(text), JSON.stringify(text)).toBeNull();
  });
});

describe('formatAddress', () => {
  const f6 = (h: string) => formatAddress(6, Buffer.from(h, 'hex'));

  // Proves RFC 5952: lowercase, no leading zeros, the longest zero run (first on a tie) as ::,
  // and a lone zero group never compressed.
  it('formats IPv6 the RFC 5952 way', () => {
    expect(f6('20010db8000000000000000000000001')).toBe('2001:db8::1');
    expect(f6('20010DB800000000000000000000000A'.toLowerCase())).toBe('2001:db8::a');
    expect(f6('00000000000000000000000000000000')).toBe('::');
    expect(f6('00000000000000000000000000000001')).toBe('::1');
    expect(f6('00010000000000000000000000000000')).toBe('1::');
    expect(f6('20010db8000000000001000000000000')).toBe('2001:db8:0:0:1::'); // longest run wins (3 > 2)
    expect(f6('20010000000000010000000000010001')).toBe('2001::1:0:0:1:1'); // tie: the first run
    expect(f6('20010db8000000010001000100010001')).toBe('2001:db8:0:1:1:1:1:1'); // one zero: kept
    expect(f6('20010db800aa0bbb0ccc0ddd0eee0fff')).toBe('2001:db8:aa:bbb:ccc:ddd:eee:fff');
    expect(f6('00000000000000000000000000000000'.replace(/^0{4}/, 'fe80'))).toBe('fe80::');
  });

  it('formats IPv4 from the first four bytes, at an offset', () => {
    const b = Buffer.from('ffff0a00000100000000', 'hex');
    expect(formatAddress(4, b, 2)).toBe('10.0.0.1');
  });

  // Proves parse(format(x)) == x for random IPv6 addresses with zero runs of every length.
  it('round-trips random IPv6 addresses', () => {
    const rand = prng(5952);
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.alloc(16);
      for (let w = 0; w < 8; w++) if (rand() < 0.5) b.writeUInt16BE(Math.floor(rand() * 65536), 2 * w);
      if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) continue; // v4-mapped
      const text = formatAddress(6, b);
      expect(text).toMatch(/^[0-9a-f:]+$/);
      expect(text.split('::').length).toBeLessThanOrEqual(2);
      expect(hex(parseAddress(text)?.bytes), text).toBe(b.toString('hex'));
    }
  });
});

describe('flow key and value codec', () => {
  /** Encode `k` at `off` of a fresh buffer of its family's layout; returns that buffer. */
  const encode = (k: FlowKey, off = 0) => {
    const b4 = Buffer.alloc(off + Layout.flow4Key.size);
    const b6 = Buffer.alloc(off + Layout.flow6Key.size);
    const family = encodeFlowKey(k, b4, off, b6, off);
    return { family, b: family === 4 ? b4 : b6 };
  };

  // Proves the exact byte layout of struct ws_flow4_key: addresses, then ports big-endian, proto, zero pad.
  it('lays out an IPv4 TCP key as the BPF program builds it', () => {
    const L = Layout.flow4Key;
    const { family, b } = encode({ protocol: 'tcp', src: '10.0.0.5', sport: 40000, dst: '198.51.100.9', dport: 443 });
    expect(family).toBe(4);
    expect(b.length).toBe(16);
    expect(b[L.proto]).toBe(6);
    expect(b.subarray(L.pad, L.pad + 3).toString('hex')).toBe('000000');
    expect(b.subarray(L.sport, L.sport + 4).toString('hex')).toBe('9c4001bb');
    expect(b.subarray(L.saddr, L.saddr + 4).toString('hex')).toBe('0a000005');
    expect(b.subarray(L.daddr, L.daddr + 4).toString('hex')).toBe('c6336409');
  });

  // Proves the layout of struct ws_flow6_key: 16-byte addresses, then the same tail.
  it('lays out an IPv6 UDP key as the BPF program builds it', () => {
    const L = Layout.flow6Key;
    const { family, b } = encode({ protocol: 'udp', src: 'fd00::5', sport: 53, dst: 'fd00::9', dport: 5353 });
    expect(family).toBe(6);
    expect(b.length).toBe(40);
    expect(b.subarray(L.saddr, L.saddr + 16).toString('hex')).toBe('fd000000000000000000000000000005');
    expect(b.subarray(L.daddr, L.daddr + 16).toString('hex')).toBe('fd000000000000000000000000000009');
    expect(b.subarray(L.sport, L.sport + 4).toString('hex')).toBe('003514e9');
    expect(b[L.proto]).toBe(17);
    expect(b.subarray(L.pad, L.pad + 3).toString('hex')).toBe('000000');
  });

  // Proves encode/decode round-trip, with addresses normalised and the protocol as a number.
  it('round-trips keys of both families, at an offset', () => {
    const cases: Array<[FlowKey, object]> = [
      [{ protocol: 'tcp', src: '10.0.0.5', sport: 1, dst: '198.51.100.9', dport: 65535 }, { family: 4, protocol: 6, src: '10.0.0.5', sport: 1, dst: '198.51.100.9', dport: 65535 }],
      [{ protocol: 'UDP', src: '2001:0db8::0001', sport: 53, dst: '[fd00::9]', dport: 5353 }, { family: 6, protocol: 17, src: '2001:db8::1', sport: 53, dst: 'fd00::9', dport: 5353 }],
      [{ protocol: 'sctp', src: 'fe80::1%eth0', sport: 5000, dst: 'fe80::2', dport: 38412 }, { family: 6, protocol: 132, src: 'fe80::1', sport: 5000, dst: 'fe80::2', dport: 38412 }],
      [{ protocol: 'tcp', src: '::ffff:10.0.0.5', sport: 80, dst: '10.0.0.9', dport: 8080 }, { family: 4, protocol: 6, src: '10.0.0.5', sport: 80, dst: '10.0.0.9', dport: 8080 }],
      [{ protocol: 'icmp', src: '10.0.0.5', dst: '10.0.0.9' }, { family: 4, protocol: 1, src: '10.0.0.5', sport: 0, dst: '10.0.0.9', dport: 0 }],
      [{ protocol: 47, src: '2001:db8::1', dst: '2001:db8::2', sport: 99, dport: 99 }, { family: 6, protocol: 47, src: '2001:db8::1', sport: 0, dst: '2001:db8::2', dport: 0 }],
      [{ protocol: 0, src: '0.0.0.0', dst: '255.255.255.255' }, { family: 4, protocol: 0, src: '0.0.0.0', sport: 0, dst: '255.255.255.255', dport: 0 }],
    ];
    for (const [k, view] of cases) {
      for (const off of [0, 40]) {
        const { family, b } = encode(k, off);
        expect(decodeFlowKey(family, b, off), JSON.stringify(k)).toEqual(view);
      }
    }
  });

  // Proves ports outside 1..65535 are refused for TCP, UDP and SCTP, and ignored for the rest.
  it('refuses bad ports where ports count', () => {
    for (const protocol of ['tcp', 'udp', 'sctp', 6, 17, 132]) {
      for (const sport of [0, -1, 65536, 1.5, Number.NaN, undefined]) {
        expectInvalid(() => encode({ protocol, src: '10.0.0.1', sport, dst: '10.0.0.2', dport: 80 }));
        expectInvalid(() => encode({ protocol, src: '10.0.0.1', sport: 80, dst: '10.0.0.2', dport: sport }));
      }
    }
    expect(() => encode({ protocol: 'icmp', src: '10.0.0.1', sport: -5, dst: '10.0.0.2' })).not.toThrow();
  });

  // Proves unknown protocol names and numbers outside 0..255 are refused.
  it('refuses bad protocols', () => {
    expect([protocolNumber('TCP'), protocolNumber('icmpv6'), protocolNumber(0), protocolNumber(255)]).toEqual([6, 58, 0, 255]);
    for (const p of ['foo', '', '6', 'constructor', '__proto__', 'toString', 256, -1, 1.5, Number.NaN]) {
      expectInvalid(() => protocolNumber(p));
      expectInvalid(() => encode({ protocol: p, src: '10.0.0.1', sport: 1, dst: '10.0.0.2', dport: 2 }));
    }
  });

  // Proves a key never mixes families and never takes something that is not an address.
  it('refuses mixed families and non-addresses', () => {
    expectInvalid(() => encode({ protocol: 'tcp', src: '10.0.0.1', sport: 1, dst: '2001:db8::1', dport: 2 }));
    expectInvalid(() => encode({ protocol: 'udp', src: 'fd00::1', sport: 1, dst: '10.0.0.1', dport: 2 }));
    expectInvalid(() => encode({ protocol: 'tcp', src: 'fd00::1', sport: 1, dst: '::ffff:10.0.0.1', dport: 2 }));
    expectInvalid(() => encode({ protocol: 'tcp', src: 'host.example', sport: 1, dst: '10.0.0.1', dport: 2 }));
    expectInvalid(() => encode({ protocol: 'tcp', src: '10.0.0.1', sport: 1, dst: '10.0.0.256', dport: 2 }));
  });

  // Proves the value layout and the policy-id range (1..4095; 0 means "no policy").
  it('encodes flow values and refuses bad policy ids', () => {
    const b = Buffer.alloc(16, 0xff);
    encodeFlowValue(4095, 123_456_789_012n, b);
    expect(b.readUInt32LE(Layout.flowVal.flags)).toBe(0);
    expect(decodeFlowValue(b)).toEqual({ policyId: 4095, lastSeenNs: 123_456_789_012n });
    for (const id of [0, -1, 4096, 1.5, Number.NaN]) {
      expectInvalid(() => encodeFlowValue(id, 0n, Buffer.alloc(16)));
      expectInvalid(() => checkPolicyId(id));
    }
    // every bit of last-seen lands where the kernel reads it; a value beyond 64 bits is refused
    for (const ns of [0n, 0xffff_ffffn, 0x1_0000_0000n, 0x8000_0000_0000_0001n, (1n << 64n) - 1n]) {
      encodeFlowValue(1, ns, b, 0);
      expect(b.readBigUInt64LE(Layout.flowVal.lastSeenNs)).toBe(ns);
    }
    for (const ns of [-1n, 1n << 64n]) expectInvalid(() => encodeFlowValue(1, ns, Buffer.alloc(16)));
  });
});

describe('policy and link codec', () => {
  // Proves each action encodes to the right bits and decodes back; DSCP 0 is a real DSCP.
  it('round-trips policies', () => {
    const b = Buffer.alloc(Layout.policy.size, 0xee);
    for (const p of [{ redirectLink: 0 }, { redirectLink: 63 }, { dscp: 0 }, { dscp: 63 }, { redirectLink: 7, dscp: 46 }]) {
      encodePolicy(p, b);
      expect(decodePolicy(b), JSON.stringify(p)).toEqual(p);
      expect(b.subarray(Layout.policy.pad).every((x) => x === 0)).toBe(true);
    }
    encodePolicy({ redirectLink: 1, dscp: 10 }, b);
    expect(b.readUInt32LE(Layout.policy.action)).toBe(3);
    expect(decodePolicy(Buffer.alloc(Layout.policy.size))).toBeNull();
  });

  // Proves out-of-range DSCP (64 and up), link ids and empty policies are refused.
  it('refuses bad policies', () => {
    const b = Buffer.alloc(Layout.policy.size);
    for (const dscp of [64, 255, -1, 1.5, Number.NaN]) {
      expectInvalid(() => encodePolicy({ dscp }, b));
      expectInvalid(() => checkDscp(dscp));
    }
    for (const redirectLink of [64, -1, 1.5]) {
      expectInvalid(() => encodePolicy({ redirectLink }, b));
      expectInvalid(() => checkLinkId(redirectLink));
    }
    expectInvalid(() => encodePolicy({}, b));
    expect(() => checkDscp(63)).not.toThrow();
  });

  // Proves links round-trip with no next hop, or one per family, and bad next hops are refused.
  it('round-trips links and refuses bad ones', () => {
    const b = Buffer.alloc(Layout.link.size, 0xee);
    const links = [
      { ifindex: 1, up: true },
      { ifindex: 7, up: false, nextHop4: '192.0.2.1' },
      { ifindex: 2 ** 31, up: true, nextHop6: 'fe80::1' },
      { ifindex: 9, up: true, nextHop4: '198.51.100.1', nextHop6: '2001:db8::1' },
    ];
    for (const l of links) {
      encodeLink(l, b);
      expect(decodeLink(b), JSON.stringify(l)).toEqual(l);
    }
    encodeLink({ ifindex: 3, up: true, nextHop4: '::ffff:192.0.2.1' }, b);
    expect(decodeLink(b)).toEqual({ ifindex: 3, up: true, nextHop4: '192.0.2.1' });
    expect(decodeLink(Buffer.alloc(Layout.link.size))).toBeNull();
    for (const ifindex of [0, -1, 1.5]) expectInvalid(() => encodeLink({ ifindex, up: true }, b));
    for (const nextHop4 of ['gateway', '0.0.0.0', 'fe80::1', '']) expectInvalid(() => encodeLink({ ifindex: 1, up: true, nextHop4 }, b));
    for (const nextHop6 of ['gateway', '::', '192.0.2.1', '::ffff:192.0.2.1']) expectInvalid(() => encodeLink({ ifindex: 1, up: true, nextHop6 }, b));
  });
});
