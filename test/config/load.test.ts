// Proves the config loader: a good file loads with schema defaults filled in, flags beat
// environment variables beat the file, and every kind of bad input stops with a ConfigError
// whose message names the field, what is wrong and the fix — never a stack trace.
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfig, resolveConfig } from '../../src/config/load.js';
import { PROBE_PROFILES } from '../../src/config/schema.js';

let dir: string;
const hostname = () => 'edge-1';

const GOOD = `
links:
  - { name: fibre, interface: eth1, nextHop4: 192.0.2.1, nextHop6: "2001:db8::1" }
  - name: lte
    interface: wwan0
    probe: { target: 198.51.100.7, intervalMs: 200 }
defaultLink: fibre
listen: { http: "0.0.0.0:9440" }
policies: { store: file, file: /tmp/p.yaml }
`;

const minimal = () => ({ links: [{ name: 'fibre', interface: 'eth1' }], defaultLink: 'fibre' });
/** One link probing 192.0.2.7 with extra probe fields. */
const probing = (probe: Record<string, unknown>) => ({ links: [{ name: 'a', interface: 'e0', probe: { target: '192.0.2.7', ...probe } }], defaultLink: 'a' });

/** The ConfigError that resolving `doc` throws. */
function errorOf(doc: unknown, argv: string[] = [], env: Record<string, string> = {}): ConfigError {
  try {
    resolveConfig(doc, { argv, env, hostname });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wansteer-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadConfig: good input', () => {
  it('loads a YAML file and fills every default from the schema', async () => {
    const file = join(dir, 'good.yaml');
    await writeFile(file, GOOD);
    const config = await loadConfig({ file, hostname });
    expect(config.links[1]!.probe).toEqual({ target: '198.51.100.7', port: 862, intervalMs: 200, timeoutMs: 250, downAfter: 3, upAfter: 10, window: 50 });
    expect(config.datapath).toEqual({ pinDir: '/sys/fs/bpf/wansteer', flowTableSize: 1 << 20, flowIdleSeconds: 300, dryRun: false });
    expect(config.rules).toEqual({ source: 'directory', directory: '/etc/wansteer/rules' });
    expect(config.policies).toEqual({ store: 'file', file: '/tmp/p.yaml' });
    expect(config.log.level).toBe('info');
    expect(config.nodeName).toBe('edge-1');
  });

  it('loads JSON as well, found through --config (which beats WANSTEER_CONFIG)', async () => {
    const file = join(dir, 'good.json');
    await writeFile(file, JSON.stringify(minimal()));
    const config = await loadConfig({ argv: ['--config', file], env: { WANSTEER_CONFIG: join(dir, 'absent.yaml') }, hostname });
    expect(config.defaultLink).toBe('fibre');
  });

  it('gives a union field the defaults of the variant it names, not the default variant', () => {
    const config = resolveConfig({ ...minimal(), policies: { store: 'cluster' }, rules: { source: 'cluster' } }, { hostname });
    expect(config.policies).toEqual({ store: 'cluster', namespace: 'wansteer-system' });
    expect(config.rules).toEqual({ source: 'cluster', namespaces: [] });
  });

  it('takes each link\'s own reflector port (a YAML string converted), 862 where none is given', () => {
    const doc = {
      links: [
        { name: 'a', interface: 'e0', probe: { target: '192.0.2.7', port: 8620 } },
        { name: 'b', interface: 'e1', probe: { target: '2001:db8::7', port: '9862' } },
        { name: 'c', interface: 'e2', probe: { target: '192.0.2.7' } },
      ],
      defaultLink: 'a',
    };
    expect(resolveConfig(doc, { hostname }).links.map((l) => l.probe?.port)).toEqual([8620, 9862, 862]);
  });

  it('fills a probe profile\'s timings where the probe gives none, and the config\'s own win', () => {
    const doc = {
      links: [
        { name: 'a', interface: 'e0', probe: { target: '192.0.2.7', profile: 'fast' } },
        { name: 'b', interface: 'e1', probe: { target: '192.0.2.7', profile: 'fast', timeoutMs: 90, upAfter: 40 } },
        { name: 'c', interface: 'e2', probe: { target: '192.0.2.7', profile: 'default' } },
      ],
      defaultLink: 'a',
    };
    const [a, b, c] = resolveConfig(doc, { hostname }).links.map((l) => l.probe);
    expect(a).toMatchObject({ profile: 'fast', ...PROBE_PROFILES.fast, window: 50, port: 862 });
    expect(b).toMatchObject({ intervalMs: PROBE_PROFILES.fast.intervalMs, timeoutMs: 90, downAfter: PROBE_PROFILES.fast.downAfter, upAfter: 40 });
    expect(c).toMatchObject({ intervalMs: 100, timeoutMs: 250, downAfter: 3, upAfter: 10 });
  });

  it('takes flags over environment variables over the file', () => {
    const doc = { ...minimal(), datapath: { flowTableSize: 4096, pinDir: '/file' }, log: { level: 'warn' } };
    const env = { WANSTEER_FLOW_TABLE_SIZE: '8192', WANSTEER_PIN_DIR: '/env', WANSTEER_DRY_RUN: 'true', WANSTEER_TOKEN_FILE: '/env/token' };
    const argv = ['--pin-dir', '/flag', '--log-level=debug', '--listen-grpc', '[::]:9441', '--policies-file', '/flag/p.yaml', '--rules-dir=/flag/rules'];
    const config = resolveConfig(doc, { argv, env, hostname });
    expect(config.datapath).toMatchObject({ pinDir: '/flag', flowTableSize: 8192, dryRun: true });
    expect(config.auth.tokenFile).toBe('/env/token');
    expect(config.log.level).toBe('debug');
    expect(config.listen.grpc).toBe('[::]:9441');
    expect(config.policies).toEqual({ store: 'file', file: '/flag/p.yaml' });
    expect(config.rules).toEqual({ source: 'directory', directory: '/flag/rules' });
    expect(resolveConfig(doc, { argv: ['--dry-run'], env: { WANSTEER_DRY_RUN: 'false' }, hostname }).datapath.dryRun).toBe(true);
  });
});

describe('loadConfig: internet links', () => {
  it('gives each internet link its table (tableBase + its index, or its own), and overlay links none', () => {
    // Proves the defaults the agent and the probes work from: link i's table is internet.tableBase + i.
    const c = resolveConfig(
      { links: [{ name: 'a', interface: 'e0' }, { name: 'b', interface: 'e1', addressing: 'internet' }, { name: 'c', interface: 'e2', addressing: 'internet', table: 4000 }], defaultLink: 'a' },
      { argv: [], env: {}, hostname },
    );
    expect(c.links.map((l) => [l.addressing, l.table])).toEqual([['overlay', undefined], ['internet', 3601], ['internet', 4000]]);
    expect(c.internet).toEqual({ tableBase: 3600, rulePriority: 9000, markMask: 0x3f000000 });
  });
});

describe('loadConfig: reply-by-arrival (the cloud end of overlay links)', () => {
  const cloudEnd = () => ({ mode: 'reply-by-arrival', links: [{ name: 'tun0', interface: 'c0', nextHop4: '10.10.1.1' }, { name: 'tun1', interface: 'c1' }] });

  it('loads without a default link, and steer stays the default mode', () => {
    const config = resolveConfig(cloudEnd(), { hostname });
    expect(config.mode).toBe('reply-by-arrival');
    expect(config.defaultLink).toBeUndefined();
    expect(resolveConfig(minimal(), { hostname }).mode).toBe('steer');
  });

  it('refuses a default link, an internet link and a gRPC intake, each named with its fix', () => {
    const doc = { ...cloudEnd(), defaultLink: 'tun0', listen: { grpc: '0.0.0.0:9091' } };
    const err = errorOf({ ...doc, links: [doc.links[0], { ...doc.links[1], addressing: 'internet' }] });
    expect(err.problems.map((p) => p.field)).toEqual(['defaultLink', 'links[1].addressing', 'listen.grpc']);
    expect(err.problems[0]!.fix).toMatch(/remove defaultLink/);
  });

  it('needs a default link to steer, and names an unknown mode', () => {
    const { defaultLink: _omit, ...noDefault } = minimal();
    const err = errorOf(noDefault);
    expect(err.problems).toEqual([expect.objectContaining({ field: 'defaultLink', problem: 'is missing' })]);
    expect(err.problems[0]!.fix).toContain('fibre');
    const bad = errorOf({ ...minimal(), mode: 'cloud' });
    expect(bad.problems[0]!.field).toBe('mode');
    expect(bad.problems[0]!.fix).toMatch(/reply-by-arrival/);
  });
});

describe('loadConfig: bad input names its field and the fix', () => {
  const cases: { what: string; doc: unknown; argv?: string[]; env?: Record<string, string>; code: string; field: string; says: RegExp }[] = [
    { what: 'no links', doc: { defaultLink: 'x' }, code: 'WS_CONFIG_INVALID', field: 'links', says: /is missing; fix: list the WAN links/ },
    { what: 'empty links', doc: { links: [], defaultLink: 'x' }, code: 'WS_CONFIG_INVALID', field: 'links', says: /is empty/ },
    { what: 'nextHop4 not IPv4', doc: { ...minimal(), links: [{ name: 'a', interface: 'e0' }, { name: 'b', interface: 'e1', nextHop4: '10.0.0' }], defaultLink: 'a' }, code: 'WS_CONFIG_INVALID', field: 'links[1].nextHop4', says: /"10\.0\.0" is not an IPv4 address; fix: give the IPv4 address/ },
    { what: 'nextHop6 holds IPv4', doc: { links: [{ name: 'a', interface: 'e0', nextHop6: '192.0.2.1' }], defaultLink: 'a' }, code: 'WS_CONFIG_INVALID', field: 'links[0].nextHop6', says: /not an IPv6 address/ },
    { what: 'duplicate link name', doc: { links: [{ name: 'a', interface: 'e0' }, { name: 'a', interface: 'e1' }], defaultLink: 'a' }, code: 'WS_CONFIG_INVALID', field: 'links[1].name', says: /already the name of links\[0\]; fix: give each link its own name/ },
    { what: 'duplicate interface', doc: { links: [{ name: 'a', interface: 'e0' }, { name: 'b', interface: 'e0' }], defaultLink: 'a' }, code: 'WS_CONFIG_INVALID', field: 'links[1].interface', says: /already the interface of links\[0\]/ },
    { what: 'defaultLink names no link', doc: { ...minimal(), defaultLink: 'lte' }, code: 'WS_CONFIG_INVALID', field: 'defaultLink', says: /"lte" is not the name of a link; fix: use one of the names in links: fibre/ },
    { what: 'misspelt field', doc: { links: [{ name: 'a', interface: 'e0', nexthop4: '192.0.2.1' }], defaultLink: 'a' }, code: 'WS_CONFIG_INVALID', field: 'links[0].nexthop4', says: /is not a known field; fix: did you mean nextHop4\?/ },
    { what: 'interface name too long', doc: { links: [{ name: 'a', interface: 'a-very-long-interface' }], defaultLink: 'a' }, code: 'WS_CONFIG_INVALID', field: 'links[0].interface', says: /over the limit of 15; fix: give the interface name/ },
    { what: 'flow table too small', doc: { ...minimal(), datapath: { flowTableSize: 10 } }, code: 'WS_CONFIG_INVALID', field: 'datapath.flowTableSize', says: /10 is below the minimum 1024; fix: use a value from 1024 to/ },
    { what: 'unknown log level', doc: { ...minimal(), log: { level: 'verbose' } }, code: 'WS_CONFIG_INVALID', field: 'log.level', says: /"verbose" is not one of fatal, error, warn, info, debug, trace/ },
    { what: 'unknown policy store', doc: { ...minimal(), policies: { store: 'etcd' } }, code: 'WS_CONFIG_INVALID', field: 'policies.store', says: /"etcd" is not one of file, cluster; fix: use file/ },
    { what: 'file store without file', doc: { ...minimal(), policies: { store: 'file' } }, code: 'WS_CONFIG_INVALID', field: 'policies.file', says: /is missing; fix: give the policy file path/ },
    { what: 'bad listen address', doc: { ...minimal(), listen: { http: '9440' } }, code: 'WS_CONFIG_INVALID', field: 'listen.http', says: /not of the expected form; fix: write host:port/ },
    { what: 'port out of range', doc: { ...minimal(), listen: { http: '0.0.0.0:99999' } }, code: 'WS_CONFIG_INVALID', field: 'listen.http', says: /port 99999 is out of range/ },
    { what: 'probe target not an address', doc: { links: [{ name: 'a', interface: 'e0', probe: { target: 'gw.example' } }], defaultLink: 'a' }, code: 'WS_CONFIG_INVALID', field: 'links[0].probe.target', says: /not an IP address/ },
    { what: 'probe target and targets both', doc: { links: [{ name: 'a', interface: 'e0', probe: { target: '192.0.2.9', targets: ['192.0.2.9'] } }], defaultLink: 'a' }, code: 'WS_CONFIG_INVALID', field: 'links[0].probe.targets', says: /is given together with target; fix: list every reflector in targets/ },
    { what: 'probe without a target', doc: { links: [{ name: 'a', interface: 'e0', probe: { intervalMs: 100 } }], defaultLink: 'a' }, code: 'WS_CONFIG_INVALID', field: 'links[0].probe.target', says: /is missing; fix: give the IPv4 or IPv6 address .*or list up to four in targets/ },
    { what: 'one of the probe targets not an address', doc: { links: [{ name: 'a', interface: 'e0', probe: { targets: ['192.0.2.9', 'gw.example'] } }], defaultLink: 'a' }, code: 'WS_CONFIG_INVALID', field: 'links[0].probe.targets[1]', says: /"gw.example" is not an IP address/ },
    { what: 'five probe targets', doc: { links: [{ name: 'a', interface: 'e0', probe: { targets: ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4', '192.0.2.5'] } }], defaultLink: 'a' }, code: 'WS_CONFIG_INVALID', field: 'links[0].probe.targets', says: /more than 4|at most 4|maximum/ },
    { what: 'probe port 0', doc: probing({ port: 0 }), code: 'WS_CONFIG_INVALID', field: 'links[0].probe.port', says: /links\[0\]\.probe\.port: 0 is below the minimum 1; fix: give the UDP port the reflector answers on .*from 1 to 65535/ },
    { what: 'probe port over 65535', doc: probing({ port: 70000 }), code: 'WS_CONFIG_INVALID', field: 'links[0].probe.port', says: /70000 is above the maximum 65535; fix: give the UDP port/ },
    { what: 'probe port negative', doc: probing({ port: -862 }), code: 'WS_CONFIG_INVALID', field: 'links[0].probe.port', says: /-862 is below the minimum 1/ },
    { what: 'probe port with a fraction', doc: probing({ port: 862.5 }), code: 'WS_CONFIG_INVALID', field: 'links[0].probe.port', says: /links\[0\]\.probe\.port: 862.5 is not a whole number; fix: give the UDP port/ },
    { what: 'unknown probe profile', doc: probing({ profile: 'turbo' }), code: 'WS_CONFIG_INVALID', field: 'links[0].probe.profile', says: /"turbo" is not one of default, fast/ },
    { what: 'interval as a fractional string', doc: probing({ intervalMs: '100.7' }), code: 'WS_CONFIG_INVALID', field: 'links[0].probe.intervalMs', says: /"100.7" is not a whole number; fix: give a whole number/ },
    { what: 'probe port a name', doc: probing({ port: 'twamp' }), code: 'WS_CONFIG_INVALID', field: 'links[0].probe.port', says: /must be a whole number, got "twamp"; fix: give the UDP port/ },
    { what: 'internet link table is the main table', doc: { links: [{ name: 'a', interface: 'e0', addressing: 'internet', table: 254 }], defaultLink: 'a' }, code: 'WS_CONFIG_INVALID', field: 'links[0].table', says: /table 254 of a is the kernel's main table; fix: pick a table no one else uses/ },
    { what: 'two internet links share a table', doc: { links: [{ name: 'a', interface: 'e0', addressing: 'internet', table: 3700 }, { name: 'b', interface: 'e1', addressing: 'internet', table: 3700 }], defaultLink: 'a' }, code: 'WS_CONFIG_INVALID', field: 'links[1].table', says: /table 3700 of b is also the table of links\[0\]/ },
    { what: 'a table on an overlay link', doc: { links: [{ name: 'a', interface: 'e0', table: 3700 }], defaultLink: 'a' }, code: 'WS_CONFIG_INVALID', field: 'links[0].table', says: /only internet links have a routing table of their own/ },
    { what: 'a mark mask of scattered bits', doc: { ...minimal(), internet: { markMask: 0x0f0f0000 } }, code: 'WS_CONFIG_INVALID', field: 'internet.markMask', says: /0xf0f0000 is not one run of bits/ },
    { what: 'a mark mask too narrow for the internet link\'s index', doc: { links: [{ name: 'a', interface: 'e0' }, { name: 'b', interface: 'e1' }, { name: 'c', interface: 'e2', addressing: 'internet' }], defaultLink: 'a', internet: { markMask: 0x3000000 } }, code: 'WS_CONFIG_INVALID', field: 'internet.markMask', says: /holds marks for 2 links, but internet link c is links\[2\]/ },
    { what: 'rule priorities over the probe rules', doc: { ...minimal(), internet: { rulePriority: 5699 } }, code: 'WS_CONFIG_INVALID', field: 'internet.rulePriority', says: /overlap the probe rules/ },
    { what: 'an addressing kind that does not exist', doc: { links: [{ name: 'a', interface: 'e0', addressing: 'nat' }], defaultLink: 'a' }, code: 'WS_CONFIG_INVALID', field: 'links[0].addressing', says: /"nat" is not one of overlay, internet/ },
    { what: 'top level a list', doc: ['links'], code: 'WS_CONFIG_SYNTAX', field: '(top level)', says: /not a mapping/ },
    { what: 'unknown flag', doc: minimal(), argv: ['--pin-dri', '/x'], code: 'WS_CONFIG_FLAG', field: '--pin-dri', says: /is an unknown flag; fix: use one of --config, .*--pin-dir/ },
    { what: 'unknown flag alone', doc: minimal(), argv: ['--nosuchflag'], code: 'WS_CONFIG_FLAG', field: '--nosuchflag', says: /--nosuchflag: is an unknown flag;/ },
    { what: 'flag without value', doc: minimal(), argv: ['--token-file'], code: 'WS_CONFIG_FLAG', field: '--token-file', says: /has no value/ },
    { what: 'non-numeric env', doc: minimal(), env: { WANSTEER_FLOW_TABLE_SIZE: 'lots' }, code: 'WS_CONFIG_FLAG', field: 'WANSTEER_FLOW_TABLE_SIZE', says: /"lots" is not an integer/ },
    { what: 'bad value from a flag names the flag', doc: minimal(), argv: ['--log-level', 'loud'], code: 'WS_CONFIG_INVALID', field: 'log.level (from --log-level)', says: /log\.level \(from --log-level\): "loud" is not one of/ },
  ];

  it.each(cases)('$what → $code at $field', ({ doc, argv, env, code, field, says }) => {
    const err = errorOf(doc, argv, env);
    expect(err.code).toBe(code);
    expect(err.field).toBe(field);
    expect(err.message).toMatch(says);
    expect(err.message).not.toMatch(/\n\s+at /);
  });

  it('reports all problems at once', () => {
    const err = errorOf({ links: [{ name: 'a', interface: 'e0', nextHop4: 'x.y' }, { name: 'a', interface: 'e0' }], defaultLink: 'b' });
    expect(err.problems.map((p) => p.field)).toEqual(['links[0].nextHop4', 'links[1].name', 'links[1].interface', 'defaultLink']);
  });

  it('names a missing file and how to point at the right one', async () => {
    const err = (await loadConfig({ file: join(dir, 'absent.yaml') }).catch((e: unknown) => e)) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.code).toBe('WS_CONFIG_FILE_READ');
    expect(err.message).toMatch(/absent\.yaml: does not exist; fix: pass the config file with --config PATH/);
  });

  it('refuses a file larger than any config by its size, before reading it (WS_CONFIG_FILE_TOO_LARGE)', async () => {
    // 100 MB, sparse: reading or parsing it whole is what this must not do.
    const file = join(dir, 'huge.yaml');
    await writeFile(file, '');
    await truncate(file, 100 * 1024 * 1024);
    const err = (await loadConfig({ file }).catch((e: unknown) => e)) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.code).toBe('WS_CONFIG_FILE_TOO_LARGE');
    expect(err.message).toMatch(/huge\.yaml: is over 1048576 bytes/);
  });

  it('reads a file that never ends (a device) no further than the size limit', async () => {
    const err = (await loadConfig({ file: '/dev/zero' }).catch((e: unknown) => e)) as ConfigError;
    expect(err.code).toBe('WS_CONFIG_FILE_TOO_LARGE');
  });

  it('refuses a YAML alias bomb as a syntax error, without expanding it', async () => {
    const file = join(dir, 'laughs.yaml');
    const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 10; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    await writeFile(file, levels.join('\n') + '\n');
    const err = (await loadConfig({ file }).catch((e: unknown) => e)) as ConfigError;
    expect(err.code).toBe('WS_CONFIG_SYNTAX');
    expect(err.message).toMatch(/alias/i);
  });

  it('names the line of a YAML syntax error', async () => {
    const file = join(dir, 'broken.yaml');
    await writeFile(file, 'links:\n  - name: a\n   interface: e0\n');
    const err = (await loadConfig({ file }).catch((e: unknown) => e)) as ConfigError;
    expect(err.code).toBe('WS_CONFIG_SYNTAX');
    expect(err.message).toMatch(/broken\.yaml: is not valid YAML: .*line 3/);
  });
});
