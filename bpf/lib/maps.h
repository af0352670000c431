/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * maps.h - the steering tables and counters, BTF-defined.
 *
 * User space finds these by name and pins them itself (no pinning here), and
 * sizes ws_flows4/ws_flows6 at load time; layouts come from steer_abi.h.
 */
#ifndef __WS_LIB_MAPS_H
#define __WS_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "steer_abi.h"

/*
 * Session mode: 5-tuple -> policy id, one table per family (the IPv4 key
 * hashes in a third of the time). LRU so a full table evicts idle flows.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_FLOWS_DEFAULT);
	__type(key, struct ws_flow4_key);
	__type(value, struct ws_flow_val);
} ws_flows4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_FLOWS_DEFAULT);
	__type(key, struct ws_flow6_key);
	__type(value, struct ws_flow_val);
} ws_flows6 SEC(".maps");

/* Mark mode: DSCP -> policy id (0 = none). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WS_DSCP_VALUES);
	__type(key, __u32);
	__type(value, __u32);
} ws_dscp SEC(".maps");

/* One indirection between flows and links keeps failover one write per policy. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WS_MAX_POLICIES);
	__type(key, __u32);
	__type(value, struct ws_policy);
} ws_policies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WS_MAX_LINKS);
	__type(key, __u32);
	__type(value, struct ws_link);
} ws_links SEC(".maps");

/* Per-CPU counters: no atomics on the hot path, user space sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WS_MAX_LINKS);
	__type(key, __u32);
	__type(value, struct ws_counter);
} ws_link_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WS_MAX_POLICIES);
	__type(key, __u32);
	__type(value, struct ws_counter);
} ws_policy_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
#ifndef WS_TEST_LAYOUT_NEXT
	__uint(max_entries, WS_R_MAX);
#else
	__uint(max_entries, WS_R_MAX + 1);	/* test only: as if a reason were added */
#endif
	__type(key, __u32);
	__type(value, struct ws_counter);
} ws_reasons SEC(".maps");

#endif /* __WS_LIB_MAPS_H */
