// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* noop.bpf.c - a tc program that does nothing: the floor the benchmarks compare against. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int ws_noop(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
