/**
 * The agent's configuration: one YAML file, overridden by flags and environment variables
 * (src/config/load.ts). The schema is the single definition of every field, its default and
 * its limits; the loader validates against it and names the field and the fix on error.
 *
 *   links:
 *     - { name: fibre, interface: eth1, nextHop4: 192.0.2.1 }
 *     - { name: lte, interface: wwan0 }            # raw-IP device: no next hop needed
 *   defaultLink: fibre
 *   rules: { source: directory, directory: /etc/wansteer/rules }
 *   policies: { store: file, file: /var/lib/wansteer/policies.yaml }
 */
import { Type, type Static } from '@sinclair/typebox';

/** Logical WAN link name (e.g. `wan0`, `fibre`): what policies and the API call a link. */
export const LinkName = Type.String({ pattern: '^[A-Za-z0-9][-_.A-Za-z0-9]*$', minLength: 1, maxLength: 32 });

const HostPort = Type.String({ pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[^:\\s]+):[0-9]{1,5}$', description: 'host:port, [v6]:port' });
const IpAddress = Type.String({ minLength: 2, maxLength: 45, description: 'an IPv4 or IPv6 address' });

/**
 * Probe timings by profile. A blackhole is confirmed after `downAfter` intervals without an
 * answer plus `timeoutMs` for the last probe's answer. TCP resends a lost segment at its
 * retransmission timeout (RTO, at least 200 ms) and backs off: 1, 3, 7 × RTO after the loss. A
 * session moved off a blackholed link resumes at the next of those instants, so detection is
 * worth most just before one. `default` suits links whose round trip stays under 250 ms and
 * confirms a blackhole in 0.45-0.57 s, before the second resend (at 300 ms of timeout it took up
 * to ~0.61 s and could miss a 600 ms one: those sessions waited for the third, 1.4 s). `fast` is
 * for links whose round trip stays well under 60 ms, where detection is worth 2.5x the probe
 * packets: confirmed in ~0.15 s, before the first resend, so sessions resume at the move. Fields
 * given in the config win over the profile's. Measured: bench/failover.ts, docs/links.md.
 */
export const PROBE_PROFILES = {
  default: { intervalMs: 100, timeoutMs: 250, downAfter: 3, upAfter: 10 },
  fast: { intervalMs: 40, timeoutMs: 60, downAfter: 2, upAfter: 25 },
} as const;
export type ProbeProfile = keyof typeof PROBE_PROFILES;

export const ProbeConfig = Type.Object(
  {
    /** Timings preset (PROBE_PROFILES); a field given beside it wins. */
    profile: Type.Optional(Type.Union([Type.Literal('default'), Type.Literal('fast')])),
    /** Address probed over this link: a host running `wansteer reflector` (TWAMP-light). */
    target: Type.Optional(IpAddress),
    /**
     * Instead of `target`: up to four reflectors, each probed on its own; the link is down only
     * when none of them answers, so one reflector's outage does not take a healthy link down.
     */
    targets: Type.Optional(Type.Array(IpAddress, { minItems: 1, maxItems: 4, uniqueItems: true })),
    /** The reflector's UDP port; each link may probe its own reflector (default 862, TWAMP's). */
    port: Type.Integer({ minimum: 1, maximum: 65_535, default: 862 }),
    intervalMs: Type.Integer({ minimum: 10, maximum: 60_000, default: PROBE_PROFILES.default.intervalMs }),
    timeoutMs: Type.Integer({ minimum: 10, maximum: 60_000, default: PROBE_PROFILES.default.timeoutMs }),
    /** Down after this many consecutive misses; up after `upAfter` consecutive successes. */
    downAfter: Type.Integer({ minimum: 1, maximum: 100, default: PROBE_PROFILES.default.downAfter }),
    upAfter: Type.Integer({ minimum: 1, maximum: 1000, default: PROBE_PROFILES.default.upAfter }),
    /** Samples in the sliding window for RTT, loss and jitter. */
    window: Type.Integer({ minimum: 1, maximum: 10_000, default: 50 }),
  },
  { additionalProperties: false },
);

export const LinkConfig = Type.Object(
  {
    /** Logical name policies refer to. */
    name: LinkName,
    /** The WAN interface the program attaches to (egress). */
    interface: Type.String({ minLength: 1, maxLength: 15, pattern: '^[^/\\s:]+$' }),
    /** Next hop per family; absent: the kernel's FIB picks one on the link (or none is needed). */
    nextHop4: Type.Optional(IpAddress),
    nextHop6: Type.Optional(IpAddress),
    probe: Type.Optional(ProbeConfig),
    /**
     * overlay: the edge's addresses are valid on this link (a tunnel, a private WAN); sessions are
     * moved onto it at the WAN egress. internet: the link has its own address and the node NATs
     * (an ISP); connections are bound to it before the kernel routes them (docs/links.md).
     */
    addressing: Type.Optional(Type.Union([Type.Literal('overlay'), Type.Literal('internet')], { default: 'overlay' })),
    /** internet links: the routing table the agent owns for this link (default internet.tableBase + the link's index). */
    table: Type.Optional(Type.Integer({ minimum: 1, maximum: 0xfffffffe })),
  },
  { additionalProperties: false },
);

/** How the agent drives the kernel for internet links (see docs/links.md). */
export const InternetConfig = Type.Object(
  {
    /** Link i's routing table is tableBase + i unless the link names its own `table`. */
    tableBase: Type.Integer({ minimum: 1, maximum: 0xfffffff0, default: 3600 }),
    /** The agent's `ip rule`s sit at rulePriority (marked traffic: main without its default route) and rulePriority + 1 + i. */
    rulePriority: Type.Integer({ minimum: 1, maximum: 32_000, default: 9000 }),
    /**
     * The bits of the packet and connection mark the agent owns: link i's mark is (i + 1) shifted
     * into them (all of them set is the agent's own). One contiguous run of bits; other bits of
     * the mark are left alone.
     */
    markMask: Type.Integer({ minimum: 1, maximum: 0xffffffff, default: 0x3f000000 }),
  },
  { additionalProperties: false, default: {} },
);

export const AgentConfig = Type.Object(
  {
    /** This node's name (default: the host name). */
    nodeName: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
    /**
     * What this agent is. steer: the edge, steering sessions between its links. reply-by-arrival:
     * the cloud end of overlay links, where each flow's replies leave by the link the flow arrived
     * on, so downloads follow the edge's choice; it needs no route rules, policies or sessions.
     */
    mode: Type.Optional(Type.Union([Type.Literal('steer'), Type.Literal('reply-by-arrival')], { default: 'steer' })),
    links: Type.Array(LinkConfig, { minItems: 1, maxItems: 64 }),
    /** The link traffic takes when nothing steers it (the default route's). Required to steer; none in reply-by-arrival. */
    defaultLink: Type.Optional(LinkName),
    internet: InternetConfig,
    datapath: Type.Object(
      {
        pinDir: Type.String({ default: '/sys/fs/bpf/wansteer' }),
        /** Flow entries per address family (in reply-by-arrival: the arrival tables'). */
        flowTableSize: Type.Integer({ minimum: 1024, maximum: 1 << 27, default: 1 << 20 }),
        /** Flows not seen for this long are removed from the table (in reply-by-arrival: not arrived for this long). */
        flowIdleSeconds: Type.Integer({ minimum: 1, maximum: 86_400, default: 300 }),
        /** Keep all state in memory and touch no kernel object (for trying the API). */
        dryRun: Type.Boolean({ default: false }),
      },
      { additionalProperties: false, default: {} },
    ),
    listen: Type.Object(
      {
        /** REST API, session intake (HTTP), /metrics, /healthz, /readyz. */
        http: Type.Optional(HostPort),
        /** gRPC session intake. */
        grpc: Type.Optional(HostPort),
      },
      { additionalProperties: false, default: {} },
    ),
    auth: Type.Object(
      {
        /** File holding the bearer token that policy writes need (standalone mode). */
        tokenFile: Type.Optional(Type.String({ minLength: 1 })),
      },
      { additionalProperties: false, default: {} },
    ),
    intake: Type.Object(
      {
        /** Node-level proxies (gateways) that may report sessions of any local address. */
        allowedProxies: Type.Array(IpAddress, { default: [], maxItems: 1024 }),
        /** Session reports per second per client address. */
        ratePerClient: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 5_000 }),
        /** Most sessions in one batch report. */
        maxBatch: Type.Integer({ minimum: 1, maximum: 100_000, default: 1_000 }),
      },
      { additionalProperties: false, default: {} },
    ),
    rules: Type.Union(
      [
        Type.Object({ source: Type.Literal('directory'), directory: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
        Type.Object(
          {
            source: Type.Literal('cluster'),
            /** Namespaces to watch; empty: all. */
            namespaces: Type.Array(Type.String(), { default: [] }),
          },
          { additionalProperties: false },
        ),
      ],
      { default: { source: 'directory', directory: '/etc/wansteer/rules' } },
    ),
    policies: Type.Union(
      [
        Type.Object({ store: Type.Literal('file'), file: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
        Type.Object({ store: Type.Literal('cluster'), namespace: Type.String({ default: 'wansteer-system' }) }, { additionalProperties: false }),
      ],
      { default: { store: 'file', file: '/var/lib/wansteer/policies.yaml' } },
    ),
    /** Node-local state that must outlive the agent (policy id assignments). */
    stateDir: Type.String({ default: '/var/lib/wansteer' }),
    log: Type.Object(
      { level: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace'].map((l) => Type.Literal(l)), { default: 'info' }) },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export type AgentConfig = Static<typeof AgentConfig>;
export type LinkConfig = Static<typeof LinkConfig>;
export type ProbeConfig = Static<typeof ProbeConfig>;
export type InternetConfig = Static<typeof InternetConfig>;

/** Link i's routing table, for an internet link: its own `table`, or internet.tableBase + i. */
export function linkTable(config: Pick<AgentConfig, 'internet' | 'links'>, i: number): number {
  return config.links[i]?.table ?? config.internet.tableBase + i;
}

/** The addresses a link's probes go to: `targets`, or the one `target` (the config check ensures one of them). */
export function probeTargets(probe: ProbeConfig): string[] {
  return probe.targets ?? (probe.target !== undefined ? [probe.target] : []);
}
