/**
 * Proves that src/datapath/abi.ts mirrors bpf/include/steer_abi.h: constants, the reason list
 * (names and numbers), and every struct's size and field offsets. The C side is read from the
 * header itself, and the struct layouts are computed by compiling a probe with the host C
 * compiler, so a field added, moved or resized on either side fails here.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as abi from '../../src/datapath/abi.js';

const HEADER = new URL('../../bpf/include/steer_abi.h', import.meta.url).pathname;
const text = readFileSync(HEADER, 'utf8');

function define(name: string): bigint {
  const m = new RegExp(`#define\\s+${name}\\s+\\(?([0-9xXa-fA-F]+)(?:U|ULL)?(?:\\s*<<\\s*(\\d+)\\))?`).exec(text);
  if (!m) throw new Error(`no #define ${name}`);
  const base = BigInt(m[1]!);
  return m[2] ? base << BigInt(m[2]) : base;
}

/** camelCase TypeScript name -> the C field name. */
const C_FIELD: Record<string, string> = {
  policyId: 'policy_id', lastSeenNs: 'last_seen_ns', linkId: 'link_id',
};
const C_STRUCT: Record<keyof typeof abi.Layout, string> = {
  flow4Key: 'ws_flow4_key', flow6Key: 'ws_flow6_key', flowVal: 'ws_flow_val', policy: 'ws_policy', link: 'ws_link', arrival: 'ws_arrival', counter: 'ws_counter',
  meta: 'ws_meta',
};

/** Compile a probe that prints sizeof/offsetof for every struct and field in Layout. */
function cLayouts(): Record<string, number> {
  const lines: string[] = [];
  for (const [key, layout] of Object.entries(abi.Layout) as [keyof typeof abi.Layout, Record<string, number>][]) {
    const s = C_STRUCT[key];
    lines.push(`printf("${key}.size %zu\\n", sizeof(struct ${s}));`);
    for (const f of Object.keys(layout)) {
      if (f === 'size') continue;
      lines.push(`printf("${key}.${f} %zu\\n", offsetof(struct ${s}, ${C_FIELD[f] ?? f}));`);
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'wsabi-'));
  const src = join(dir, 'probe.c');
  writeFileSync(src, `#include <stdio.h>\n#include <stddef.h>\n#include "${HEADER}"\nint main(void){\n${lines.join('\n')}\nreturn 0;}\n`);
  execFileSync('cc', ['-o', join(dir, 'probe'), src]);
  const out: Record<string, number> = {};
  for (const l of execFileSync(join(dir, 'probe'), { encoding: 'utf8' }).trim().split('\n')) {
    const [k, v] = l.split(' ');
    out[k!] = Number(v);
  }
  return out;
}

describe('ABI: steer_abi.h and abi.ts agree', () => {
  it('has the same table sizes, families and action bits', () => {
    expect(Number(define('WS_MAX_LINKS'))).toBe(abi.MAX_LINKS);
    expect(Number(define('WS_MAX_POLICIES'))).toBe(abi.MAX_POLICIES);
    expect(Number(define('WS_DSCP_VALUES'))).toBe(abi.DSCP_VALUES);
    expect(Number(define('WS_FLOWS_DEFAULT'))).toBe(abi.FLOWS_DEFAULT);
    expect(Number(define('WS_ARRIVALS_DEFAULT'))).toBe(abi.ARRIVALS_DEFAULT);
    expect(Number(define('WS_FAMILY_IPV4'))).toBe(abi.FAMILY_IPV4);
    expect(Number(define('WS_FAMILY_IPV6'))).toBe(abi.FAMILY_IPV6);
    expect(Number(define('WS_ACT_REDIRECT'))).toBe(abi.ACT_REDIRECT);
    expect(Number(define('WS_ACT_SET_DSCP'))).toBe(abi.ACT_SET_DSCP);
    expect(Number(define('WS_LINK_INTERNET'))).toBe(abi.LINK_INTERNET);
    expect(Number(define('WS_POLICY_NONE'))).toBe(abi.POLICY_NONE);
    expect(define('WS_TOUCH_INTERVAL_NS')).toBe(abi.TOUCH_INTERVAL_NS);
    expect(Number(define('WS_LAYOUT_VERSION'))).toBe(abi.LAYOUT_VERSION);
    expect(Number(define('WS_META_MAGIC'))).toBe(abi.META_MAGIC);
  });

  it('lists the same reasons with the same numbers', () => {
    const body = /enum ws_reason \{([^}]*)\}/.exec(text)![1]!;
    const entries = [...body.matchAll(/WS_R_([A-Z0-9_]+)\s*=\s*(\d+)/g)].map((m) => [m[1]!.toLowerCase(), Number(m[2])] as const);
    const max = entries.find(([n]) => n === 'max');
    const reasons = entries.filter(([n]) => n !== 'max');
    expect(reasons.map(([n]) => n)).toEqual([...abi.Reasons]);
    reasons.forEach(([, v], i) => expect(v).toBe(i));
    expect(max?.[1]).toBe(abi.REASON_MAX);
  });

  it('lays out every struct the same, field by field', () => {
    const c = cLayouts();
    for (const [key, layout] of Object.entries(abi.Layout)) {
      for (const [field, ts] of Object.entries(layout)) {
        expect({ field: `${key}.${field}`, offset: c[`${key}.${field}`] }).toEqual({ field: `${key}.${field}`, offset: ts });
      }
    }
  });

  it('names the maps the BPF program defines', () => {
    const src = readFileSync(new URL('../../bpf/steer.bpf.c', import.meta.url), 'utf8') +
      readFileSync(new URL('../../bpf/lib/maps.h', import.meta.url), 'utf8');
    for (const name of Object.values(abi.MapName)) expect(src).toMatch(new RegExp(`\\}\\s*${name}\\s+SEC\\("\\.maps"\\)`));
    for (const name of Object.values(abi.ProgramName)) expect(src).toMatch(new RegExp(`int\\s+${name}\\s*\\(`));
  });

  it('names the maps and programs of the reply-by-arrival object', () => {
    const src = readFileSync(new URL('../../bpf/reply.bpf.c', import.meta.url), 'utf8');
    for (const name of Object.values(abi.ReplyMapName)) expect(src).toMatch(new RegExp(`\\}\\s*${name}\\s+SEC\\("\\.maps"\\)`));
    for (const name of Object.values(abi.ReplyProgramName)) expect(src).toMatch(new RegExp(`int\\s+${name}\\s*\\(`));
  });
});
