/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * redirect.h - send a packet out of another link with bpf_redirect_neigh(),
 * which resolves the link's next hop in the kernel's neighbour table: no
 * static MACs, and a link that lost its carrier does not hold packets.
 */
#ifndef __WS_LIB_REDIRECT_H
#define __WS_LIB_REDIRECT_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include "steer_abi.h"
#include "parse.h"
#include "stats.h"

/* From linux/socket.h, which is not usable from BPF programs. */
#define WS_AF_INET	2
#define WS_AF_INET6	10

/*
 * Send the packet out of link; the target link's own pass counts it there.
 * Counted here under WS_R_REDIRECTED, or WS_R_REDIRECT_FAILED when it must
 * leave by its original link after all, in `reasons`.
 */
static __always_inline int ws_redirect(struct __sk_buff *skb,
				       const struct ws_link *link,
				       const struct ws_pkt *pkt, const bool l2,
				       void *reasons)
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
			ws_count(reasons, WS_R_REDIRECT_FAILED, len);
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

	ws_count(reasons, WS_R_REDIRECTED, len);

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

#endif /* __WS_LIB_REDIRECT_H */
