/**
 * `wansteer demo`: a dual-WAN edge site in network namespaces, live.
 *
 * wan0 is the fibre (the default route), wan1 the LTE link. Two users stream to a cloud
 * service, after Clovisor's demo: "boss" sessions stay on the fibre marked EF (DSCP 46),
 * "minion" sessions are steered to LTE. Then a policy change moves boss to LTE too, and then
 * LTE fails and every session falls back to the fibre. The table shows what the cloud
 * receives, per user and per link, every second.
 *
 * The demo writes flow entries itself, standing in for the Envoy sidecar's session reports,
 * and marks the failed link down itself (automatic detection is the link monitor's job).
 *
 * Two processes: this one builds the lab and cleans it up (also on Ctrl-C); a second one,
 * started inside the edge namespace, runs the datapath, as the agent would on an edge node.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { Datapath } from '../datapath/index.js';
import type { CliIo } from './explain.js';
import { CLOUD, EDGE, IngressCounters, TRAFFIC_TOOL, WanLab, sh } from './lab.js';

const PORT = 8080;
const PHASE_SECONDS = 4;
const USERS = {
  boss: { sports: [42001, 42002], policy: 1 },
  minion: { sports: [43001, 43002], policy: 2 },
} as const;
type User = keyof typeof USERS;

export async function runDemo(argv: readonly string[], io: CliIo): Promise<number> {
  if (argv[0] === '--inside') return inside(argv[1]!, argv[2]!, argv[3]!, io);
  if (argv.includes('--help')) {
    io.stdout('Usage: wansteer demo\n\nBuilds a two-link edge site in network namespaces and shows steering live. Needs root.\n');
    return 0;
  }
  if (process.getuid?.() !== 0) {
    io.stderr('wansteer demo: needs root (it creates network namespaces and loads BPF): run it with sudo\n');
    return 2;
  }

  const lab = WanLab.create('demo');
  const pinDir = `/sys/fs/bpf/wansteer-demo-${process.pid}`;
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    lab.destroy();
    rmSync(pinDir, { recursive: true, force: true });
  };
  const onSignal = () => {
    io.stderr('\ninterrupted: cleaning up\n');
    cleanup();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const server = lab.spawn(lab.cloud, ['python3', TRAFFIC_TOOL, 'tcp-server', String(PORT)]);
    await new Promise<void>((resolve, reject) => {
      server.stdout!.once('data', () => resolve());
      server.once('exit', (c) => reject(new Error(`cloud server exited (${c})`)));
    });
    io.stdout(
      [
        'wansteer demo — a dual-WAN edge site in network namespaces',
        `  edge  ${lab.edge}: wan0 ${EDGE.wan0.v4} "fibre" (default route), wan1 ${EDGE.wan1.v4} "LTE"`,
        `  cloud ${lab.cloud}: service ${CLOUD.service.v4}:${PORT}`,
        '  session reports are written by the demo itself, standing in for the Envoy sidecar',
        '',
      ].join('\n') + '\n',
    );
    // Run the datapath half inside the edge namespace (network namespace only: bpffs stays).
    const child = spawn(
      'nsenter',
      [`--net=/run/netns/${lab.edge}`, '--', process.execPath, ...process.execArgv, process.argv[1]!, 'demo', '--inside', lab.edge, lab.cloud, pinDir],
      { stdio: 'inherit' },
    );
    const code = await new Promise<number>((resolve) => child.once('exit', (c) => resolve(c ?? 1)));
    return code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    cleanup();
  }
}

/** The edge side: datapath, sessions, live table. */
async function inside(edge: string, cloud: string, pinDir: string, io: CliIo): Promise<number> {
  const lab = WanLab.existing(edge, cloud);
  const dp = Datapath.open({ pinDir, flowTableSize: 65536 });
  const streams: ReturnType<typeof spawn>[] = [];
  const stop = () => {
    for (const s of streams) s.kill('SIGKILL');
    dp.destroy();
  };
  process.on('SIGINT', () => {
    stop();
    process.exit(130);
  });
  try {
    dp.attach('wan0');
    dp.attach('wan1');
    dp.setLink(0, { ifindex: dp.ifindex('wan0'), up: true, nextHop4: CLOUD.c0.v4 });
    dp.setLink(1, { ifindex: dp.ifindex('wan1'), up: true, nextHop4: CLOUD.c1.v4 });
    dp.setPolicy(USERS.boss.policy, { redirectLink: 0, dscp: 46 });
    dp.setPolicy(USERS.minion.policy, { redirectLink: 1 });
    io.stdout('datapath: steer.bpf.o attached to wan0 and wan1 egress\n');
    io.stdout('policy boss   -> wan0 (fibre), DSCP 46 (EF)\npolicy minion -> wan1 (LTE)\n\n');

    const counters = IngressCounters.install(
      lab,
      (Object.keys(USERS) as User[]).map((u) => ({ name: u, match: `tcp sport { ${USERS[u].sports.join(', ')} }` })),
      [46],
    );
    const total = PHASE_SECONDS * 3 * 1000 + 1500;
    for (const user of Object.keys(USERS) as User[]) {
      for (const sport of USERS[user].sports) {
        // What the sidecar's session report would make the agent write:
        dp.upsertFlow({ protocol: 'tcp', src: EDGE.wan0.v4, sport, dst: CLOUD.service.v4, dport: PORT }, USERS[user].policy);
        const s = spawn('python3', [TRAFFIC_TOOL, 'tcp-stream', EDGE.wan0.v4, String(sport), CLOUD.service.v4, String(PORT), String(total)], {
          stdio: 'ignore',
        });
        streams.push(s);
      }
    }

    const table = new LiveTable(counters, io);
    table.header();
    await table.run(PHASE_SECONDS);

    io.stdout('\n>>> policy change: boss -> wan1 (LTE), still EF — one policy-table write\n');
    dp.setPolicy(USERS.boss.policy, { redirectLink: 1, dscp: 46 });
    await table.run(PHASE_SECONDS);

    io.stdout('\n>>> LTE fails: carrier lost on wan1; the datapath marks link 1 down — one link-table write\n');
    sh('ip', ['-n', cloud, 'link', 'set', 'c1', 'down']);
    const fault = process.hrtime.bigint();
    dp.setLinkUp(1, false);
    const before = counters.readBoth().bytes;
    let movedMs: number | null = null;
    while (movedMs === null && process.hrtime.bigint() - fault < 2_000_000_000n) {
      const now = counters.readBoth().bytes;
      const moved = (Object.keys(USERS) as User[]).every((u) => (now[`${u}|c0`] ?? 0) > (before[`${u}|c0`] ?? 0));
      if (moved) movedMs = Number(process.hrtime.bigint() - fault) / 1e6;
    }
    io.stdout(
      movedMs === null
        ? 'failover: no traffic seen on wan0 within 2 s\n'
        : `failover: both users' traffic arriving over wan0 ${movedMs.toFixed(0)} ms after the fault\n`,
    );
    await table.run(PHASE_SECONDS - 1);

    const r = dp.counters().reasons;
    io.stdout(
      `\ndatapath counters: redirected ${r.redirected.packets}, on_link ${r.on_link.packets}, ` +
        `link_down ${r.link_down.packets}, dscp_rewritten ${r.dscp_rewritten.packets}, no_match ${r.no_match.packets}\n`,
    );
    io.stdout('done: namespaces, pins and tc hooks are removed\n');
    return 0;
  } finally {
    stop();
  }
}

/** Prints, every second, the kB/s the cloud received per user and link (and boss's EF share). */
class LiveTable {
  private last: Record<string, number> = {};
  private t = 0;

  constructor(
    private readonly counters: IngressCounters,
    private readonly io: CliIo,
  ) {}

  header(): void {
    this.io.stdout('  time   boss@wan0   boss@wan1   minion@wan0   minion@wan1   boss EF-marked\n');
  }

  async run(seconds: number): Promise<void> {
    for (let i = 0; i < seconds; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      this.t++;
      const { bytes, packets } = this.counters.readBoth();
      const rate = (k: string) => `${(((bytes[k] ?? 0) - (this.last[k] ?? 0)) / 1024).toFixed(0)} kB/s`;
      const bossPkts = (packets['boss|c0'] ?? 0) + (packets['boss|c1'] ?? 0);
      const ef = (packets['boss|c0|dscp46'] ?? 0) + (packets['boss|c1|dscp46'] ?? 0);
      this.io.stdout(
        `  ${String(this.t).padStart(3)}s ${rate('boss|c0').padStart(11)} ${rate('boss|c1').padStart(11)} ` +
          `${rate('minion|c0').padStart(13)} ${rate('minion|c1').padStart(13)} ` +
          `${(bossPkts ? (100 * ef) / bossPkts : 0).toFixed(0).padStart(14)}%\n`,
      );
      this.last = bytes;
    }
  }
}
