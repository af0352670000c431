// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * map_writes.c - what flow writes cost at C speed: the yardstick bench/datapath.ts
 * holds the agent's Datapath.upsertFlow and upsertFlows to, in the same run.
 *
 * Creates an LRU hash shaped like ws_flows4 (struct ws_flow4_key -> struct
 * ws_flow_val from steer_abi.h, max_entries from the command line), packs every
 * key and value before the clock starts, then times
 *   1. SINGLES entries written one bpf_map_update_elem() each (keys 0..SINGLES-1),
 *   2. BATCH entries written by bpf_map_update_batch() CHUNK at a time, as
 *      upsertFlows hands them to the kernel (keys SINGLES..SINGLES+BATCH-1).
 * Key i is the flow bench/datapath.ts's flowKey(i) names: TCP
 * 10.(i>>16).(i>>8).i:(1024 + i % 60000) -> 198.51.100.1:443.
 *
 * usage: map_writes MAX_ENTRIES SINGLES BATCH CHUNK
 * prints: {"singleNs":<CPU ns for all singles>,"batchNs":<CPU ns for the whole batch>}
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include "steer_abi.h"

static __u64 clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* CPU time, user and system: what the writes cost, not how long others held the CPU. */
static __u64 cpu_ns(void)
{
	return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

static void flow_key(__u32 i, struct ws_flow4_key *k)
{
	memset(k, 0, sizeof(*k));
	k->saddr = htonl(10U << 24 | (i & 0xffffff));
	k->daddr = htonl(198U << 24 | 51U << 16 | 100U << 8 | 1U);
	k->sport = htons(1024 + i % 60000);
	k->dport = htons(443);
	k->proto = 6; /* IPPROTO_TCP */
}

static __u32 arg(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v == 0 || v > 1UL << 27) {
		fprintf(stderr, "map_writes: bad number %s\n", s);
		exit(2);
	}
	return (__u32)v;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: map_writes MAX_ENTRIES SINGLES BATCH CHUNK\n");
		return 2;
	}
	__u32 max = arg(argv[1]), singles = arg(argv[2]), batch = arg(argv[3]), chunk = arg(argv[4]);
	__u32 total = singles + batch;
	struct ws_flow4_key *keys = calloc(total, sizeof(*keys));
	struct ws_flow_val *vals = calloc(total, sizeof(*vals));
	DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u64 seen = clock_ns(CLOCK_MONOTONIC), t0, t1, t2;
	int fd, err;

	if (!keys || !vals) {
		fprintf(stderr, "map_writes: out of memory\n");
		return 1;
	}
	for (__u32 i = 0; i < total; i++) {
		flow_key(i, &keys[i]);
		vals[i].policy_id = 1;
		vals[i].last_seen_ns = seen;
	}
	fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "ws_bench_flows", sizeof(*keys), sizeof(*vals), max, NULL);
	if (fd < 0) {
		fprintf(stderr, "map_writes: create map: %s\n", strerror(errno));
		return 1;
	}

	t0 = cpu_ns();
	for (__u32 i = 0; i < singles; i++) {
		if (bpf_map_update_elem(fd, &keys[i], &vals[i], BPF_ANY)) {
			fprintf(stderr, "map_writes: update: %s\n", strerror(errno));
			return 1;
		}
	}
	t1 = cpu_ns();
	for (__u32 at = singles; at < total;) {
		__u32 n = total - at < chunk ? total - at : chunk;

		err = bpf_map_update_batch(fd, &keys[at], &vals[at], &n, &opts);
		if (err || n == 0) {
			fprintf(stderr, "map_writes: update batch: %s\n", strerror(errno));
			return 1;
		}
		at += n;
	}
	t2 = cpu_ns();

	printf("{\"singleNs\":%llu,\"batchNs\":%llu}\n", (unsigned long long)(t1 - t0),
	       (unsigned long long)(t2 - t1));
	return 0;
}
