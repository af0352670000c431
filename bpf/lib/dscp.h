/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * dscp.h - rewrite the DSCP of an IPv4 or IPv6 packet, keeping the ECN bits
 * (and the IPv6 version and flow label), fixing the IPv4 header checksum.
 *
 * Written with bpf_skb_store_bytes(), not direct packet stores: a program
 * that stores into the packet directly gets a verifier prologue that
 * unclones every cloned skb it sees (every TCP segment on egress is a clone)
 * and returns TC_ACT_SHOT when that fails. The helper makes only the packets
 * we rewrite writable.
 */
#ifndef __WS_LIB_DSCP_H
#define __WS_LIB_DSCP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "csum.h"
#include "steer_abi.h"

/* Returns 0 when the packet now carries dscp. Invalidates packet pointers. */
static __always_inline int ws_set_dscp(struct __sk_buff *skb, __u32 l3_off,
				       __u8 family, __u8 old_tclass, __u8 dscp)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u8 tclass = (dscp << 2) | (old_tclass & 0x3);

	if (family == WS_FAMILY_IPV4) {
		/* version/IHL, TOS ... checksum: the first 12 bytes, one store */
		__u16 w[6];

		if (data + l3_off + sizeof(w) > data_end)
			return -1;
		__builtin_memcpy(w, data + l3_off, sizeof(w));
		__u16 old = w[0];

		((__u8 *)w)[1] = tclass;
		w[5] = ws_csum_replace2(w[5], old, w[0]);
		return bpf_skb_store_bytes(skb, l3_off, w, sizeof(w), 0);
	} else {
		/* version:4 tclass:8 flow label:20; tclass straddles bytes 0-1 */
		__be16 w;

		if (data + l3_off + sizeof(w) > data_end)
			return -1;
		w = *(__be16 *)(data + l3_off);
		w = bpf_htons((bpf_ntohs(w) & 0xf00f) | ((__u16)tclass << 4));
		return bpf_skb_store_bytes(skb, l3_off, &w, sizeof(w), 0);
	}
}

#endif /* __WS_LIB_DSCP_H */
