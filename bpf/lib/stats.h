/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * stats.h - packet/byte counters on per-CPU stats maps (any map whose value
 * is a struct ws_counter). Each program's own reason map is passed in, so the
 * steering and the reply-by-arrival objects share the code, not the counters.
 *
 * Per-CPU values belong to this CPU alone while the program runs, so plain
 * increments through the looked-up pointer are safe (no atomics).
 */
#ifndef __WS_LIB_STATS_H
#define __WS_LIB_STATS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "steer_abi.h"

static __always_inline void ws_count(void *map, __u32 idx, __u32 len)
{
	struct ws_counter *c = bpf_map_lookup_elem(map, &idx);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

#endif /* __WS_LIB_STATS_H */
