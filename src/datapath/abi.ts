/**
 * The TypeScript mirror of bpf/include/steer_abi.h: table sizes, action bits, the byte layout
 * of every map key and value, and the reason list. test/datapath/abi.test.ts parses the C
 * header and fails when the two drift, so change both together.
 */

/**
 * The layout of the maps this agent's object is built with (WS_LAYOUT_VERSION); the object says
 * its own (ws_layout_version), which the loader reads. docs/upgrades.md has the history.
 */
export const LAYOUT_VERSION = 1;
/** struct ws_meta.magic: the pinned stamp is ours. */
export const META_MAGIC = 0x57534c59;

export const MAX_LINKS = 64;
export const MAX_POLICIES = 4096;
export const DSCP_VALUES = 64;
export const FLOWS_DEFAULT = 1_048_576;
/** Reply-by-arrival's tables, per family, unless sized at load time (bpf/reply.bpf.c). */
export const ARRIVALS_DEFAULT = 65_536;

export const FAMILY_IPV4 = 4;
export const FAMILY_IPV6 = 6;

export const ACT_REDIRECT = 1 << 0;
export const ACT_SET_DSCP = 1 << 1;
/** Link flags (struct ws_link.flags). */
export const LINK_INTERNET = 1 << 0;

export const POLICY_NONE = 0;
export const TOUCH_INTERVAL_NS = 1_000_000_000n;

/** Map names in the BPF object, as user space finds and pins them. */
export const MapName = {
  /** IPv4 flows (struct ws_flow4_key -> ws_flow_val). */
  flows4: 'ws_flows4',
  /** IPv6 flows (struct ws_flow6_key -> ws_flow_val). */
  flows6: 'ws_flows6',
  dscp: 'ws_dscp',
  policies: 'ws_policies',
  links: 'ws_links',
  linkStats: 'ws_link_stats',
  policyStats: 'ws_policy_stats',
  reasons: 'ws_reasons',
} as const;
export type MapName = (typeof MapName)[keyof typeof MapName];

/**
 * The version stamp (struct ws_meta at key 0), pinned beside the maps. Not in the object: the
 * loader creates it, so its own layout never changes.
 */
export const MetaMapName = 'ws_meta';

/** Program names (entry points) in the BPF object. */
export const ProgramName = {
  /** Ethernet devices (optionally 802.1Q tagged). */
  eth: 'ws_egress_eth',
  /** Raw-IP devices without an L2 header (WireGuard, tun). */
  l3: 'ws_egress_l3',
} as const;

/** The reply-by-arrival object's maps (bpf/reply.bpf.c): the cloud end of overlay links. */
export const ReplyMapName = {
  /** IPv4 flows in the reply direction (struct ws_flow4_key -> ws_arrival). */
  arrivals4: 'ws_arrivals4',
  /** IPv6 flows in the reply direction (struct ws_flow6_key -> ws_arrival). */
  arrivals6: 'ws_arrivals6',
  /** Link id -> struct ws_link. */
  links: 'ws_arr_links',
  /** ifindex -> link id. */
  ifaces: 'ws_arr_ifaces',
  /** Egress outcomes (enum ws_reason), per CPU. */
  reasons: 'ws_arr_reasons',
  /** Per link: packets that arrived by it, per CPU. */
  arrived: 'ws_arr_in',
  /** Per link: replies that left by it, per CPU. */
  replied: 'ws_arr_out',
} as const;
export type ReplyMapName = (typeof ReplyMapName)[keyof typeof ReplyMapName];

/** Its programs: ingress learns the arrival link, egress sends replies back by it. */
export const ReplyProgramName = {
  arriveEth: 'ws_arrive_eth',
  arriveL3: 'ws_arrive_l3',
  replyEth: 'ws_reply_eth',
  replyL3: 'ws_reply_l3',
} as const;

/** Byte layout of each struct: total size and field offsets, as in the C header. */
export const Layout = {
  flow4Key: { size: 16, saddr: 0, daddr: 4, sport: 8, dport: 10, proto: 12, pad: 13 },
  flow6Key: { size: 40, saddr: 0, daddr: 16, sport: 32, dport: 34, proto: 36, pad: 37 },
  flowVal: { size: 16, policyId: 0, flags: 4, lastSeenNs: 8 },
  policy: { size: 16, action: 0, linkId: 4, dscp: 8, pad: 9 },
  link: { size: 28, ifindex: 0, up: 4, flags: 5, pad: 6, nh4: 8, nh6: 12 },
  arrival: { size: 16, linkId: 0, flags: 4, lastSeenNs: 8 },
  counter: { size: 16, packets: 0, bytes: 8 },
  meta: { size: 16, magic: 0, layout: 4, reserved: 8 },
} as const;

/**
 * What happened to a packet (enum ws_reason). Steering outcomes first, then the reasons a
 * packet passed untouched. `dscp_rewritten` is counted in addition to the outcome.
 */
export const Reasons = [
  'redirected',
  'on_link',
  'marked',
  'dscp_rewritten',
  'link_down',
  'link_unset',
  'no_match',
  'no_policy',
  'not_ip',
  'truncated',
  'fragment',
  'bad_header',
  'ext_headers',
  'redirect_failed',
  'bound',
] as const;
export type Reason = (typeof Reasons)[number];
export const REASON_MAX = Reasons.length;

/** tc verdicts the program returns. */
export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;
