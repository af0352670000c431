/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * parse.h - header parsing for the steering program: Ethernet (+ up to two
 * VLAN tags) or raw IP, IPv4 (with options), IPv6 (with extension headers),
 * and the TCP/UDP ports. Fills the flow key of the packet's family.
 *
 * Every helper returns WS_PARSED or the enum ws_reason the packet passes
 * with. Every read is bounds-checked against data_end: the caller passes
 * the packet untouched on any other answer (fail open).
 */
#ifndef __WS_LIB_PARSE_H
#define __WS_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include "steer_abi.h"

/* Not a reason: parsing succeeded and the key is complete. */
#define WS_PARSED		WS_R_MAX

/* VLAN tags we walk in the packet data (802.1ad outer + 802.1Q inner). */
#define WS_VLAN_MAX		2
/* IPv6 extension headers we walk before giving up (WS_R_EXT_HEADERS). */
#define WS_IPV6_EXT_MAX		6

/* From include/net/ip.h, which is not uapi. */
#define WS_IP_MF		0x2000
#define WS_IP_OFFSET		0x1fff

struct ws_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* What the action stage needs to find its way back into the packet. */
struct ws_pkt {
	__u32 l3_off;		/* IP header offset from skb->data */
	__u8  family;		/* WS_FAMILY_*: which key below is filled */
	__u8  tclass;		/* IPv4 TOS / IPv6 traffic class: DSCP << 2 | ECN */
	__u8  vlan_tags;	/* tags in the packet data (not the offloaded one) */
};

/* The key for the packet's flow table, by pkt->family. */
union ws_flow_key {
	struct ws_flow4_key v4;
	struct ws_flow6_key v6;
};

/*
 * TCP, UDP and SCTP all open with sport, dport: copy them as one word
 * into ports, which is sport in either key (dport follows it).
 */
static __always_inline __u32 ws_parse_ports(void *l4, void *data_end,
					    __u8 proto, __be16 *ports)
{
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP)
		return WS_PARSED;	/* ICMP, ESP, GRE...: ports stay 0 */
	if (l4 + sizeof(__u32) > data_end)
		return WS_R_TRUNCATED;
	*(__u32 *)ports = *(__u32 *)l4;
	return WS_PARSED;
}

static __always_inline __u32 ws_parse_ipv4(struct __sk_buff *skb, void *data,
					   void *data_end, struct ws_pkt *pkt,
					   struct ws_flow4_key *key)
{
	struct iphdr *ip = data + pkt->l3_off;
	__u32 hlen = sizeof(*ip), tot_len;

	/*
	 * Most packets: no options, and the 4 bytes after the header (the
	 * ports, if any) in the linear data. One bounds check covers both, and
	 * version and IHL are one byte to compare. Any other header is checked
	 * piece by piece, which would give these the same outcome.
	 */
	if (!((void *)(ip + 1) + sizeof(__u32) <= data_end && *(__u8 *)ip == 0x45)) {
		if ((void *)(ip + 1) > data_end)
			return WS_R_TRUNCATED;
		if (ip->version != 4 || ip->ihl < 5)
			return WS_R_BAD_HEADER;
		hlen = ip->ihl * 4;
	}
	tot_len = bpf_ntohs(ip->tot_len);
	/* tot_len 0 is legal only on a BIG TCP GSO packet (> 64 KiB) */
	if (tot_len < hlen && !(tot_len == 0 && skb->gso_size))
		return WS_R_BAD_HEADER;
	if (tot_len > skb->len - pkt->l3_off)
		return WS_R_BAD_HEADER;
	/* any piece of a fragmented datagram: all pieces keep one path */
	if (ip->frag_off & bpf_htons(WS_IP_MF | WS_IP_OFFSET))
		return WS_R_FRAGMENT;

	pkt->tclass = ip->tos;
	pkt->family = WS_FAMILY_IPV4;
	key->proto = ip->protocol;
	key->saddr = ip->saddr;
	key->daddr = ip->daddr;
	return ws_parse_ports((void *)ip + hlen, data_end, key->proto, &key->sport);
}

static __always_inline int ws_ipv6_is_ext(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_AH;
}

static __always_inline __u32 ws_parse_ipv6(void *data, void *data_end,
					   struct ws_pkt *pkt,
					   struct ws_flow6_key *key)
{
	struct ipv6hdr *ip6 = data + pkt->l3_off;
	__u32 off = pkt->l3_off + sizeof(*ip6);
	__u8 nexthdr, *ext;
	int i;

	if ((void *)(ip6 + 1) > data_end)
		return WS_R_TRUNCATED;
	if (ip6->version != 6)
		return WS_R_BAD_HEADER;
	/* payload_len is not checked: BIG TCP GSO packets carry 0 there */

	pkt->tclass = bpf_ntohs(*(__be16 *)ip6) >> 4;
	nexthdr = ip6->nexthdr;
	pkt->family = WS_FAMILY_IPV6;
	/* saddr and daddr are adjacent in both the header and the key */
	__builtin_memcpy(key->saddr, &ip6->saddr, 2 * sizeof(ip6->saddr));

#pragma unroll
	for (i = 0; i < WS_IPV6_EXT_MAX; i++) {
		if (!ws_ipv6_is_ext(nexthdr))
			break;
		ext = data + off;
		if ((void *)(ext + 2) > data_end)
			return WS_R_TRUNCATED;
		/* AH counts 4-byte units minus 2, the others 8-byte units minus 1 */
		if (nexthdr == IPPROTO_AH)
			off += (ext[1] + 2) * 4;
		else
			off += (ext[1] + 1) * 8;
		nexthdr = ext[0];
	}
	if (nexthdr == IPPROTO_FRAGMENT)
		return WS_R_FRAGMENT;
	if (ws_ipv6_is_ext(nexthdr))
		return WS_R_EXT_HEADERS;

	key->proto = nexthdr;
	return ws_parse_ports(data + off, data_end, nexthdr, &key->sport);
}

/*
 * Ethernet device. With VLAN offload the tag sits in skb metadata and the
 * data already shows the inner ethertype; otherwise walk the tags here.
 */
static __always_inline __u32 ws_parse_eth(struct __sk_buff *skb, void *data,
					  void *data_end, struct ws_pkt *pkt,
					  union ws_flow_key *key)
{
	struct ethhdr *eth = data;
	struct ws_vlan_hdr *vh;
	__u32 off = sizeof(*eth);
	__be16 proto;
	int i;

	if ((void *)(eth + 1) > data_end)
		return WS_R_TRUNCATED;
	/* one 16-bit load: struct ethhdr is packed, so its field reads a byte at a time */
	proto = *(__be16 *)(data + __builtin_offsetof(struct ethhdr, h_proto));

#pragma unroll
	for (i = 0; i < WS_VLAN_MAX; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		vh = data + off;
		if ((void *)(vh + 1) > data_end)
			return WS_R_TRUNCATED;
		proto = vh->proto;
		off += sizeof(*vh);
		pkt->vlan_tags++;
	}

	pkt->l3_off = off;
	if (proto == bpf_htons(ETH_P_IP))
		return ws_parse_ipv4(skb, data, data_end, pkt, &key->v4);
	if (proto == bpf_htons(ETH_P_IPV6))
		return ws_parse_ipv6(data, data_end, pkt, &key->v6);
	return WS_R_NOT_IP;
}

/*
 * Raw-IP device (WireGuard, tun): no L2 header, the first nibble is the IP
 * version. The nibble, not skb->protocol, decides: it is what the packet
 * is, and it also holds under BPF_PROG_TEST_RUN, which sets skb->protocol
 * from bytes 12-13 as if they were an ethertype.
 */
static __always_inline __u32 ws_parse_l3(struct __sk_buff *skb, void *data,
					 void *data_end, struct ws_pkt *pkt,
					 union ws_flow_key *key)
{
	__u8 *first = data;

	if ((void *)(first + 1) > data_end)
		return WS_R_TRUNCATED;
	pkt->l3_off = 0;
	switch (*first >> 4) {
	case 4:
		return ws_parse_ipv4(skb, data, data_end, pkt, &key->v4);
	case 6:
		return ws_parse_ipv6(data, data_end, pkt, &key->v6);
	default:
		return WS_R_NOT_IP;
	}
}

#endif /* __WS_LIB_PARSE_H */
