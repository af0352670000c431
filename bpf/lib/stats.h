/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * stats.h - packet/byte counters on the per-CPU stats maps.
 *
 * Per-CPU values belong to this CPU alone while the program runs, so plain
 * increments through the looked-up pointer are safe (no atomics).
 */
#ifndef __WS_LIB_STATS_H
#define __WS_LIB_STATS_H

#include "maps.h"

static __always_inline void ws_count(void *map, __u32 idx, __u32 len)
{
	struct ws_counter *c = bpf_map_lookup_elem(map, &idx);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

/* Exactly one outcome per packet, plus WS_R_DSCP_REWRITTEN when it applies. */
static __always_inline void ws_count_reason(enum ws_reason reason, __u32 len)
{
	ws_count(&ws_reasons, reason, len);
}

#endif /* __WS_LIB_STATS_H */
