// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * steer.bpf.c - tc egress program on each WAN link: steers a session's
 * packets to the link its policy names (bpf_redirect_neigh) and/or marks
 * them with a DSCP.
 *
 * flow (5-tuple) or DSCP -> policy id -> policy (action, link, dscp) -> link.
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

/*
 * The layout of the maps this object was built with (steer_abi.h), read by the
 * agent from the object before it loads it, to know what it adopts or migrates.
 */
const volatile __u32 ws_layout_version = WS_LAYOUT_VERSION;

/* From linux/socket.h, which is not usable from BPF programs. */
#define WS_AF_INET	2
#define WS_AF_INET6	10

/* Send the packet out of link; the target link's own pass counts it there. */
static __always_inline int ws_redirect(struct __sk_buff *skb,
				       const struct ws_link *link,
				       const struct ws_pkt *pkt, const bool l2)
{
	struct bpf_redir_neigh nh;
	__u32 len = skb->len;

	if (!l2) {
		/*
		 * bpf_redirect_neigh() drops an skb without a MAC header in front
		 * of the network header: give it room for one, as the helper
		 * intends for L3 devices. It fills in the real header itself.
		 */
		if (bpf_skb_change_head(skb, ETH_HLEN, 0)) {
			/* it leaves on its original link */
			ws_count_reason(WS_R_REDIRECT_FAILED, len);
			return TC_ACT_OK;
		}
	} else {
		/*
		 * The tags belong to this link (the target builds its own L2), and
		 * bpf_redirect_neigh() drops packets with a tag in the data.
		 */
		__u32 tags = pkt->vlan_tags + (skb->vlan_present ? 1 : 0);

		/* each pop takes one tag (offloaded first), at most 2 + 1 */
		if (tags > 0)
			bpf_skb_vlan_pop(skb);
		if (tags > 1)
			bpf_skb_vlan_pop(skb);
		if (tags > 2)
			bpf_skb_vlan_pop(skb);
	}

	ws_count_reason(WS_R_REDIRECTED, len);

	/*
	 * The link's next hop for the packet's family; a v4 packet may use the
	 * v6 one (RFC 5549). With none, the kernel's FIB picks one on the link.
	 */
	if (pkt->family == WS_FAMILY_IPV4 && link->nh4) {
		nh.nh_family = WS_AF_INET;
		nh.ipv4_nh = link->nh4;
	} else if (link->nh6[0] | link->nh6[1] | link->nh6[2] | link->nh6[3]) {
		nh.nh_family = WS_AF_INET6;
		__builtin_memcpy(nh.ipv6_nh, link->nh6, sizeof(nh.ipv6_nh));
	} else {
		return bpf_redirect_neigh(link->ifindex, NULL, 0, 0);
	}
	return bpf_redirect_neigh(link->ifindex, &nh, sizeof(nh), 0);
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
	__u32 reason, id, link_id, dscp, *dscp_id;
	__u64 now;

	if (l2)
		reason = ws_parse_eth(skb, data, data_end, &pkt, &key);
	else
		reason = ws_parse_l3(skb, data, data_end, &pkt, &key);
	if (reason != WS_PARSED)
		goto pass;

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
		id = flow->policy_id;
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
		dscp_id = bpf_map_lookup_elem(&ws_dscp, &dscp);
		id = dscp_id ? *dscp_id : WS_POLICY_NONE;
	}
	if (id == WS_POLICY_NONE) {
		reason = WS_R_NO_MATCH;
		goto pass;
	}

	pol = bpf_map_lookup_elem(&ws_policies, &id);
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
	link = bpf_map_lookup_elem(&ws_links, &link_id);
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
		return ws_redirect(skb, link, &pkt, l2);
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
