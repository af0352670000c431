/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * steer_abi.h - the map layouts shared by the BPF program and user space.
 *
 * This is the one place these layouts are defined. src/datapath/abi.ts mirrors
 * them byte for byte, and test/datapath/abi.test.ts parses this file and fails
 * when the two drift. Change both together.
 *
 * Only fixed-width types, explicit padding, no bitfields: every field's offset
 * must be the same in C and in TypeScript.
 *
 * Layout versions. The maps outlive the agent (pinned under bpffs), so the
 * layout they hold is versioned: WS_LAYOUT_VERSION is the layout of the maps
 * this header describes; the object carries it (ws_layout_version in
 * steer.bpf.c) and the agent stamps it into the pins (struct ws_meta). An
 * agent refuses pins of a newer layout than its object's, and migrates older
 * ones (docs/upgrades.md).
 *   1  the first stamped layout: the one below. Unstamped pins are read as
 *      layout 1 (the layout before it differs only in ws_link.flags, a pad
 *      byte before, zero = not an internet link).
 * Bump it when a map's key, value or type changes, or a field's meaning does
 * (rename the field then too: the migration matches fields by name). Adding
 * a map needs no bump: an agent creates the maps the pins lack and leaves
 * alone the ones it does not know.
 */
#ifndef __WANSTEER_STEER_ABI_H
#define __WANSTEER_STEER_ABI_H

#include <linux/types.h>

#ifndef WS_TEST_LAYOUT_NEXT
#define WS_LAYOUT_VERSION     1
#else
/*
 * Test only (bpf/Makefile test-variants, never shipped): a layout 2 whose flow
 * value has a new field, and whose ws_reasons has a slot more (lib/maps.h).
 */
#define WS_LAYOUT_VERSION     2
#endif

/*
 * The version stamp: one entry (key 0) in the pinned array map ws_meta, which
 * the agent creates itself (it is not in the object, so its own layout never
 * changes). The programs never read it.
 */
#define WS_META_MAGIC         0x57534c59U /* 'WSLY' */

struct ws_meta {
	__u32 magic;         /* WS_META_MAGIC */
	__u32 layout;        /* WS_LAYOUT_VERSION of the agent that wrote the pins */
	__u64 reserved;      /* zero */
};                           /* 16 bytes */

/* Table sizes. The flow tables' size is set at load time (default below, per family). */
#define WS_MAX_LINKS          64
#define WS_MAX_POLICIES       4096
#define WS_DSCP_VALUES        64
#define WS_FLOWS_DEFAULT      1048576

/* Address families: which flow table a flow lives in. */
#define WS_FAMILY_IPV4        4
#define WS_FAMILY_IPV6        6

/* Policy actions (bit set). A policy with no action bit is empty. */
#define WS_ACT_REDIRECT       (1U << 0)   /* send out of the policy's link */
#define WS_ACT_SET_DSCP       (1U << 1)   /* rewrite the DSCP, keep ECN */

/* Policy id 0 means "no policy": flow and DSCP entries point at ids >= 1. */
#define WS_POLICY_NONE        0

/* A flow's last-seen time is written at most this often (per flow). */
#define WS_TOUCH_INTERVAL_NS  1000000000ULL

/*
 * Flow keys: the packet's 5-tuple as it entered the node, before any NAT
 * (source = the local end): what the session's proxy saw and reported. One
 * table per family as Cilium splits CT4/CT6:
 * the IPv4 key is 16 bytes, so the hash reads 4 words, not 10. Ports are
 * in network byte order; zero for protocols without ports.
 */
struct ws_flow4_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8  proto;         /* IPPROTO_* */
	__u8  pad[3];        /* must be zero */
};                           /* 16 bytes */

struct ws_flow6_key {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8  proto;         /* IPPROTO_* */
	__u8  pad[3];        /* must be zero */
};                           /* 40 bytes */

/* The value of both flow tables. */
struct ws_flow_val {
	__u32 policy_id;
	__u32 flags;         /* reserved, zero */
	__u64 last_seen_ns;  /* bpf_ktime_get_ns() clock (CLOCK_MONOTONIC) */
#ifdef WS_TEST_LAYOUT_NEXT
	__u64 test_next;     /* the test layout's new field; zero = what layout 1 meant */
#endif
};                           /* 16 bytes */

/* Policy table: array indexed by policy id. */
struct ws_policy {
	__u32 action;        /* WS_ACT_* bits; 0 = empty slot */
	__u32 link_id;       /* index into the link table, for WS_ACT_REDIRECT */
	__u8  dscp;          /* 0..63, for WS_ACT_SET_DSCP */
	__u8  pad[7];        /* must be zero */
};                           /* 16 bytes */

/* Link flags. */
#define WS_LINK_INTERNET      (1U << 0)   /* own address, NAT on the node: never redirected to */

/*
 * Link table: array indexed by link id. A link has a next hop per family
 * because bpf_redirect_neigh() drops an IPv6 packet given an IPv4 next hop.
 * An all-zero next hop means "none": the kernel's FIB picks one on the link.
 * IPv4 packets may use the IPv6 next hop (RFC 5549) when there is no IPv4 one.
 */
struct ws_link {
	__u32 ifindex;       /* 0 = slot unused */
	__u8  up;            /* 0 = down: redirects to it fall back */
	__u8  flags;         /* WS_LINK_* bits */
	__u8  pad[2];        /* must be zero */
	__be32 nh4;          /* IPv4 next hop, 0 = none */
	__be32 nh6[4];       /* IPv6 next hop, :: = none */
};                           /* 28 bytes */

/*
 * Reply-by-arrival (reply.bpf.c, at the cloud end of overlay links). The same
 * flow keys, in the reply direction (source = this end, as replies leave),
 * map to the link the flow's packets last arrived on; replies leave by it.
 */
#define WS_ARRIVALS_DEFAULT   65536

struct ws_arrival {
	__u32 link_id;       /* index into that object's link table */
	__u32 flags;         /* reserved, zero */
	__u64 last_seen_ns;  /* last arrival, bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC) */
};                           /* 16 bytes */

/* Per-CPU packet and byte counter, used by every stats map. */
struct ws_counter {
	__u64 packets;
	__u64 bytes;
};                           /* 16 bytes */

/*
 * What happened to a packet: one counter per reason. The first group are
 * steering outcomes, the rest are the reasons a packet passed untouched.
 * Every packet is counted under exactly one reason, except
 * WS_R_DSCP_REWRITTEN, which is counted in addition to the outcome.
 * src/datapath/abi.ts mirrors this list (names and numbers).
 */
enum ws_reason {
	WS_R_REDIRECTED      = 0,  /* sent to its policy's link */
	WS_R_ON_LINK         = 1,  /* steered flow already leaving by its link */
	WS_R_MARKED          = 2,  /* DSCP-only policy: marked, left on its path */
	WS_R_DSCP_REWRITTEN  = 3,  /* DSCP byte changed (in addition to the outcome) */
	WS_R_LINK_DOWN       = 4,  /* policy's link is down: passed on the original link */
	WS_R_LINK_UNSET      = 5,  /* policy names a link slot with no interface */
	WS_R_NO_MATCH        = 6,  /* no flow entry and no DSCP entry */
	WS_R_NO_POLICY       = 7,  /* entry points at an empty policy slot */
	WS_R_NOT_IP          = 8,  /* not IPv4/IPv6 (ARP, LLDP, ...) */
	WS_R_TRUNCATED       = 9,  /* headers end before the fields we need */
	WS_R_FRAGMENT        = 10, /* IP fragment: not steered, all pieces stay together */
	WS_R_BAD_HEADER      = 11, /* malformed IP header (version, IHL, length) */
	WS_R_EXT_HEADERS     = 12, /* IPv6 extension chain too long to walk */
	WS_R_REDIRECT_FAILED = 13, /* could not prepare the redirect: passed on the original link */
	WS_R_BOUND           = 14, /* policy's link is an internet link: the connection stays on the link it is bound to */
	WS_R_MAX             = 15,
};

#endif /* __WANSTEER_STEER_ABI_H */
