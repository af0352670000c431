/**
 * `wansteer demo`: the dual-WAN demo (issue 7), live, with the real agent.
 *
 * An edge site and a cloud site in network namespaces, joined by two WAN links: wan0 "fibre"
 * (the default route) and wan1 "LTE". `wansteer agent` runs in the edge with the example
 * VirtualService (examples/rules: routes `boss` and `minion` by the end-user header, after
 * Clovisor's demo), probing both links against a TWAMP-light reflector in the cloud. An HTTP
 * service runs in the cloud; each user sends real, long requests to it from known source ports.
 *
 *   1. policies posted over REST: minion -> LTE, boss -> fibre marked EF (DSCP 46)
 *   2. the boss policy replaced over REST (If-Match): boss -> LTE too
 *   3. LTE goes dark (every packet lost on its path, carrier up): the probes notice, both users
 *      move to the fibre; 4. LTE heals: both move back after the hysteresis; 5. LTE loses its
 *      carrier: both move to the fibre at once. The time from each fault (or recovery) to both
 *      users' first bytes on the other link is measured in the cloud, and so is what the users
 *      feel: how long until each one's uploads deliver again at >= 80 % of their rate before
 *      (src/lab/goodput.ts: every read of the cloud's service, timed).
 *
 * The demo reports each session to the agent over the same HTTP API the Envoy filter uses,
 * standing in for the sidecar. A second agent at the cloud end of the links, in reply-by-arrival
 * mode, sends each session's replies back by the link it arrived on. The table shows, per user
 * and link, every second, what the cloud receives (nftables counters on the cloud's ingress) and
 * what comes back down (the uploads' ACKs and answers, counted on the edge's ingress). Everything is removed on exit and on
 * Ctrl-C: namespaces, processes, bpffs pins, the temporary directory.
 *
 * WANSTEER_DEMO_PHASE_SECONDS (default 4) sets the length of each phase.
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromRoot } from '../config/paths.js';
import { InternetDemo } from './demo-internet.js';
import type { CliIo } from './explain.js';
import { CLOUD, EDGE, GoodputMeter, IngressCounters, LabAgentClient, OverlayCounters, startUploads, WanLab } from '../lab/index.js';

const PORT = 8080;
const AGENT = `http://${EDGE.wan0.v4}:9090`;
const HOST = 'cloud-service.cloud.svc.cluster.local';
const VS = 'default/cloud-service';
const TOKEN = `demo-${process.pid}-${Math.random().toString(36).slice(2, 12)}`;
const USERS = { boss: [42001, 42002], minion: [43001, 43002] } as const;
type User = keyof typeof USERS;
const USER_NAMES = Object.keys(USERS) as User[];
const DEVS = { wan0: 'c0', wan1: 'c1' } as const; // the cloud's end of each link

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (ns: bigint) => Number(ns) / 1e6;


export async function runDemo(argv: readonly string[], io: CliIo): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout(
      'Usage: wansteer demo [--overlay]\n\n' +
        'Builds an edge node and a cloud site in network namespaces with two WAN links, runs the\n' +
        'agent, and shows two users\' sessions steered live: policy change over REST, link failure\n' +
        'and failover. Needs root. Cleans up on exit and Ctrl-C.\n\n' +
        '  (default)   internet links: two ISPs, each with its own address and source filtering,\n' +
        '              pods behind the node\'s NAT; classes choose their link before routing\n' +
        '  --overlay   overlay links (tunnels): sessions redirected at the WAN egress\n\n' +
        'WANSTEER_DEMO_PHASE_SECONDS (default 4) sets the length of each phase.\n',
    );
    return 0;
  }
  const unknown = argv.find((a) => a !== '--overlay' && a !== '--internet');
  if (unknown !== undefined) {
    io.stderr(`wansteer demo: unexpected argument ${JSON.stringify(unknown)} (see wansteer demo --help)\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    io.stderr('wansteer demo: needs root (it creates network namespaces and loads BPF): run it with sudo\n');
    return 2;
  }
  const demo = argv.includes('--overlay') ? new Demo(io) : new InternetDemo(io, phaseSeconds(), selfCli());
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    io.stderr(`\n${signal === 'SIGINT' ? 'interrupted' : signal}: cleaning up\n`);
    void demo.cleanup(true).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let ok = false;
  try {
    await demo.run();
    ok = true;
    return 0;
  } catch (err) {
    if (interrupted) return 130;
    io.stderr(`\nwansteer demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    if (!interrupted) await demo.cleanup(ok);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** A fault or repair: the traffic while it lasted, the first bytes on the other link, and what users felt. */
interface FaultPhase {
  totals: PhaseTotals;
  firstMs: number;
  felt: { text: string; short: string };
}

class Demo {
  private readonly phaseSeconds = phaseSeconds();
  private readonly dir = mkdtempSync(join(tmpdir(), `wansteer-demo-${process.pid}-`));
  private readonly pinDir = `/sys/fs/bpf/wansteer-demo-${process.pid}`;
  private readonly logFile = join(this.dir, 'agent.log');
  private readonly cloudLogFile = join(this.dir, 'cloud-agent.log');
  private cloudAgent: ChildProcess | undefined;
  private lab: WanLab | undefined;
  private api!: LabAgentClient;
  private agent: ChildProcess | undefined;
  private log: WriteStream | undefined;
  private counters!: IngressCounters;
  private goodput!: GoodputMeter;
  private cleaning: Promise<void> | undefined;
  private readonly uploads: ChildProcess[] = [];

  constructor(private readonly io: CliIo) {}

  private say(text = ''): void {
    this.io.stdout(text + '\n');
  }

  /** The demo, one phase after another; each phase says what it does and measures what users felt. */
  async run(): Promise<void> {
    await this.setUp();
    await this.postPolicies();
    const table = this.startSessions();
    table.header();
    const phase1 = await table.run(this.phaseSeconds);
    const phase2 = await this.changePolicy(table);
    const dark = await this.lteDark(table);
    const back = await this.lteBack(table);
    const carrier = await this.lteCarrierLost(table);
    this.summary({ phase1, phase2, dark, back, carrier });
    this.check(phase1, phase2, dark.totals, back.totals, carrier.totals);
  }

  /** The lab, the reflector, both agents, and both links up and probed. */
  private async setUp(): Promise<void> {
    this.say('wansteer demo: a dual-WAN edge site in network namespaces, steered by the agent');
    const lab = (this.lab = WanLab.create('demo'));
    this.api = new LabAgentClient(lab, lab.edge, AGENT, () => `the agent's log: ${this.logFile}`);
    this.say(`  edge  ${lab.edge}: wan0 ${EDGE.wan0.v4} "fibre" (default route), wan1 ${EDGE.wan1.v4} "LTE"`);
    this.say(`  cloud ${lab.cloud}: HTTP service ${HOST} at ${CLOUD.service.v4}:${PORT}, link-probe reflector`);

    [this.goodput] = await Promise.all([
      GoodputMeter.start(lab, lab.cloud, PORT),
      lab.spawnReady(lab.cloud, [...this.self(), 'reflector', '--listen', `${CLOUD.service.v4}:862`], 'the reflector'),
    ]);

    this.writeConfig();
    await Promise.all([this.startAgent(), this.startCloudAgent()]);
    this.say('  cloud end of the links: a second agent in reply-by-arrival mode, so downloads follow the edge\'s choice');
    this.say(`  agent in the edge: rules from examples/rules (VirtualService ${VS}: routes boss, minion), API ${AGENT}`);
    await this.api.waitLinks((ls) => ls.every((l) => l.up && l.rttMs !== undefined), 15_000, 'both links up and probed');
    const rtt = (n: string) => this.api.links().find((l) => l.name === n)?.rttMs?.toFixed(2) ?? '?';
    this.say(`  link health: wan0 up (rtt ${rtt('wan0')} ms), wan1 up (rtt ${rtt('wan1')} ms)`);
  }

  /** Two policies over REST: minion to LTE, boss to fibre with DSCP 46. */
  private async postPolicies(): Promise<void> {
    this.say('\n>>> policies, posted over REST (POST /v1/policies):');
    const posted = this.api.http(
      { method: 'POST', path: '/v1/policies', headers: this.auth(), body: policy('minion-lte', 'minion', ['wan1', 'wan0'], 'redirect') },
      { method: 'POST', path: '/v1/policies', headers: this.auth(), body: policy('boss-ef', 'boss', ['wan0', 'wan1'], 'both', 46) },
    );
    for (const a of posted) if (a.status !== 201) throw new Error(`POST /v1/policies answered ${a.status}: ${JSON.stringify(a.body)}`);
    this.say('    minion-lte: route minion -> links [wan1 LTE, wan0 fibre], redirect');
    this.say('    boss-ef:    route boss   -> links [wan0 fibre, wan1 LTE], DSCP 46 (EF), redirect + mark');
  }

  /** Sessions reported as the sidecar would, real uploads on them, and the table that counts them. */
  private startSessions(): LiveTable {
    const lab = this.lab!;
    this.counters = IngressCounters.install(
      lab,
      USER_NAMES.map((u) => ({ name: u, match: `tcp sport { ${USERS[u].join(', ')} }` })),
      [46],
    );
    const down = OverlayCounters.install(lab, USER_NAMES.map((u) => ({ name: u, up: `tcp sport { ${USERS[u].join(', ')} }`, down: `tcp dport { ${USERS[u].join(', ')} }` })));
    this.say('\n>>> requests: each user POSTs long uploads to the cloud service, two connections each');
    this.say('    reporting sessions as the Envoy sidecar would (POST /v1/sessions): the demo stands in for the sidecar');
    const streamMs = (5 * this.phaseSeconds + 12) * 1000;
    for (const user of USER_NAMES) {
      for (const sport of USERS[user]) {
        const [a] = this.api.http({ method: 'POST', path: '/v1/sessions', body: session(sport, user) });
        if (a?.body?.status !== 'steered') throw new Error(`session of ${user} not steered: ${JSON.stringify(a?.body)}`);
        this.say(`    ${user.padEnd(6)} ${EDGE.wan0.v4}:${sport} -> ${CLOUD.service.v4}:${PORT}  end-user: ${user.padEnd(6)}  => ${a.body.policy}, link ${a.body.link}`);
      }
      const upload = startUploads(lab, lab.edge, { src: EDGE.wan0.v4, sports: USERS[user], dst: CLOUD.service.v4, port: PORT, host: HOST, user, durationMs: streamMs });
      this.uploads.push(upload);
      upload.stderr!.on('data', (d: Buffer) => {
        if (!this.cleaning) this.io.stderr(d.toString());
      });
    }
    return new LiveTable(this.counters, down, this.io);
  }

  /** PUT with If-Match: the boss's running sessions follow with one policy-table write. */
  private async changePolicy(table: LiveTable): Promise<PhaseTotals> {
    const [current] = this.api.http({ path: '/v1/policies/boss-ef' });
    const tag = current?.headers?.etag;
    if (current?.status !== 200 || !tag) throw new Error(`GET /v1/policies/boss-ef answered ${current?.status}`);
    this.say(`\n>>> policy change over REST: PUT /v1/policies/boss-ef (If-Match: ${tag}) links [wan1 LTE, wan0 fibre], still EF`);
    const [put] = this.api.http({
      method: 'PUT',
      path: '/v1/policies/boss-ef',
      headers: { ...this.auth(), 'if-match': tag },
      body: { spec: policy('boss-ef', 'boss', ['wan1', 'wan0'], 'both', 46).spec },
    });
    if (put?.status !== 200) throw new Error(`PUT /v1/policies/boss-ef answered ${put?.status}: ${JSON.stringify(put?.body)}`);
    this.say(`    200, new ETag ${put.headers?.etag}; the boss's running sessions follow: one policy-table write`);
    await sleep(100);
    table.mark();
    return table.run(this.phaseSeconds);
  }

  /** LTE goes dark: carrier up, nothing gets through; only the probes can tell. */
  private async lteDark(table: LiveTable): Promise<FaultPhase> {
    this.say('\n>>> LTE goes dark: every packet over wan1 is lost on its way (nft drop where it arrives), its carrier stays up; nobody tells the agent');
    const before = this.counters.readBoth().bytes;
    const dark = this.lab!.drop('wan1', 100);
    const firstMs = ms((await this.firstBytesOn('c0', before, dark, 3000)) - dark);
    this.say(`    failover: both users' traffic arrives over wan0 (fibre) ${firstMs.toFixed(0)} ms after the fault (measured in the cloud)`);
    const w1 = (await this.api.waitLinks((ls) => ls.some((l) => l.name === 'wan1' && !l.up), 2000, 'wan1 reported down')).find((l) => l.name === 'wan1')!;
    this.say(`    agent's view (GET /v1/links): wan1 up=${w1.up} reason "${w1.reason ?? '?'}": the probes noticed`);
    table.mark();
    const totals = await table.run(Math.max(2, this.phaseSeconds - 1));
    const felt = this.felt(dark);
    this.say(`    what the users felt: ${felt.text}`);
    return { totals, firstMs, felt };
  }

  /** LTE comes back: failback after the hysteresis. */
  private async lteBack(table: LiveTable): Promise<FaultPhase> {
    this.say('\n>>> LTE comes back (drop removed): the agent waits for 10 answered probes in a row, then moves both users back');
    const before = this.counters.readBoth().bytes;
    const healed = this.lab!.drop('wan1', null);
    const back = await this.firstBytesOn('c1', before, healed, 5000);
    const firstMs = ms(back - healed);
    this.say(`    failback: both users' traffic back on wan1 (LTE) ${firstMs.toFixed(0)} ms after the link healed`);
    table.mark();
    const totals = await table.run(Math.max(2, this.phaseSeconds - 1));
    const felt = this.felt(back - 20_000_000n); // from just before the move back
    this.say(`    what the users felt when moved back: ${felt.text}`);
    return { totals, firstMs, felt };
  }

  /** LTE fails: carrier loss, seen by the carrier poll. */
  private async lteCarrierLost(table: LiveTable): Promise<FaultPhase> {
    this.say('\n>>> LTE fails: carrier lost on wan1 (ip -n cloud link set c1 down); nobody tells the agent');
    const before = this.counters.readBoth().bytes;
    const fault = process.hrtime.bigint();
    this.lab!.setCloudLink('c1', false);
    const firstMs = ms((await this.firstBytesOn('c0', before, fault, 3000)) - fault);
    this.say(`    failover: both users' traffic arrives over wan0 (fibre) ${firstMs.toFixed(0)} ms after the fault (measured in the cloud)`);
    const links = await this.api.waitLinks((ls) => ls.some((l) => l.name === 'wan1' && !l.up), 2000, 'wan1 reported down');
    const w1 = links.find((l) => l.name === 'wan1')!;
    const w0 = links.find((l) => l.name === 'wan0')!;
    this.say(`    agent's view (GET /v1/links): wan1 up=${w1.up} reason "${w1.reason ?? '?'}"; wan0 now carries [${w0.activeFor.join(', ')}]`);
    table.mark();
    const totals = await table.run(Math.max(2, this.phaseSeconds - 1));
    const felt = this.felt(fault);
    this.say(`    what the users felt: ${felt.text}`);
    return { totals, firstMs, felt };
  }

  private summary(p: { phase1: PhaseTotals; phase2: PhaseTotals; dark: FaultPhase; back: FaultPhase; carrier: FaultPhase }): void {
    this.say('\nsummary: kB the cloud received (up) and the edge received (down) per user and link in each phase');
    this.say('  phase                      boss fibre   boss LTE   minion fibre   minion LTE   boss EF    down: boss fibre/LTE  minion fibre/LTE');
    const row = (label: string, s: PhaseTotals) =>
      this.say(
        `  ${label.padEnd(26)} ${kb(s.bytes['boss|c0']).padStart(10)} ${kb(s.bytes['boss|c1']).padStart(10)} ` +
          `${kb(s.bytes['minion|c0']).padStart(14)} ${kb(s.bytes['minion|c1']).padStart(12)} ${s.efPercent.toFixed(0).padStart(8)}%` +
          `  ${`${kb(s.down['boss|wan0|down'])}/${kb(s.down['boss|wan1|down'])}`.padStart(20)} ${`${kb(s.down['minion|wan0|down'])}/${kb(s.down['minion|wan1|down'])}`.padStart(17)}`,
      );
    row('1 policies as posted', p.phase1);
    row('2 boss moved to LTE', p.phase2);
    row('3 LTE dark, carrier up', p.dark.totals);
    row('4 LTE back', p.back.totals);
    row('5 LTE carrier lost', p.carrier.totals);
    this.say('  fault or repair              first bytes on the other link   goodput back (>= 80 % of before), per user');
    this.say(`  LTE dark (blackhole)         ${`${p.dark.firstMs.toFixed(0)} ms`.padStart(8)}                        ${p.dark.felt.short}`);
    this.say(`  LTE healed (failback)        ${`${p.back.firstMs.toFixed(0)} ms`.padStart(8)}                        ${p.back.felt.short}`);
    this.say(`  LTE carrier lost             ${`${p.carrier.firstMs.toFixed(0)} ms`.padStart(8)}                        ${p.carrier.felt.short}`);
  }

  /** Each phase's traffic on the links it should be on, both directions; throws what is not. */
  private check(phase1: PhaseTotals, phase2: PhaseTotals, phase3: PhaseTotals, phase4: PhaseTotals, phase5: PhaseTotals): void {
    const on = (s: PhaseTotals, user: User, link: 'wan0' | 'wan1') => (s.bytes[`${user}|${DEVS[link]}`] ?? 0) > 0;
    const downOn = (s: PhaseTotals, user: User, link: 'wan0' | 'wan1') => (s.down[`${user}|${link}|down`] ?? 0) > 0;
    const fibreOnly = (s: PhaseTotals) => on(s, 'boss', 'wan0') && on(s, 'minion', 'wan0') && !on(s, 'boss', 'wan1') && !on(s, 'minion', 'wan1');
    const problems = [
      !(on(phase1, 'minion', 'wan1') && !on(phase1, 'minion', 'wan0')) && 'phase 1: minion not on LTE only',
      !(on(phase1, 'boss', 'wan0') && !on(phase1, 'boss', 'wan1')) && 'phase 1: boss not on fibre only',
      !(on(phase2, 'boss', 'wan1') && !on(phase2, 'boss', 'wan0')) && 'phase 2: boss not on LTE only',
      !fibreOnly(phase3) && 'phase 3: traffic not on fibre only',
      !(on(phase4, 'boss', 'wan1') && on(phase4, 'minion', 'wan1') && !on(phase4, 'boss', 'wan0') && !on(phase4, 'minion', 'wan0')) &&
        'phase 4: traffic not back on LTE only',
      !fibreOnly(phase5) && 'phase 5: traffic not on fibre only',
      // the replies follow: the cloud end sends them back by the link the session arrived on
      !(downOn(phase1, 'minion', 'wan1') && !downOn(phase1, 'minion', 'wan0')) && 'phase 1: minion\'s download not on LTE only',
      !(downOn(phase3, 'minion', 'wan0') && !downOn(phase3, 'minion', 'wan1')) && 'phase 3: minion\'s download not on fibre only',
    ].filter((p): p is string => typeof p === 'string');
    if (problems.length > 0) throw new Error(problems.join('; '));
    this.say('result: ok — minion on LTE, boss moved to LTE by the policy change, both on fibre while LTE was dark, back on LTE once it healed, on fibre again after its carrier was lost; downloads followed each move');
  }

  /** Stop everything this demo started; idempotent. `ok` false (a failure) keeps the agent's log. */
  cleanup(ok: boolean): Promise<void> {
    this.cleaning ??= (async () => {
      for (const u of this.uploads) u.kill('SIGKILL'); // before the service, so nothing sees a reset
      await Promise.all([this.agent, this.cloudAgent].map(async (a) => {
        if (!a || a.exitCode !== null || a.signalCode !== null) return;
        const exited = new Promise((r) => a.once('exit', r));
        a.kill('SIGTERM');
        await Promise.race([exited, sleep(3000)]);
      }));
      this.lab?.destroy();
      rmSync(this.pinDir, { recursive: true, force: true });
      rmSync(`${this.pinDir}-cloud`, { recursive: true, force: true });
      await new Promise<void>((r) => (this.log ? this.log.end(r) : r()));
      if (ok) {
        rmSync(this.dir, { recursive: true, force: true });
        this.say('cleaned up: namespaces, processes, pins and the temporary directory are removed');
      } else {
        for (const f of ['config.yaml', 'cloud.yaml', 'policies.yaml', 'token', 'rules', 'state']) rmSync(join(this.dir, f), { recursive: true, force: true });
        this.io.stderr(`cleaned up; the agents' logs are kept in ${this.logFile} and ${this.cloudLogFile}\n`);
      }
    })();
    return this.cleaning;
  }

  private self(): string[] {
    return selfCli();
  }

  private auth(): Record<string, string> {
    return { authorization: `Bearer ${TOKEN}` };
  }

  private writeConfig(): void {
    const { dir } = this;
    writeFileSync(join(dir, 'token'), TOKEN + '\n', { mode: 0o600 });
    const probe = `probe: { target: ${CLOUD.service.v4} }`;
    writeFileSync(
      join(dir, 'config.yaml'),
      [
        'links:',
        `  - { name: wan0, interface: wan0, nextHop4: ${CLOUD.c0.v4}, ${probe} }`,
        `  - { name: wan1, interface: wan1, nextHop4: ${CLOUD.c1.v4}, ${probe} }`,
        'defaultLink: wan0',
        `listen: { http: "${EDGE.wan0.v4}:9090" }`,
        `auth: { tokenFile: ${join(dir, 'token')} }`,
        `rules: { source: directory, directory: ${fromRoot('examples/rules')} }`,
        `policies: { store: file, file: ${join(dir, 'policies.yaml')} }`,
        `stateDir: ${join(dir, 'state')}`,
        `datapath: { pinDir: ${this.pinDir}, flowTableSize: 65536 }`,
        'log: { level: warn }',
      ].join('\n') + '\n',
    );
  }

  /** The cloud end of the links: replies go back by the link their session arrived on. */
  private async startCloudAgent(): Promise<void> {
    const lab = this.lab!;
    const config = join(this.dir, 'cloud.yaml');
    writeFileSync(config, [
      'mode: reply-by-arrival',
      'links:',
      `  - { name: fibre, interface: c0, nextHop4: ${EDGE.wan0.v4} }`,
      `  - { name: lte, interface: c1, nextHop4: ${EDGE.wan1.v4} }`,
      `listen: { http: "${CLOUD.service.v4}:9090" }`,
      `datapath: { pinDir: ${this.pinDir}-cloud, flowTableSize: 65536 }`,
      'log: { level: warn }',
    ].join('\n') + '\n');
    const log = createWriteStream(this.cloudLogFile);
    const agent = (this.cloudAgent = lab.spawn(lab.cloud, [...this.self(), 'agent', '--config', config]));
    agent.stdout!.pipe(log);
    agent.stderr!.pipe(log);
    await new LabAgentClient(lab, lab.cloud, `http://${CLOUD.service.v4}:9090`, () => `the cloud agent's log: ${this.cloudLogFile}`).waitReady(agent, 30_000);
  }

  private async startAgent(): Promise<void> {
    const lab = this.lab!;
    this.log = createWriteStream(this.logFile);
    const agent = (this.agent = lab.spawn(lab.edge, [...this.self(), 'agent', '--config', join(this.dir, 'config.yaml')]));
    agent.stdout!.pipe(this.log, { end: false });
    agent.stderr!.pipe(this.log, { end: false });
    await this.api.waitReady(agent, 30_000);
  }

  /**
   * What each user felt of the fault at `at`: the longest time one of their connections took to
   * deliver at >= 80 % of its rate before again, as the cloud's service read it.
   */
  private felt(at: bigint): { text: string; short: string } {
    const gap = (sport: number) => {
      try {
        return this.goodput.gap(sport, at).gapMs;
      } catch {
        return NaN; // the connection was not delivering before: nothing to compare with
      }
    };
    const gaps = USER_NAMES.map((u) => ({ user: u, ms: Math.max(...USERS[u].map(gap)) }));
    const show = (g: number) => (Number.isNaN(g) ? 'not measured' : g === Infinity ? 'not back within the phase' : `${g.toFixed(0)} ms`);
    const short = gaps.map((g) => `${g.user} ${show(g.ms)}`).join(', ');
    if (gaps.every((g) => g.ms === 0)) return { text: 'no stall: each user\'s uploads kept >= 80 % of their rate', short };
    return { text: `uploads delivering again (>= 80 % of their rate before) after ${short}`, short };
  }

  /** When both users' bytes first arrive by the cloud's `dev` after `fault` (polling the counters). */
  private async firstBytesOn(dev: 'c0' | 'c1', before: Record<string, number>, fault: bigint, timeoutMs: number): Promise<bigint> {
    const seen: Partial<Record<User, bigint>> = {};
    while (process.hrtime.bigint() - fault < BigInt(timeoutMs) * 1_000_000n) {
      // Bytes this read sees arrived after the last read began and before this one ended; its
      // start is the estimate (a read takes milliseconds: an nft process).
      const t = process.hrtime.bigint();
      const now = this.counters.readBoth().bytes;
      for (const u of USER_NAMES) if (seen[u] === undefined && (now[`${u}|${dev}`] ?? 0) > (before[`${u}|${dev}`] ?? 0)) seen[u] = t;
      if (USER_NAMES.every((u) => seen[u] !== undefined)) return USER_NAMES.map((u) => seen[u]!).reduce((a, b) => (a > b ? a : b));
      await sleep(2);
    }
    const link = dev === 'c0' ? 'wan0' : 'wan1';
    throw new Error(`no move to ${link} seen within ${timeoutMs} ms (first bytes on ${link}: ${JSON.stringify(Object.keys(seen))}); the agent's log: ${this.logFile}`);
  }
}

interface PhaseTotals {
  bytes: Record<string, number>;
  efPercent: number;
  /** Bytes that came back down, per `user|wanN|down` (counted on the edge's ingress). */
  down: Record<string, number>;
}

/** Prints, every second, the kB/s the cloud receives per user and link, boss's EF share, and what comes back down. */
class LiveTable {
  private last: { packets: Record<string, number>; bytes: Record<string, number> } = { packets: {}, bytes: {} };
  private lastDown: Record<string, number> = {};
  private lastAt = process.hrtime.bigint();
  private readonly t0 = process.hrtime.bigint();

  constructor(
    private readonly counters: IngressCounters,
    private readonly down: OverlayCounters,
    private readonly io: CliIo,
  ) {}

  header(): void {
    this.io.stdout('\n  up:    to the cloud, per user and link                          boss    down: back to the edge, kB/s\n');
    this.io.stdout('  time   boss@fibre    boss@LTE   minion@fibre   minion@LTE   EF-marked   boss fibre/LTE  minion fibre/LTE\n');
    this.mark();
  }

  /** Start counting from now (the next row and the next phase's totals). */
  mark(): void {
    this.last = this.counters.readBoth();
    this.lastDown = downBytes(this.down);
    this.lastAt = process.hrtime.bigint();
  }

  /** Print one row a second for `seconds`; the totals of the phase. */
  async run(seconds: number): Promise<PhaseTotals> {
    const start = this.last;
    const startDown = this.lastDown;
    for (let i = 0; i < seconds; i++) {
      await sleep(Math.max(0, 1000 - Number(process.hrtime.bigint() - this.lastAt) / 1e6));
      const now = this.counters.readBoth();
      const nowDown = downBytes(this.down);
      const at = process.hrtime.bigint();
      const secs = Number(at - this.lastAt) / 1e9;
      const per = (a: Record<string, number>, b: Record<string, number>, k: string) => Math.max(0, ((a[k] ?? 0) - (b[k] ?? 0)) / 1024 / secs).toFixed(0);
      const rate = (k: string) => `${per(now.bytes, this.last.bytes, k)} kB/s`;
      const back = (u: User) => `${per(nowDown, this.lastDown, `${u}|wan0|down`)}/${per(nowDown, this.lastDown, `${u}|wan1|down`)}`;
      const ef = efShare(now.packets, this.last.packets);
      this.io.stdout(
        `  ${(Number(at - this.t0) / 1e9).toFixed(0).padStart(3)}s ${rate('boss|c0').padStart(11)} ${rate('boss|c1').padStart(11)} ` +
          `${rate('minion|c0').padStart(14)} ${rate('minion|c1').padStart(12)} ${ef.toFixed(0).padStart(10)}%   ${back('boss').padStart(14)} ${back('minion').padStart(17)}\n`,
      );
      this.last = now;
      this.lastDown = nowDown;
      this.lastAt = at;
    }
    const bytes: Record<string, number> = {};
    for (const k of Object.keys(this.last.bytes)) bytes[k] = (this.last.bytes[k] ?? 0) - (start.bytes[k] ?? 0);
    const down: Record<string, number> = {};
    for (const k of Object.keys(this.lastDown)) down[k] = (this.lastDown[k] ?? 0) - (startDown[k] ?? 0);
    return { bytes, efPercent: efShare(this.last.packets, start.packets), down };
  }
}

/** Bytes per `user|wanN|down` the edge received (its ingress). */
function downBytes(counters: OverlayCounters): Record<string, number> {
  return Object.fromEntries(Object.entries(counters.read()).filter(([k]) => k.endsWith('|down')).map(([k, c]) => [k, c.bytes]));
}

function efShare(now: Record<string, number>, then: Record<string, number>): number {
  const d = (k: string) => (now[k] ?? 0) - (then[k] ?? 0);
  const all = d('boss|c0') + d('boss|c1');
  return all > 0 ? (100 * (d('boss|c0|dscp46') + d('boss|c1|dscp46'))) / all : 0;
}

const kb = (bytes: number | undefined) => ((bytes ?? 0) / 1024).toFixed(0);

/** argv that runs this CLI again: from source (execArgv carries --import tsx), dist or bin. */
function selfCli(): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1] ?? fromRoot('bin/wansteer.js')];
}

function phaseSeconds(): number {
  const n = Number(process.env.WANSTEER_DEMO_PHASE_SECONDS ?? 4);
  return Number.isInteger(n) && n >= 2 && n <= 60 ? n : 4;
}

function policy(name: string, route: User, links: string[], mode: 'redirect' | 'both', dscp?: number) {
  return {
    name,
    spec: { match: { route: { virtualService: VS, route } }, action: { links, mode, ...(dscp !== undefined ? { dscp } : {}) } },
  };
}

function session(sport: number, user: User) {
  return {
    direction: 'outbound',
    local: `${EDGE.wan0.v4}:${sport}`,
    remote: `${CLOUD.service.v4}:${PORT}`,
    request: { authority: HOST, path: '/', method: 'POST', headers: { 'end-user': user } },
  };
}

