/* SPDX-License-Identifier: MIT */
/*
 * region.h — what cache.c uses of region.c: the pool, publishing and
 * retiring regions, the to-do stack, and the mutex with its drain.
 */
#ifndef UMN_RCACHE_REGION_H
#define UMN_RCACHE_REGION_H

#include <stddef.h>

#include "rcache/cache.h"

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

/* Ops of every region's subscription. */
extern const struct umn_interval_ops umn__region_sub_ops;

/* Mutex held.  A region in state REG, zeroed data, or NULL (-ENOMEM). */
struct umn_region *umn__region_alloc_locked(struct umn_rcache *rc);
/* Mutex held.  A published region into the index and the clock ring. */
void umn__region_cache_locked(struct umn_rcache *rc, struct umn_region *r);
/* Mutex held.  A CACHED region no longer valid: out of the index and the
 * clock ring, onto the dead list (DEAD).  Deregisters nothing. */
void umn__region_uncache_locked(struct umn_rcache *rc, struct umn_region *r);
/* Mutex held.  Move @r on as far as its state allows (cache.h). */
void umn__region_settle_locked(struct umn_rcache *rc, struct umn_region *r);
/* Mutex held.  We are @r's retirer: mark it and settle it. */
void umn__region_retire_locked(struct umn_rcache *rc, struct umn_region *r);
/* Put @r's subscription, once per life.  Never blocks. */
void umn__region_put_sub(struct umn_region *r);
/* Free every chunk of the pool; the cache is going away. */
void umn__rc_pool_destroy(struct umn_rcache *rc);

/* Lock-free: ask the next mutex holder to settle @r. */
void umn__rc_push(struct umn_rcache *rc, struct umn_region *r, unsigned bits);
/* Take the mutex and drain the to-do stack. */
void umn__rc_lock(struct umn_rcache *rc);
/* Drain, unlock, and again if needed (region.c). */
void umn__rc_unlock(struct umn_rcache *rc);
/* Drain if the mutex is free; otherwise its holder will. */
void umn__rc_try_drain(struct umn_rcache *rc);

#endif /* UMN_RCACHE_REGION_H */
