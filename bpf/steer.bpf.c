// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * steer.bpf.c - tc egress program on each WAN link: steers a session's
 * packets to the link its policy names (bpf_redirect_neigh) and/or marks
 * them with a DSCP.
 *
 * flow (5-tuple) or DSCP -> policy id -> policy (action, link, dscp) -> link.
 * The flow's 5-tuple is the one the packet had when it entered the node: for
 * a packet NAT changed since (a pod behind the masquerade, a NodePort's
 * DNAT), the pre-NAT tuple its conntrack entry keeps, which is what the
 * session was reported with (lib/conntrack.h).
 * Anything we cannot parse or that matches nothing passes untouched; every
 * packet is counted under exactly one enum ws_reason. Never drops.
 *
 * Two entry points share one body: ws_egress_eth for Ethernet devices,
 * ws_egress_l3 for raw-IP devices (WireGuard, tun).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include "steer_abi.h"
#include "maps.h"
#include "stats.h"
#include "parse.h"
#include "dscp.h"
#include "clock.h"
#include "redirect.h"
#include "conntrack.h"

/*
 * The layout of the maps this object was built with (steer_abi.h), read by the
 * agent from the object before it loads it, to know what it adopts or migrates.
 */
const volatile __u32 ws_layout_version = WS_LAYOUT_VERSION;

/* Exactly one outcome per packet, plus WS_R_DSCP_REWRITTEN when it applies. */
static __always_inline void ws_count_reason(enum ws_reason reason, __u32 len)
{
	ws_count(&ws_reasons, reason, len);
}

static __always_inline int ws_egress(struct __sk_buff *skb, const bool l2)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	/* zeroed once (the pad bytes), 8-aligned so it clears in five stores */
	union ws_flow_key key __attribute__((aligned(8))) = {};
	struct ws_pkt pkt = {};
	struct ws_flow_val *flow;
	struct ws_policy *pol;
	struct ws_link *link;
	__u32 reason, id, link_id, dscp, *id_at;
	__u64 now;

	if (l2)
		reason = ws_parse_eth(skb, data, data_end, &pkt, &key);
	else
		reason = ws_parse_l3(skb, data, data_end, &pkt, &key);
	if (reason != WS_PARSED)
		goto pass;
#ifndef WS_NO_NAT_ORIGIN	/* bench/overlay.ts builds the program without it, to measure it */
	ws_nat_origin(skb, pkt.family, &key);
#endif

	/*
	 * Two call sites, each with its own map: the verifier inlines a lookup
	 * only when a call site always sees the same map. The barrier stops
	 * clang from merging the two calls into one.
	 */
	if (pkt.family == WS_FAMILY_IPV4) {
		flow = bpf_map_lookup_elem(&ws_flows4, &key.v4);
		barrier_var(flow);
	} else {
		flow = bpf_map_lookup_elem(&ws_flows6, &key.v6);
	}
	if (flow) {
		id_at = &flow->policy_id;
		id = *id_at;
		/*
		 * Touch at most once per interval: no map update per packet. The
		 * coarse clock is CLOCK_MONOTONIC at tick resolution, and far
		 * cheaper, the more so read once per tick (clock.h); signed so a
		 * value written by user space slightly ahead of the coarse clock
		 * does not look stale.
		 */
		now = ws_coarse_ns();
		if ((__s64)(now - flow->last_seen_ns) > (__s64)WS_TOUCH_INTERVAL_NS)
			flow->last_seen_ns = now;
	} else {
		dscp = pkt.tclass >> 2;
		id_at = bpf_map_lookup_elem(&ws_dscp, &dscp);
		id = id_at ? *id_at : WS_POLICY_NONE;
	}
	if (id == WS_POLICY_NONE) {
		reason = WS_R_NO_MATCH;
		goto pass;
	}

	/*
	 * Keyed by the id where it lies, in the flow or DSCP entry (and below,
	 * the link id in the policy): the inlined lookup reads it from there,
	 * not from a copy on the stack, one store and reload fewer on the chain
	 * of loads a hit waits for.
	 */
	pol = bpf_map_lookup_elem(&ws_policies, id_at);
	if (!pol || !pol->action) {
		reason = WS_R_NO_POLICY;
		goto pass;
	}

	if ((pol->action & WS_ACT_SET_DSCP) &&
	    (pkt.tclass >> 2) != (pol->dscp & 0x3f)) {
		if (!ws_set_dscp(skb, pkt.l3_off, pkt.family, pkt.tclass,
				 pol->dscp & 0x3f))
			ws_count_reason(WS_R_DSCP_REWRITTEN, skb->len);
	}

	if (!(pol->action & WS_ACT_REDIRECT)) {
		reason = WS_R_MARKED;
		goto pass_policy;
	}

	link_id = pol->link_id;
	link = bpf_map_lookup_elem(&ws_links, &pol->link_id);
	if (!link || !link->ifindex) {
		reason = WS_R_LINK_UNSET;
		goto pass_policy;
	}
	if (!link->up) {
		reason = WS_R_LINK_DOWN;
		goto pass_policy;
	}
	if (link->ifindex != skb->ifindex) {
		/*
		 * An internet link is chosen before routing (a mark, masquerade to
		 * its address): a packet here is bound to the link it leaves by.
		 */
		if (link->flags & WS_LINK_INTERNET) {
			reason = WS_R_BOUND;
			goto pass_policy;
		}
		return ws_redirect(skb, link, &pkt, l2, &ws_reasons);
	}

	/* already on its link: routed here, or our own redirect's second pass */
	reason = WS_R_ON_LINK;
	ws_count(&ws_link_stats, link_id, skb->len);
pass_policy:
	ws_count(&ws_policy_stats, id, skb->len);
pass:
	ws_count_reason(reason, skb->len);
	return TC_ACT_OK;
}

SEC("tc")
int ws_egress_eth(struct __sk_buff *skb)
{
	return ws_egress(skb, true);
}

SEC("tc")
int ws_egress_l3(struct __sk_buff *skb)
{
	return ws_egress(skb, false);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
