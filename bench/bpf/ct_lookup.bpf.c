// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ct_lookup.bpf.c - bench only: the road not taken for matching through NAT. At the WAN
 * egress, look the packet's conntrack entry up again with bpf_skb_ct_lookup (the reply tuple
 * of the post-NAT packet finds it), read the original direction's tuple, release the entry,
 * and look the flow up by that. ws_bench_parse_lookup is the same program without the
 * conntrack part: the difference between the two is what the lookup costs per packet.
 * steer.bpf.c reads the entry the packet already carries instead (lib/conntrack.h).
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "steer_abi.h"
#include "parse.h"
#include "conntrack.h"

struct bpf_ct_opts___ws {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u16 ct_zone_id;
	__u8 ct_zone_dir;
	__u8 reserved[3];
};

struct nf_conn___ws_lookup {
	struct ws_nf_tuple_hash tuplehash[2];
} __attribute__((preserve_access_index));

extern struct nf_conn___ws_lookup *bpf_skb_ct_lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple,
						    __u32 tuple_sz, struct bpf_ct_opts___ws *opts, __u32 opts_sz) __ksym;
extern void bpf_ct_release(struct nf_conn___ws_lookup *ct) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ws_flow4_key);
	__type(value, struct ws_flow_val);
} ws_bench_flows SEC(".maps");

static __always_inline int ws_bench(struct __sk_buff *skb, const bool conntrack)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	union ws_flow_key key __attribute__((aligned(8))) = {};
	struct ws_pkt pkt = {};
	struct ws_flow_val *flow;

	if (ws_parse_eth(skb, data, data_end, &pkt, &key) != WS_PARSED || pkt.family != WS_FAMILY_IPV4)
		return TC_ACT_OK;
	if (conntrack) {
		struct bpf_ct_opts___ws opts = { .netns_id = -1, .l4proto = key.v4.proto };
		struct bpf_sock_tuple t = {};
		struct nf_conn___ws_lookup *ct;

		/* the post-NAT packet turned around is the entry's reply tuple */
		t.ipv4.saddr = key.v4.daddr;
		t.ipv4.daddr = key.v4.saddr;
		t.ipv4.sport = key.v4.dport;
		t.ipv4.dport = key.v4.sport;
		ct = bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &opts, sizeof(opts));
		if (ct) {
			key.v4.saddr = ct->tuplehash[0].tuple.src.u3.ip;
			key.v4.sport = ct->tuplehash[0].tuple.src.u.all;
			bpf_ct_release(ct);
		}
	}
	flow = bpf_map_lookup_elem(&ws_bench_flows, &key.v4);
	return flow ? TC_ACT_REDIRECT : TC_ACT_OK;
}

SEC("tc")
int ws_bench_parse_lookup(struct __sk_buff *skb)
{
	return ws_bench(skb, false);
}

SEC("tc")
int ws_bench_ct_lookup(struct __sk_buff *skb)
{
	return ws_bench(skb, true);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
