// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ref_lru.bpf.c - the reference the datapath benchmark holds the steering
 * program to: what any per-flow steering must pay on an Ethernet frame, and
 * no more. Read the 5-tuple at fixed offsets (plain IPv4 without options, or
 * IPv6 without extension headers), look it up once in an LRU hash with the
 * flow tables' key, value and size, and return. No parsing beyond the bounds
 * check, no counters, no action.
 *
 * The benchmark points ref_flows4/ref_flows6 at the steering program's pinned
 * ws_flows4/ws_flows6, so both programs look up the same entries in the same
 * table. The verdict says whether the lookup hit (TC_ACT_OK) or missed
 * (TC_ACT_UNSPEC), so the benchmark can check it measures what it means to.
 *
 * ws_ref_redirect4 and ws_ref_redirect6 add what a steering datapath must
 * also do on a hit: hand the packet to bpf_redirect_neigh() (with a next hop,
 * and without one, as the steering program does for a link without an IPv6
 * next hop). ws_ref_dscp4 adds the other action's kernel call: the same
 * 12-byte bpf_skb_store_bytes() the steering program writes a new DSCP and
 * IPv4 header checksum with (here the bytes as they are). The benchmark shows
 * them beside the reference, so that a machine where kernel calls are dear
 * can be told from a program that does too much.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include "steer_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_FLOWS_DEFAULT);
	__type(key, struct ws_flow4_key);
	__type(value, struct ws_flow_val);
} ref_flows4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_FLOWS_DEFAULT);
	__type(key, struct ws_flow6_key);
	__type(value, struct ws_flow_val);
} ref_flows6 SEC(".maps");

/* The IPv4 5-tuple at fixed offsets: plain Ethernet + IPv4 without options. */
static __always_inline bool ref_key4(struct __sk_buff *skb, struct ws_flow4_key *key)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	__u32 *ports = (void *)(ip + 1);

	if ((void *)(ports + 1) > data_end)
		return false;
	key->saddr = ip->saddr;
	key->daddr = ip->daddr;
	*(__u32 *)&key->sport = *ports;
	key->proto = ip->protocol;
	return true;
}

SEC("tc")
int ws_ref_lru4(struct __sk_buff *skb)
{
	struct ws_flow4_key key __attribute__((aligned(8))) = {};

	if (!ref_key4(skb, &key))
		return TC_ACT_UNSPEC;
	return bpf_map_lookup_elem(&ref_flows4, &key) ? TC_ACT_OK : TC_ACT_UNSPEC;
}

/* Any interface and next hop: under BPF_PROG_TEST_RUN nothing is sent. */
#define WS_REF_IFINDEX	1000
#define WS_REF_NEXT_HOP	0x010200c0	/* 192.0.2.1 as it sits in memory, on x86 and arm64 */
#define WS_AF_INET	2

SEC("tc")
int ws_ref_redirect4(struct __sk_buff *skb)
{
	struct ws_flow4_key key __attribute__((aligned(8))) = {};
	struct bpf_redir_neigh nh = { .nh_family = WS_AF_INET, .ipv4_nh = WS_REF_NEXT_HOP };

	if (!ref_key4(skb, &key) || !bpf_map_lookup_elem(&ref_flows4, &key))
		return TC_ACT_UNSPEC;
	return bpf_redirect_neigh(WS_REF_IFINDEX, &nh, sizeof(nh), 0);
}

SEC("tc")
int ws_ref_dscp4(struct __sk_buff *skb)
{
	struct ws_flow4_key key __attribute__((aligned(8))) = {};
	void *data, *data_end;
	__u8 hdr[12];

	if (!ref_key4(skb, &key) || !bpf_map_lookup_elem(&ref_flows4, &key))
		return TC_ACT_UNSPEC;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (data + ETH_HLEN + sizeof(hdr) > data_end)
		return TC_ACT_UNSPEC;
	__builtin_memcpy(hdr, data + ETH_HLEN, sizeof(hdr));
	return bpf_skb_store_bytes(skb, ETH_HLEN, hdr, sizeof(hdr), 0) ? TC_ACT_UNSPEC : TC_ACT_OK;
}

/* The IPv6 5-tuple at fixed offsets: plain Ethernet + IPv6 without extension headers. */
static __always_inline bool ref_key6(struct __sk_buff *skb, struct ws_flow6_key *key)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	__u32 *ports = (void *)(ip6 + 1);

	if ((void *)(ports + 1) > data_end)
		return false;
	/* saddr and daddr are adjacent in both the header and the key */
	__builtin_memcpy(key->saddr, &ip6->saddr, 2 * sizeof(ip6->saddr));
	*(__u32 *)&key->sport = *ports;
	key->proto = ip6->nexthdr;
	return true;
}

SEC("tc")
int ws_ref_lru6(struct __sk_buff *skb)
{
	struct ws_flow6_key key __attribute__((aligned(8))) = {};

	if (!ref_key6(skb, &key))
		return TC_ACT_UNSPEC;
	return bpf_map_lookup_elem(&ref_flows6, &key) ? TC_ACT_OK : TC_ACT_UNSPEC;
}

SEC("tc")
int ws_ref_redirect6(struct __sk_buff *skb)
{
	struct ws_flow6_key key __attribute__((aligned(8))) = {};

	if (!ref_key6(skb, &key) || !bpf_map_lookup_elem(&ref_flows6, &key))
		return TC_ACT_UNSPEC;
	return bpf_redirect_neigh(WS_REF_IFINDEX, NULL, 0, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
