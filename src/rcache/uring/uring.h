/* SPDX-License-Identifier: MIT */
/*
 * uring.h — what uring.c shares with probe.c.  Hidden symbols, not ABI.
 */
#ifndef UMN_RCACHE_URING_PRIV_H
#define UMN_RCACHE_URING_PRIV_H

#include <stddef.h>

struct io_uring;

/* An empty table of @nr slots on @ring.  0, -ENOTSUP (before Linux 5.13)
 * or io_uring_register(2)'s error. */
int umn__uring_table_register(struct io_uring *ring, unsigned nr);

/* Fill @slot with [addr, addr + len), or empty it (NULL, 0).  0 or
 * io_uring_register(2)'s error. */
int umn__uring_table_set(struct io_uring *ring, unsigned slot,
			 const void *addr, size_t len);

#endif /* UMN_RCACHE_URING_PRIV_H */
