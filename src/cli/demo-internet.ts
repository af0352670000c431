/**
 * `wansteer demo` (the default profile): an edge node with two ISPs, steered by the agent.
 *
 * The edge is built like a real one (src/lab/internet.ts): each ISP gives it its own address and
 * drops foreign sources, the two users' pods sit behind the node's masquerade, the cloud is a
 * public address behind both ISPs. The users' apps mark their connections with their class's
 * DSCP, as an Envoy upstream cluster does in mark mode: boss AF11 (DSCP 10), minion AF21 (DSCP
 * 18). Each user makes web-like requests to the cloud (an upload and a download every 20 ms,
 * a new connection every 2 s) and reconnects at once when a connection breaks.
 *
 *   1. policies over REST: boss -> fibre (wan0), minion -> LTE (wan1)
 *   2. boss moved to LTE by a PUT: its new connections follow
 *   3. LTE goes dark in the ISP (carrier up): the probes notice, the connections bound to LTE are
 *      reset, both users reconnect over the fibre
 *   4. LTE heals: new connections move back after the hysteresis
 *   5. LTE loses its carrier: reset and reconnect over the fibre at once
 *
 * Every second it prints what each ISP carried per user, upload and download, and the address
 * the cloud saw; after each fault, how long until each user had answers again. The bytes are
 * counted in the ISPs, where they are paid for.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { EdgeRig, INTERNET_CLOUD, ISPS, IspCounters, SESSIONS_TOOL, type ByteCount, type WanName } from '../lab/index.js';
import type { CliIo } from './explain.js';

const USERS = {
  boss: { pod: 'pod0', dscp: 10, port: 8001 },
  minion: { pod: 'pod1', dscp: 18, port: 8002 },
} as const;
type User = keyof typeof USERS;
const USER_NAMES = Object.keys(USERS) as User[];
const LABEL: Record<WanName, string> = { wan0: 'fibre', wan1: 'LTE' };
const ISP: Record<WanName, 'isp0' | 'isp1'> = { wan0: 'isp0', wan1: 'isp1' };
/** Per request: bytes up and down; a new connection every CONN_MS. */
const UP = 8 * 1024;
const DOWN = 32 * 1024;
const CONN_MS = 2000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface LoopEvent {
  event: 'first-byte' | 'error' | 'done';
  t?: number;
  seen?: string;
  error?: string;
}

/** Bytes per user, link and direction over a phase. */
type PhaseBytes = Record<User, Record<WanName, { up: number; down: number }>>;

export class InternetDemo {
  private rig: EdgeRig | undefined;
  private counters!: IspCounters;
  private readonly events: Record<User, LoopEvent[]> = { boss: [], minion: [] };
  private readonly loops: ChildProcess[] = [];
  private last: Record<string, ByteCount> = {};
  private lastAt = process.hrtime.bigint();
  private t0 = process.hrtime.bigint();
  private cleaning: Promise<void> | undefined;

  constructor(
    private readonly io: CliIo,
    private readonly phaseSeconds: number,
    private readonly cli: string[],
  ) {}

  private say(text = ''): void {
    this.io.stdout(text + '\n');
  }

  async run(): Promise<void> {
    await this.setUp();
    const phases: [string, PhaseBytes][] = [];
    phases.push(['1 policies as posted', await this.policiesPosted()]);
    phases.push(['2 boss moved to LTE', await this.policyChanged()]);
    const dark = await this.lteDark();
    phases.push(['3 LTE dark, carrier up', dark.bytes]);
    phases.push(['4 LTE back', await this.lteBack()]);
    const carrier = await this.lteCarrierLost();
    phases.push(['5 LTE carrier lost', carrier.bytes]);
    this.summary(phases, dark.back, carrier.back);
  }

  // ---- set-up --------------------------------------------------------------------------

  private async setUp(): Promise<void> {
    this.say('wansteer demo: an edge node with two ISPs, its pods behind the node\'s NAT, steered by the agent');
    const rig = (this.rig = await EdgeRig.start({ tag: 'demo', cli: this.cli }));
    const { lab } = rig;
    this.say(`  edge ${lab.edge}: wan0 ${ISPS.isp0.edge4} "fibre" (isp0, the default route), wan1 ${ISPS.isp1.edge4} "LTE" (isp1)`);
    this.say('  each ISP drops packets whose source is not its own subscriber address (BCP 38)');
    this.say(`  pods: boss in ${lab.pods.pod0}, minion in ${lab.pods.pod1}, behind the node's masquerade`);
    this.say(`  cloud ${lab.cloud}: ${INTERNET_CLOUD.v4} behind both ISPs (session servers, link-probe reflector)`);
    this.say('  agent in the edge: wan0 and wan1 are internet links (addressing: internet): it owns a routing table, rules and an');
    this.say('  nftables table per link, so a connection\'s class chooses its link before the kernel routes and NATs it');
    await Promise.all(USER_NAMES.map((u) => lab.spawnReady(lab.cloud, ['python3', SESSIONS_TOOL, 'server', String(USERS[u].port)], `${u}'s server`)));
    this.counters = IspCounters.install(lab, USER_NAMES.map((u) => ({ name: u, up: `tcp dport ${USERS[u].port}`, down: `tcp sport ${USERS[u].port}` })));
  }

  // ---- the phases ------------------------------------------------------------------------

  private async policiesPosted(): Promise<PhaseBytes> {
    this.say('\n>>> policies, posted over REST (POST /v1/policies), one per class (mark mode):');
    this.post('boss-fibre', 10, ['wan0', 'wan1']);
    this.post('minion-lte', 18, ['wan1', 'wan0']);
    this.say('    boss-fibre: DSCP 10 (AF11) -> links [wan0 fibre, wan1 LTE]');
    this.say('    minion-lte: DSCP 18 (AF21) -> links [wan1 LTE, wan0 fibre]');
    this.say(`\n>>> each user asks the cloud for ${DOWN / 1024} kB and sends ${UP / 1024} kB every 20 ms, a new connection every ${CONN_MS / 1000} s`);
    this.say('    (the app sets its class\'s DSCP on its socket, as an Envoy upstream cluster does in mark mode)');
    const totalMs = (5 * this.phaseSeconds + 20) * 1000;
    for (const u of USER_NAMES) this.startLoop(u, totalMs);
    await this.until('both users answered', () => USER_NAMES.every((u) => this.events[u].some((e) => e.event === 'first-byte')), 10_000);
    this.header();
    return this.table(this.phaseSeconds);
  }

  private async policyChanged(): Promise<PhaseBytes> {
    this.say('\n>>> policy change over REST: PUT /v1/policies/boss-fibre (If-Match) links [wan1 LTE, wan0 fibre]');
    const answer = this.rig!.putPolicy('boss-fibre', spec(10, ['wan1', 'wan0']));
    if (answer.status !== 200) throw new Error(`PUT /v1/policies/boss-fibre answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    this.say('    200: boss\'s new connections leave by LTE with LTE\'s address; a connection already open stays where it is bound');
    await sleep(CONN_MS + 200);
    this.mark();
    return this.table(this.phaseSeconds);
  }

  private async lteDark(): Promise<{ bytes: PhaseBytes; back: Record<User, number> }> {
    this.say('\n>>> LTE goes dark: isp1 forwards nothing, the carrier stays up; nobody tells the agent');
    const fault = this.rig!.lab.blackhole('wan1', true);
    const back = await this.backOn('wan0', fault);
    const w1 = (await this.rig!.api.waitLinks((ls) => ls.some((l) => l.name === 'wan1' && !l.up), 3000, 'wan1 reported down')).find((l) => l.name === 'wan1')!;
    this.say(`    the agent (GET /v1/links): wan1 down, "${w1.reason ?? '?'}"; LTE's connections reset, the users reconnect over the fibre`);
    this.sayBack(back);
    this.mark();
    return { bytes: await this.table(Math.max(2, this.phaseSeconds - 1)), back };
  }

  private async lteBack(): Promise<PhaseBytes> {
    this.say('\n>>> LTE comes back: after 10 answered probes in a row the classes return to LTE, for new connections');
    this.rig!.lab.blackhole('wan1', false);
    await this.rig!.api.waitLinks((ls) => ls.every((l) => l.up), 10_000, 'wan1 back up');
    await sleep(CONN_MS + 200);
    this.mark();
    return this.table(Math.max(2, this.phaseSeconds - 1));
  }

  private async lteCarrierLost(): Promise<{ bytes: PhaseBytes; back: Record<User, number> }> {
    this.say('\n>>> LTE fails: its carrier is lost (isp1 takes the line down); nobody tells the agent');
    const fault = process.hrtime.bigint();
    this.rig!.lab.setCarrier('wan1', false);
    const back = await this.backOn('wan0', fault);
    this.sayBack(back);
    this.mark();
    return { bytes: await this.table(Math.max(2, this.phaseSeconds - 1)), back };
  }

  private summary(phases: [string, PhaseBytes][], dark: Record<User, number>, carrier: Record<User, number>): void {
    this.say('\nsummary: kB each ISP carried per user (up/down) in each phase');
    this.say('  phase                      boss fibre      boss LTE        minion fibre    minion LTE');
    for (const [label, b] of phases) {
      const cell = (u: User, l: WanName) => `${kb(b[u][l].up)}/${kb(b[u][l].down)}`.padStart(15);
      this.say(`  ${label.padEnd(26)} ${cell('boss', 'wan0')} ${cell('boss', 'wan1')} ${cell('minion', 'wan0')} ${cell('minion', 'wan1')}`);
    }
    this.say(`  LTE dark:         answers again over the fibre after ${ms(dark.boss)} (boss), ${ms(dark.minion)} (minion); the probes take ~0.6 s to call it`);
    this.say(`  LTE carrier lost: answers again over the fibre after ${ms(carrier.boss)} (boss), ${ms(carrier.minion)} (minion)`);
    const [one, two, three, four, five] = phases.map(([, b]) => b) as [PhaseBytes, PhaseBytes, PhaseBytes, PhaseBytes, PhaseBytes];
    const only = (b: PhaseBytes, u: User, l: WanName) => b[u][l].down > 0 && b[u][l].up > 0 && b[u][l === 'wan0' ? 'wan1' : 'wan0'].down === 0;
    const problems = [
      !only(one, 'boss', 'wan0') && 'phase 1: boss not on the fibre only (both ways)',
      !only(one, 'minion', 'wan1') && 'phase 1: minion not on LTE only (both ways)',
      !only(two, 'boss', 'wan1') && 'phase 2: boss not moved to LTE',
      !(only(three, 'boss', 'wan0') && only(three, 'minion', 'wan0')) && 'phase 3: not on the fibre only while LTE was dark',
      !(only(four, 'boss', 'wan1') && only(four, 'minion', 'wan1')) && 'phase 4: not back on LTE',
      !(only(five, 'boss', 'wan0') && only(five, 'minion', 'wan0')) && 'phase 5: not on the fibre after LTE lost its carrier',
    ].filter((p): p is string => typeof p === 'string');
    if (problems.length > 0) throw new Error(`${problems.join('; ')}\nthe agent's log:\n${this.rig!.log.slice(-3000)}`);
    this.say('result: ok — each class left by its link with that link\'s address and came back the same way; the policy change moved');
    this.say('        new connections; LTE\'s failures reset its connections and both users were back over the fibre at once');
  }

  // ---- pieces --------------------------------------------------------------------------

  private post(name: string, dscp: number, links: string[]): void {
    const answer = this.rig!.call('POST', '/v1/policies', { name, spec: spec(dscp, links) });
    if (answer.status !== 201) throw new Error(`POST /v1/policies ${name} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  }

  private startLoop(user: User, totalMs: number): void {
    const u = USERS[user];
    const argv = ['python3', SESSIONS_TOOL, 'loop', INTERNET_CLOUD.v4, String(u.port), String(totalMs), String(UP), String(DOWN), String(u.dscp << 2), '', String(CONN_MS)];
    const child = this.rig!.lab.spawn(this.rig!.lab.pods[u.pod], argv);
    this.loops.push(child);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        this.events[user].push(JSON.parse(line) as LoopEvent);
      } catch {
        /* not an event */
      }
    });
  }

  /** For each user, ms from `fault` to its first answer over `link` (its address seen by the cloud). */
  private async backOn(link: WanName, fault: bigint): Promise<Record<User, number>> {
    const address = ISPS[ISP[link]].edge4;
    const after = (u: User) => this.events[u].find((e) => e.event === 'first-byte' && e.seen === address && BigInt(e.t!) > fault);
    await this.until(`both users answered over ${LABEL[link]}`, () => USER_NAMES.every((u) => after(u)), 5000);
    return { boss: Number(BigInt(after('boss')!.t!) - fault) / 1e6, minion: Number(BigInt(after('minion')!.t!) - fault) / 1e6 };
  }

  private sayBack(back: Record<User, number>): void {
    this.say(`    answers again over the fibre, with the fibre's address: boss after ${ms(back.boss)}, minion after ${ms(back.minion)} (from the fault)`);
  }

  private async until(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\nthe agent's log:\n${this.rig!.log.slice(-3000)}`);
      await sleep(10);
    }
  }

  private header(): void {
    this.say('\n  time  user     fibre up/down kB/s   LTE up/down kB/s   seen by the cloud as');
    this.mark();
    this.t0 = this.lastAt;
  }

  private mark(): void {
    this.last = this.counters.read();
    this.lastAt = process.hrtime.bigint();
  }

  /** One row per user a second for `seconds`; the phase's bytes per user, link and direction. */
  private async table(seconds: number): Promise<PhaseBytes> {
    const start = this.last;
    for (let i = 0; i < seconds; i++) {
      await sleep(Math.max(0, 1000 - Number(process.hrtime.bigint() - this.lastAt) / 1e6));
      const now = this.counters.read();
      const at = process.hrtime.bigint();
      const secs = Number(at - this.lastAt) / 1e9;
      const rate = (u: User, l: WanName, dir: 'up' | 'down') => {
        const k = `${u}|${ISP[l]}|${dir}`;
        return Math.max(0, ((now[k]?.bytes ?? 0) - (this.last[k]?.bytes ?? 0)) / 1024 / secs).toFixed(0);
      };
      for (const u of USER_NAMES) {
        const seen = [...this.events[u]].reverse().find((e) => e.event === 'first-byte')?.seen ?? '?';
        const via = seen === ISPS.isp0.edge4 ? 'fibre' : seen === ISPS.isp1.edge4 ? 'LTE' : '?';
        this.say(
          `  ${(Number(at - this.t0) / 1e9).toFixed(0).padStart(3)}s  ${u.padEnd(7)} ${`${rate(u, 'wan0', 'up')}/${rate(u, 'wan0', 'down')}`.padStart(18)} ` +
            `${`${rate(u, 'wan1', 'up')}/${rate(u, 'wan1', 'down')}`.padStart(18)}   ${seen} (${via})`,
        );
      }
      this.last = now;
      this.lastAt = at;
    }
    const bytes = {} as PhaseBytes;
    for (const u of USER_NAMES) {
      bytes[u] = { wan0: { up: 0, down: 0 }, wan1: { up: 0, down: 0 } };
      for (const l of ['wan0', 'wan1'] as const) {
        for (const dir of ['up', 'down'] as const) {
          const k = `${u}|${ISP[l]}|${dir}`;
          bytes[u][l][dir] = (this.last[k]?.bytes ?? 0) - (start[k]?.bytes ?? 0);
        }
      }
    }
    return bytes;
  }

  /** Stop everything this demo started; idempotent. */
  cleanup(ok: boolean): Promise<void> {
    this.cleaning ??= (async () => {
      for (const l of this.loops) l.kill('SIGKILL');
      const log = this.rig?.log ?? '';
      await this.rig?.stop();
      if (ok) this.say('cleaned up: namespaces, processes, pins, the agent\'s kernel rules and the temporary directory are removed');
      else this.io.stderr(`cleaned up; the end of the agent's log:\n${log.slice(-2000)}\n`);
    })();
    return this.cleaning;
  }
}

function spec(dscp: number, links: string[]) {
  return { match: { dscp }, action: { links, mode: 'redirect' } };
}

const kb = (bytes: number) => (bytes / 1024).toFixed(0);
const ms = (n: number) => `${n.toFixed(0)} ms`;
