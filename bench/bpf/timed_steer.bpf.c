// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * timed_steer.bpf.c - bench only: the steering program with clocks in it, for costs per packet
 * in real traffic (BPF_PROG_TEST_RUN cannot give a packet a conntrack entry; a real packet has
 * one, and fentry/fexit are not allowed on every kernel).
 *
 *   ws_bench_timer[0]  each whole run of ws_timed_egress (or of ws_timed_noop, the floor)
 *   ws_bench_timer[1]  each conntrack read (ws_nat_origin) inside a run
 *   ws_bench_timer[2]  an empty region timed right after it, in the same run: the clock's own
 *                      cost, subtracted packet by packet's worth, so the read is measured paired
 *
 * bench/overlay.ts builds it as steer.bpf.c is, and with -DWS_NO_NAT_ORIGIN (the program as it
 * was). Counters are struct ws_counter: packets = runs, bytes = nanoseconds.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "steer_abi.h"
#include "stats.h"
#include "conntrack.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, struct ws_counter);
} ws_bench_timer SEC(".maps");

static __always_inline void ws_timed(__u32 slot, __u64 t0)
{
	ws_count(&ws_bench_timer, slot, bpf_ktime_get_ns() - t0);
}

/* steer.bpf.c's call of ws_nat_origin lands here: the read, then an empty region, both timed */
static __always_inline __attribute__((unused)) void ws_nat_origin_timed(struct __sk_buff *skb, __u8 family, union ws_flow_key *key)
{
	__u64 t0 = bpf_ktime_get_ns();

	ws_nat_origin(skb, family, key);
	ws_timed(1, t0);
	t0 = bpf_ktime_get_ns();
	ws_timed(2, t0);
}
#define ws_nat_origin ws_nat_origin_timed

#define ws_egress_eth ws_untimed_egress_eth
#define ws_egress_l3 ws_untimed_egress_l3
#include "../../bpf/steer.bpf.c"
#undef ws_egress_eth
#undef ws_egress_l3

SEC("tc")
int ws_timed_egress(struct __sk_buff *skb)
{
	__u64 t0 = bpf_ktime_get_ns();
	int verdict = ws_egress(skb, true);

	ws_timed(0, t0);
	return verdict;
}

SEC("tc")
int ws_timed_noop(struct __sk_buff *skb)
{
	__u64 t0 = bpf_ktime_get_ns();

	ws_timed(0, t0);
	return TC_ACT_OK;
}
