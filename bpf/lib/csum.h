/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * csum.h - incremental Internet checksum update (RFC 1624).
 */
#ifndef __WS_LIB_CSUM_H
#define __WS_LIB_CSUM_H

#include <linux/types.h>

/*
 * HC' = ~(~HC + ~m + m') (RFC 1624, eqn. 3) for one changed 16-bit word.
 * One's complement sums do not care about byte order, so the words can be
 * passed exactly as they sit in the packet. Eqn. 3 never yields -0 (0xffff
 * stays a valid result only where the full recompute would give it too).
 */
static __always_inline __u16 ws_csum_replace2(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + (__u32)new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

#endif /* __WS_LIB_CSUM_H */
