/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * clock.h - the coarse monotonic clock, read from the kernel once per tick
 * per CPU instead of once per packet.
 *
 * bpf_ktime_get_coarse_ns() is a call into the kernel, and with retpoline
 * and safe-RET mitigations every call and return is dear (~7 ns a call on
 * the EPYC VM of bench/results/datapath.json). Yet its value only moves
 * when the tick's timekeeping update runs, right after the same tick
 * advances jiffies, and jiffies is one load (the verifier inlines
 * bpf_jiffies64() on 64-bit). So each CPU keeps its last reading with the
 * jiffies it was taken at, and calls the helper again only when jiffies
 * has moved.
 *
 * The value is the coarse clock at tick resolution, as before, except in
 * one race: a packet in the instant between a tick's jiffies update and its
 * timekeeping update caches the previous tick's time for the rest of the
 * tick, one tick old. Flow last-seen stamps, refreshed once a second, are
 * all this clock is for; they cannot tell.
 */
#ifndef __WS_LIB_CLOCK_H
#define __WS_LIB_CLOCK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct ws_tick {
	__u64 jiffies;
	__u64 coarse_ns;
};

/* Not one of the steering tables: a per-load cache, never pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ws_tick);
} ws_tick_clock SEC(".maps");

/* bpf_ktime_get_coarse_ns(), called at most once per tick on this CPU. */
static __always_inline __u64 ws_coarse_ns(void)
{
	__u32 zero = 0;
	struct ws_tick *t = bpf_map_lookup_elem(&ws_tick_clock, &zero);
	__u64 j = bpf_jiffies64();

	if (!t)
		return bpf_ktime_get_coarse_ns();
	if (t->jiffies != j) {
		t->coarse_ns = bpf_ktime_get_coarse_ns();
		t->jiffies = j;
	}
	return t->coarse_ns;
}

#endif /* __WS_LIB_CLOCK_H */
