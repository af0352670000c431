/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * conntrack.h - the tuple a packet had when it entered the node, before NAT.
 *
 * A session report carries the addresses its proxy saw: a pod's behind the
 * node's masquerade, or a pod's behind a NodePort's DNAT. By the WAN link's
 * egress NAT has rewritten them. The conntrack entry the kernel attached to
 * the packet (skb->_nfct, held for as long as the packet lives) keeps both
 * sides: tuplehash[dir] is the packet's own direction as it entered the
 * node. Reading it costs a few loads of a cache-hot entry; looking the entry up again (bpf_skb_ct_lookup) would hash
 * the tuple and take and drop a reference, ~5x the cost of a flow-table hit
 * (bench/overlay.ts measures both).
 *
 * The kernel types are declared with only the fields read here and
 * preserve_access_index, so libbpf relocates every offset against the running
 * kernel's BTF (CO-RE): no vmlinux.h, no layout baked in. The two kfuncs
 * (Linux 6.2+) are inlined by the verifier into plain register moves; they
 * are weak, so on a kernel without them the packet keeps its own tuple.
 * Reading kernel memory this way needs CAP_PERFMON, which the agent has.
 */
#ifndef __WS_LIB_CONNTRACK_H
#define __WS_LIB_CONNTRACK_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "steer_abi.h"
#include "parse.h"

/* include/linux/skbuff.h and nf_conntrack_common.h, which are not uapi. */
#define WS_NFCT_INFOMASK	7UL
#define WS_IP_CT_IS_REPLY	3

union ws_nf_inet_addr {
	__u32 all[4];
	__be32 ip;
} __attribute__((preserve_access_index));

union ws_nf_proto {
	__be16 all;
} __attribute__((preserve_access_index));

struct ws_nf_src {
	union ws_nf_inet_addr u3;
	union ws_nf_proto u;
} __attribute__((preserve_access_index));

struct ws_nf_dst {
	union ws_nf_inet_addr u3;
	union ws_nf_proto u;
	__u8 protonum;
} __attribute__((preserve_access_index));

/*
 * Root types are matched by name, the ___ws flavour dropped. The kernel also
 * has an nf_conn___init, so a type id of nf_conn would be ambiguous: the
 * entry is read as the unique nf_conntrack_tuple at its relocated offset.
 */
struct nf_conntrack_tuple___ws {
	struct ws_nf_src src;
	struct ws_nf_dst dst;
} __attribute__((preserve_access_index));

struct ws_nf_tuple_hash {
	struct nf_conntrack_tuple___ws tuple;
} __attribute__((preserve_access_index));

struct nf_conn___ws {
	struct ws_nf_tuple_hash tuplehash[2];	/* IP_CT_DIR_ORIGINAL, IP_CT_DIR_REPLY */
} __attribute__((preserve_access_index));

struct sk_buff___ws {
	unsigned long _nfct;			/* struct nf_conn * | enum ip_conntrack_info */
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym __weak;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/* Only ports of the protocols parse.h takes ports from; others keep zero. */
static __always_inline void ws_key_from_tuple(const struct nf_conntrack_tuple___ws *t,
					      __u8 family,
					      union ws_flow_key *key)
{
	__u8 proto = t->dst.protonum;
	bool ported = proto == IPPROTO_TCP || proto == IPPROTO_UDP ||
		      proto == IPPROTO_SCTP;

	if (family == WS_FAMILY_IPV4) {
		key->v4.saddr = t->src.u3.ip;
		key->v4.daddr = t->dst.u3.ip;
		key->v4.sport = ported ? t->src.u.all : 0;
		key->v4.dport = ported ? t->dst.u.all : 0;
		key->v4.proto = proto;
	} else {
		key->v6.saddr[0] = t->src.u3.all[0];
		key->v6.saddr[1] = t->src.u3.all[1];
		key->v6.saddr[2] = t->src.u3.all[2];
		key->v6.saddr[3] = t->src.u3.all[3];
		key->v6.daddr[0] = t->dst.u3.all[0];
		key->v6.daddr[1] = t->dst.u3.all[1];
		key->v6.daddr[2] = t->dst.u3.all[2];
		key->v6.daddr[3] = t->dst.u3.all[3];
		key->v6.sport = ported ? t->src.u.all : 0;
		key->v6.dport = ported ? t->dst.u.all : 0;
		key->v6.proto = proto;
	}
}

/*
 * The packet's tuple as it entered the node, from its conntrack entry: for a
 * packet NAT changed since, the pre-NAT one; otherwise the same tuple parsing
 * found (no status check needed, and an ICMP error related to a connection
 * gets that connection's tuple, so it follows that flow). A packet without an
 * entry (untracked, or a test run) keeps its parsed key.
 */
static __always_inline void ws_nat_origin(struct __sk_buff *skb, __u8 family,
					  union ws_flow_key *key)
{
	const struct nf_conntrack_tuple___ws *t;
	struct sk_buff___ws *kskb;
	unsigned long nfct, ct;

	if (!bpf_cast_to_kern_ctx || !bpf_rdonly_cast)
		return;
	kskb = bpf_cast_to_kern_ctx(skb);
	nfct = kskb->_nfct;
	ct = nfct & ~WS_NFCT_INFOMASK;
	if (!ct)
		return;
	/* the packet's own direction; one constant index per branch, so CO-RE relocates each */
	if ((nfct & WS_NFCT_INFOMASK) >= WS_IP_CT_IS_REPLY)
		ct += bpf_core_field_offset(struct nf_conn___ws, tuplehash[1].tuple);
	else
		ct += bpf_core_field_offset(struct nf_conn___ws, tuplehash[0].tuple);
	t = bpf_rdonly_cast((void *)ct, bpf_core_type_id_kernel(struct nf_conntrack_tuple___ws));
	ws_key_from_tuple(t, family, key);
}

#endif /* __WS_LIB_CONNTRACK_H */
