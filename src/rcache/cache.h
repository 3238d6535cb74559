/* SPDX-License-Identifier: MIT */
/*
 * cache.h — the state of a registration cache and of its regions, shared by
 * src/rcache's files.  src/rcache/README.md draws the same picture with the
 * reasoning.
 *
 * A region's life, in `state` (written under the cache's mutex):
 *
 *   FREE     in the cache's pool.  Never given back to malloc while the
 *            cache lives, so a lock-free reader holding a stale pointer
 *            always reads a region (index.h).
 *   REG      taken by a get that missed: its subscription is inserted, its
 *            ->reg runs or ran.  Not in the index.
 *   CACHED   registered, in the index and the clock ring.  Valid until an
 *            invalidation, a merge, an eviction or a flush clears VALID.
 *   DEAD     registered, invalid, out of the index, on the dead list: held
 *            by someone, or waiting for its ->dereg.
 *   DEREGD   ->dereg done (or ->reg never succeeded); waiting for the core
 *            to ->release() its subscription, then FREE.
 *
 * The reference word `refs` is what lock-free code decides on:
 *
 *   REF_VALID   set once, by the CAS that publishes the region (0 ->
 *               VALID | 1), cleared once (invalidate, merge, evict, flush).
 *               get takes a reference only while it is set (CAS).
 *   REF_INVAL   an invalidation reached the region; a publish CAS that
 *               finds it fails, so a registration an invalidation raced
 *               with is never handed out.
 *   count       references held.
 *
 * Whoever's read-modify-write makes the word "not VALID and count 0" is
 * the region's *retirer*, exactly one per life: a put of the last
 * reference, an invalidation or merge of an unused region, an eviction.  It
 * sets P_RETIRED (directly under the mutex, or by pushing the region on the
 * to-do stack from where the mutex is not to be taken), and only a region
 * with P_RETIRED is deregistered.  Settling reads pend before refs: once
 * P_RETIRED is seen, the word read after it is the retired one (read the
 * other way round, a last put between the loads paired a stale count with
 * P_RETIRED; region.c, umn__region_settle_locked()).
 *
 * `pend` carries what lock-free code asks of the mutex holder:
 *   P_QUEUED    on the to-do stack (rc->todo); pushed only when this goes
 *               from 0 to 1, cleared by the drainer before it settles.
 *   P_CHECK     the region went invalid: take it out of the index.
 *   P_RETIRED   see above: ->dereg is due once it is out of the index.
 *   P_RELEASED  the core released the subscription: once deregistered
 *               and off the stack, the memory goes back to the pool.
 * A region is pushed only while its subscription is not yet released or by
 * its retirer, so never while FREE; it returns to the pool only when not
 * queued, so the stack never holds a region twice.
 *
 * Lock order: the cache's mutex, then the space's (inside umn calls).  The
 * cache's own umn callbacks (region_invalidate, region_release) take no
 * lock, so a thread that holds the mutex may wait for walks (read_begin),
 * call the backend, malloc or free.
 */
#ifndef UMN_RCACHE_CACHE_H
#define UMN_RCACHE_CACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <umn/rcache.h>

#include "rcache/index.h"
#include "sys/atomic.h"
#include "sys/debug.h"

#define REF_VALID (1ull << 63)
#define REF_INVAL (1ull << 62)
#define REF_COUNT (REF_INVAL - 1)

#define P_QUEUED   1u
#define P_CHECK    2u
#define P_RETIRED  4u
#define P_RELEASED 8u

enum region_state { R_FREE, R_REG, R_CACHED, R_DEAD, R_DEREGD };

struct umn_region {
	/* What a hit reads, in the first cache line. */
	_Atomic uint64_t refs;
	_Atomic uintptr_t start, end;       /* set before publishing; fixed
					       while VALID or referenced */
	struct umn_rcache *rc;              /* fixed for the pool's life */
	_Atomic unsigned char referenced;   /* the clock's bit; relaxed */
	unsigned char state;                /* enum region_state; mutex */
	_Atomic unsigned char sub_put;      /* umn_interval_put() called */
	_Atomic unsigned pend;              /* P_* */
	struct umn_region *prev, *next;     /* mutex: clock ring, dead list,
					       or pool (next only) */
	struct umn_region *todo_next;       /* written by the pusher, read by
					       the drainer after its acquire */
	struct umn_interval sub;
	/* the backend's data follows, at umn__region_data_offset() */
};

struct rc_chunk {
	struct rc_chunk *next;
};

struct umn_rcache {
	/* Read by every get; written by the slow paths only. */
	struct ix ix;
	uintptr_t align_mask;               /* alignment - 1; fixed */
	unsigned flags;                     /* fixed */
	_Atomic bool over;                  /* over a limit; set under mutex */
	struct umn_mm *mm;                  /* fixed */
	const struct umn_rcache_ops *ops;   /* fixed */
	void *ctx;                          /* fixed */
	size_t data_size, stride;           /* fixed */
	size_t max_regions, max_bytes;      /* fixed */
	size_t max_region;                  /* fixed; merging stops here */

	/* Pushed to by lock-free code: invalidations, releases, puts. */
	_Alignas(64) _Atomic(struct umn_region *) todo;
	_Atomic uint64_t invalidated;

	/* Everything below: the mutex. */
	_Alignas(64) pthread_mutex_t lock;
	struct umn_region *hand;            /* the clock ring, or NULL */
	struct umn_region *dead;            /* DEAD regions */
	struct umn_region *pool;            /* FREE regions */
	struct rc_chunk *chunks;
	size_t live;                        /* regions not FREE */
	size_t bytes;                       /* length of CACHED regions */
	uint64_t misses, regs, reg_errors, deregs, merged, evicted, retried;
};

static inline size_t umn__region_data_offset(void)
{
	return (sizeof(struct umn_region) + 15) & ~(size_t)15;
}

/*
 * For backends, inside ->reg or ->dereg (the mutex held): the lowest-
 * starting range [*cs, *ce) of a region other than @self that is still
 * registered (CACHED or DEAD) and overlaps [start, end); false if none.
 */
bool umn__rcache_next_registered(struct umn_rcache *rc,
				 const struct umn_region *self,
				 uintptr_t start, uintptr_t end,
				 uintptr_t *cs, uintptr_t *ce);

#endif /* UMN_RCACHE_CACHE_H */
