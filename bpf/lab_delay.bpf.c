// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * lab_delay.bpf.c - the kernel half of the lab's WAN delay line (scripts/delay-line.py): this
 * kernel has no sch_netem, and none of the qdiscs that hold packets by timestamp.
 *
 * On a device's tc egress, every unicast frame that the delay line has not released yet (its
 * mark is not WS_LAB_RELEASED) is turned around into the same device's ingress. There it is
 * not for this host (its destination MAC is the peer's), so the stack drops it, but the delay
 * line's packet socket has seen it first; after the delay it sends the frame again, marked, and
 * this program lets it through. Only unicast IPv4 and IPv6 frames are held: ARP and multicast
 * (neighbour discovery) pass at once, as a WAN's delay is on the path, not on the first hop.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define WS_LAB_RELEASED 0x5d1a7

SEC("tc")
int ws_lab_delay(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if (skb->mark == WS_LAB_RELEASED)
		return TC_ACT_OK;
	if ((void *)(eth + 1) > data_end || (eth->h_dest[0] & 1))
		return TC_ACT_OK;
	if (eth->h_proto != bpf_htons(ETH_P_IP) && eth->h_proto != bpf_htons(ETH_P_IPV6))
		return TC_ACT_OK;
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
