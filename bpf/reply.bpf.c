// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * reply.bpf.c - reply-by-arrival, for a wansteer agent at the cloud end of
 * overlay links (tunnels, a private WAN): learn at tc ingress which link each
 * flow arrived on, and send the flow's replies back out of that link at tc
 * egress (bpf_redirect_neigh). The edge then chooses both directions: when it
 * moves a session to another link (a policy change, a failover), the next
 * packet that arrives moves the session's downloads too.
 *
 *   ingress (ws_arrive_*): flow, reversed -> the link it arrived on, now
 *   egress  (ws_reply_*):  flow -> link id -> link (ifindex, next hop, up)
 *
 * No sessions, no policies, no NAT lookups: both hooks see the tuples outside
 * whatever NAT this end does (ingress before it, egress after it is undone).
 * An idle flow ages out in user space, like the edge's flow table; a flow
 * with no arrival, or whose link is down, passes untouched (routed as ever).
 * Never drops.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include "steer_abi.h"
#include "stats.h"
#include "parse.h"
#include "redirect.h"

/* Flow, in the reply direction -> the link it last arrived on. LRU: a full table evicts idle flows. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_ARRIVALS_DEFAULT);
	__type(key, struct ws_flow4_key);
	__type(value, struct ws_arrival);
} ws_arrivals4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_ARRIVALS_DEFAULT);
	__type(key, struct ws_flow6_key);
	__type(value, struct ws_arrival);
} ws_arrivals6 SEC(".maps");

/* Link id -> link, as on the edge (ifindex, next hops, up). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WS_MAX_LINKS);
	__type(key, __u32);
	__type(value, struct ws_link);
} ws_arr_links SEC(".maps");

/* ifindex -> link id: which link a packet arrived on. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WS_MAX_LINKS);
	__type(key, __u32);
	__type(value, __u32);
} ws_arr_ifaces SEC(".maps");

/* Egress outcomes, one enum ws_reason each (the steering reasons this program can meet). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WS_R_MAX);
	__type(key, __u32);
	__type(value, struct ws_counter);
} ws_arr_reasons SEC(".maps");

/* Per link: packets that arrived by it (ingress), and replies that left by it (egress). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WS_MAX_LINKS);
	__type(key, __u32);
	__type(value, struct ws_counter);
} ws_arr_in SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WS_MAX_LINKS);
	__type(key, __u32);
	__type(value, struct ws_counter);
} ws_arr_out SEC(".maps");

/* The arrival's key turned around: source = this end, as its replies leave. */
static __always_inline void ws_reverse(__u8 family, union ws_flow_key *key)
{
	__be16 port;

	if (family == WS_FAMILY_IPV4) {
		__be32 a = key->v4.saddr;

		key->v4.saddr = key->v4.daddr;
		key->v4.daddr = a;
		port = key->v4.sport;
		key->v4.sport = key->v4.dport;
		key->v4.dport = port;
	} else {
		__be32 a[4];

		__builtin_memcpy(a, key->v6.saddr, sizeof(a));
		__builtin_memcpy(key->v6.saddr, key->v6.daddr, sizeof(a));
		__builtin_memcpy(key->v6.daddr, a, sizeof(a));
		port = key->v6.sport;
		key->v6.sport = key->v6.dport;
		key->v6.dport = port;
	}
}

/* Record (or refresh) the link a flow arrived on. */
static __always_inline void ws_learn(void *table, const void *key, __u32 link_id)
{
	struct ws_arrival *arr = bpf_map_lookup_elem(table, key);
	__u64 now = bpf_ktime_get_coarse_ns();

	if (!arr) {
		struct ws_arrival fresh = { .link_id = link_id, .last_seen_ns = now };

		bpf_map_update_elem(table, key, &fresh, BPF_ANY);
	} else if (arr->link_id != link_id) {
		/* the edge moved it: replies follow from the next one on */
		arr->link_id = link_id;
		arr->last_seen_ns = now;
	} else if ((__s64)(now - arr->last_seen_ns) > (__s64)WS_TOUCH_INTERVAL_NS) {
		/* at most one write per interval, as on the edge */
		arr->last_seen_ns = now;
	}
}

static __always_inline int ws_arrive(struct __sk_buff *skb, const bool l2)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	union ws_flow_key key __attribute__((aligned(8))) = {};
	struct ws_pkt pkt = {};
	__u32 ifindex = skb->ifindex, reason, link_id, *id;

	if (l2)
		reason = ws_parse_eth(skb, data, data_end, &pkt, &key);
	else
		reason = ws_parse_l3(skb, data, data_end, &pkt, &key);
	if (reason != WS_PARSED)
		return TC_ACT_OK;	/* unparsed packets teach nothing; their replies pass too */
	id = bpf_map_lookup_elem(&ws_arr_ifaces, &ifindex);
	if (!id)
		return TC_ACT_OK;	/* not a link (yet): nothing to learn */
	link_id = *id;

	ws_reverse(pkt.family, &key);
	if (pkt.family == WS_FAMILY_IPV4)
		ws_learn(&ws_arrivals4, &key.v4, link_id);
	else
		ws_learn(&ws_arrivals6, &key.v6, link_id);
	ws_count(&ws_arr_in, link_id, skb->len);
	return TC_ACT_OK;
}

static __always_inline int ws_reply(struct __sk_buff *skb, const bool l2)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	union ws_flow_key key __attribute__((aligned(8))) = {};
	struct ws_pkt pkt = {};
	struct ws_arrival *arr;
	struct ws_link *link;
	__u32 reason, link_id;

	if (l2)
		reason = ws_parse_eth(skb, data, data_end, &pkt, &key);
	else
		reason = ws_parse_l3(skb, data, data_end, &pkt, &key);
	if (reason != WS_PARSED)
		goto pass;

	/* one map per call site, so the verifier inlines each lookup (as in steer.bpf.c) */
	if (pkt.family == WS_FAMILY_IPV4) {
		arr = bpf_map_lookup_elem(&ws_arrivals4, &key.v4);
		barrier_var(arr);
	} else {
		arr = bpf_map_lookup_elem(&ws_arrivals6, &key.v6);
	}
	if (!arr) {
		reason = WS_R_NO_MATCH;
		goto pass;
	}
	link_id = arr->link_id;
	link = bpf_map_lookup_elem(&ws_arr_links, &link_id);
	if (!link || !link->ifindex) {
		reason = WS_R_LINK_UNSET;
		goto pass;
	}
	if (!link->up) {
		reason = WS_R_LINK_DOWN;
		goto pass;
	}
	if (link->ifindex != skb->ifindex)
		return ws_redirect(skb, link, &pkt, l2, &ws_arr_reasons);

	/* already on its link: routed here, or our own redirect's second pass */
	reason = WS_R_ON_LINK;
	ws_count(&ws_arr_out, link_id, skb->len);
pass:
	ws_count(&ws_arr_reasons, reason, skb->len);
	return TC_ACT_OK;
}

SEC("tc")
int ws_arrive_eth(struct __sk_buff *skb)
{
	return ws_arrive(skb, true);
}

SEC("tc")
int ws_arrive_l3(struct __sk_buff *skb)
{
	return ws_arrive(skb, false);
}

SEC("tc")
int ws_reply_eth(struct __sk_buff *skb)
{
	return ws_reply(skb, true);
}

SEC("tc")
int ws_reply_l3(struct __sk_buff *skb)
{
	return ws_reply(skb, false);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
