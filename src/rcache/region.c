// SPDX-License-Identifier: MIT
/*
 * region — the life of a region: the pool, the subscription's callbacks,
 * the to-do stack they fill, and settling, which moves a region along its
 * states (cache.h) under the cache's mutex.
 *
 * The callbacks run inside invalidation walks, which the process monitor
 * runs inside munmap, free, madvise, ...: they take no lock, allocate
 * nothing and never call the backend.  region_invalidate() clears VALID
 * (so no later get returns the region), puts the subscription (allowed
 * there, never blocks) and pushes the region for the next mutex holder;
 * region_release() only pushes.  The mutex holder drains the stack in
 * umn__rc_unlock(), which every path that takes the mutex leaves through,
 * and settles each region: out of the index, ->dereg, back to the pool.
 *
 *   invalidation (no lock)              mutex holder (get, put, flush)
 *   set_seq; refs &= ~VALID  (acq_rel)
 *   count was 0: we retire it
 *   push(P_CHECK [| P_RETIRED])         r = exchange(todo, NULL) (acquire)
 *   umn_interval_put (deferred)         clear P_QUEUED; settle(r):
 *   ... walk ends ...                     CACHED, !VALID -> out of index, DEAD
 *   ->release: push(P_RELEASED)           DEAD, P_RETIRED -> ->dereg, DEREGD
 *                                         DEREGD, P_RELEASED, !P_QUEUED -> FREE
 *
 * Pairs: the push's release CAS on rc->todo with the drainer's acquire
 * exchange, so the drainer sees what the pusher did first (its refs RMW,
 * its pend bits, and a putter's decrement before that).  And settle's
 * acquire load of pend with the push's fetch_or: settle loads pend first,
 * refs second, so a P_RETIRED it sees comes with the retired word.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rcache/region.h"
#include "sys/raw_syscall.h"

/*
 * Chunks of regions.  Small ones while the cache is small; once it holds
 * HUGE_AFTER regions, 2 MiB chunks aligned to 2 MiB and marked for
 * transparent huge pages: a hit on a random region among 100,000 spends
 * most of its time on the region's cache line, and a page-table walk for
 * it on top when the regions are spread over 4 KiB pages.
 */
#define SMALL_CHUNK 64
#define HUGE_AFTER  4096
#define HUGE_SIZE   ((size_t)2 << 20)
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif

static int chunk_add(struct umn_rcache *rc)
{
	size_t head = (sizeof(struct rc_chunk) + 63) & ~(size_t)63;
	size_t bytes = head + rc->stride * SMALL_CHUNK, align = 64;
	char *c;

	if (rc->live >= HUGE_AFTER) {
		align = HUGE_SIZE;
		bytes = (bytes + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1);
	}
	c = aligned_alloc(align, bytes);
	if (!c)
		return -ENOMEM;
	/* A hint; a kernel without THP refuses it, which changes nothing.
	 * Raw: the library never calls a function the monitor wraps. */
	if (align == HUGE_SIZE)
		umn__sys3(SYS_madvise, c, bytes, MADV_HUGEPAGE);
	memset(c, 0, bytes);
	((struct rc_chunk *)c)->next = rc->chunks;
	rc->chunks = (struct rc_chunk *)c;
	/* Pushed last first, so that regions are handed out in address order. */
	for (size_t i = (bytes - head) / rc->stride; i-- > 0;) {
		struct umn_region *r =
			(struct umn_region *)(c + head + rc->stride * i);

		atomic_init(&r->refs, 0);
		r->rc = rc;
		r->state = R_FREE;
		r->next = rc->pool;
		rc->pool = r;
	}
	return 0;
}

struct umn_region *umn__region_alloc_locked(struct umn_rcache *rc)
{
	struct umn_region *r;

	if (!rc->pool && chunk_add(rc))
		return NULL;
	r = rc->pool;
	rc->pool = r->next;
	/*
	 * FREE: nobody modifies refs (a get's CAS needs VALID, a put's needs a
	 * count), nobody pushes it (its subscription is released and it has
	 * been retired), so plain resets are safe.  Racing readers may still
	 * load refs and find it 0: not valid.
	 */
	atomic_store_relaxed(&r->refs, 0);
	atomic_store_relaxed(&r->pend, 0);
	atomic_store_relaxed(&r->sub_put, 0);
	atomic_store_relaxed(&r->referenced, 0);
	r->state = R_REG;
	r->prev = r->next = NULL;
	memset((char *)r + umn__region_data_offset(), 0, rc->data_size);
	rc->live++;
	return r;
}

void umn__rc_pool_destroy(struct umn_rcache *rc)
{
	while (rc->chunks) {
		struct rc_chunk *c = rc->chunks;

		rc->chunks = c->next;
		free(c);
	}
	rc->pool = NULL;
}

/* ---- lists under the mutex ------------------------------------------ */

/* New regions go just behind the hand: the last the clock reaches. */
static void clock_insert(struct umn_rcache *rc, struct umn_region *r)
{
	struct umn_region *h = rc->hand;

	if (!h) {
		r->prev = r->next = r;
		rc->hand = r;
		return;
	}
	r->next = h;
	r->prev = h->prev;
	h->prev->next = r;
	h->prev = r;
}

static void clock_unlink(struct umn_rcache *rc, struct umn_region *r)
{
	if (r->next == r) {
		rc->hand = NULL;
	} else {
		r->prev->next = r->next;
		r->next->prev = r->prev;
		if (rc->hand == r)
			rc->hand = r->next;
	}
	r->prev = r->next = NULL;
}

static void dead_link(struct umn_rcache *rc, struct umn_region *r)
{
	r->prev = NULL;
	r->next = rc->dead;
	if (rc->dead)
		rc->dead->prev = r;
	rc->dead = r;
}

static void dead_unlink(struct umn_rcache *rc, struct umn_region *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		rc->dead = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

/* ---- publishing and retiring ---------------------------------------- */

void umn__region_cache_locked(struct umn_rcache *rc, struct umn_region *r)
{
	uintptr_t start = atomic_load_relaxed(&r->start);

	umn__ix_insert(&rc->ix, start, r);
	clock_insert(rc, r);
	rc->bytes += atomic_load_relaxed(&r->end) - start;
	r->state = R_CACHED;
}

void umn__region_uncache_locked(struct umn_rcache *rc, struct umn_region *r)
{
	uintptr_t start = atomic_load_relaxed(&r->start);

	umn__ix_remove(&rc->ix, start);
	clock_unlink(rc, r);
	rc->bytes -= atomic_load_relaxed(&r->end) - start;
	dead_link(rc, r);
	r->state = R_DEAD;
}

void umn__region_put_sub(struct umn_region *r)
{
	/* Once per life: a second put could reach the next life's insert. */
	if (atomic_exchange_relaxed(&r->sub_put, 1))
		return;
	int err = umn_interval_put(&r->sub);

	UMN_BUG_ON(err);
}

void umn__region_settle_locked(struct umn_rcache *rc, struct umn_region *r)
{
	/*
	 * pend first, then refs.  A retirer makes refs "not VALID, count 0"
	 * and only then sets P_RETIRED, and nothing changes VALID or the
	 * count after that (a later invalidation only adds INVAL).  So the
	 * word read after seeing P_RETIRED is the retired one.  Read the
	 * other way round, nothing stops a holder's last put from landing
	 * between the two loads, and settle pairs a stale word with its
	 * P_RETIRED:
	 *
	 *   mutex holder: settle(r)                  holder of r: put(r)
	 *   (r invalidated, still held)
	 *   w = refs              INVAL | 1
	 *                                            CAS refs: INVAL | 0
	 *                                            push: pend |= P_RETIRED
	 *   p = pend              P_RETIRED
	 *   (uncached:) DEAD and P_RETIRED,
	 *   BUG_ON(w & count): aborts on a count
	 *   that was already gone
	 *
	 * Settles of an invalid region that is still held are common: the
	 * drain after the invalidation pushed it, and dead_settle_locked()
	 * in every miss, flush and free.  tests/rcache/dead_put_race.c makes
	 * this window frequent; it cannot be forced (no callback runs
	 * between the two loads).
	 *
	 * Acquire on pend: pairs with the acq_rel fetch_or in umn__rc_push()
	 * (or comes after our own fetch_or under the mutex), so the retirer's
	 * RMW of refs, and the holders' use of the region before their puts,
	 * happen before the load of refs below and before ->dereg.
	 */
	unsigned p = atomic_load_acquire(&r->pend);
	/* Acquire: pairs with the release RMW that cleared VALID or dropped
	 * the last reference. */
	uint64_t w = atomic_load_acquire(&r->refs);

	if (r->state == R_CACHED && !(w & REF_VALID))
		umn__region_uncache_locked(rc, r);
	if (r->state == R_DEAD && (p & P_RETIRED)) {
		UMN_BUG_ON(w & (REF_VALID | REF_COUNT));
		dead_unlink(rc, r);
		umn__region_put_sub(r);
		rc->ops->dereg(rc, r);
		rc->deregs++;
		r->state = R_DEREGD;
		p = atomic_load_acquire(&r->pend);
	}
	if (r->state == R_DEREGD && (p & P_RELEASED) && !(p & P_QUEUED)) {
		r->state = R_FREE;
		r->next = rc->pool;
		rc->pool = r;
		rc->live--;
	}
}

void umn__region_retire_locked(struct umn_rcache *rc, struct umn_region *r)
{
	atomic_fetch_or_explicit(&r->pend, P_RETIRED, memory_order_relaxed);
	umn__region_settle_locked(rc, r);
}

/* ---- the to-do stack ------------------------------------------------ */

void umn__rc_push(struct umn_rcache *rc, struct umn_region *r, unsigned bits)
{
	/* Acq_rel: ordered after what we did to refs; pairs with the load in
	 * settle and with the drainer's clear of P_QUEUED. */
	unsigned old = atomic_fetch_or_explicit(&r->pend, bits | P_QUEUED,
						memory_order_acq_rel);

	if (old & P_QUEUED)
		return; /* the drainer has not cleared it yet: it will see bits */
	struct umn_region *head = atomic_load_relaxed(&rc->todo);

	do {
		r->todo_next = head;
		/* Release pairs with the acquire exchange in drain_locked(). */
	} while (!atomic_compare_exchange_weak_explicit(
		&rc->todo, &head, r, memory_order_release, memory_order_relaxed));
}

static void drain_locked(struct umn_rcache *rc)
{
	struct umn_region *r =
		atomic_exchange_explicit(&rc->todo, NULL, memory_order_acquire);

	while (r) {
		struct umn_region *next = r->todo_next;

		/* From here a new event pushes it again (with a new link). */
		atomic_fetch_and_explicit(&r->pend, ~P_QUEUED,
					  memory_order_acq_rel);
		umn__region_settle_locked(rc, r);
		r = next;
	}
}

void umn__rc_lock(struct umn_rcache *rc)
{
	int err = pthread_mutex_lock(&rc->lock);

	UMN_BUG_ON(err);
	drain_locked(rc);
}

/*
 * Drain, unlock, and drain again if something was pushed meanwhile and the
 * mutex is free: a pusher that found it taken (umn__rc_try_drain) relies
 * on us.  Its "push; fence; trylock" and our "unlock; fence; load todo" are
 * the Dekker pattern: with both fences sequentially consistent, at least one
 * of us sees the other, so a push is never left behind with nobody to
 * drain it.
 */
void umn__rc_unlock(struct umn_rcache *rc)
{
	for (;;) {
		drain_locked(rc);
		pthread_mutex_unlock(&rc->lock);
		atomic_thread_fence(memory_order_seq_cst);
		if (!atomic_load_relaxed(&rc->todo) ||
		    pthread_mutex_trylock(&rc->lock))
			return;
	}
}

void umn__rc_try_drain(struct umn_rcache *rc)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (pthread_mutex_trylock(&rc->lock))
		return; /* the holder drains before and after it unlocks */
	umn__rc_unlock(rc);
}

/* ---- the subscription's callbacks ----------------------------------- */

static bool region_invalidate(struct umn_interval *sub,
			      const struct umn_range *range,
			      unsigned long cur_seq)
{
	struct umn_region *r = container_of(sub, struct umn_region, sub);
	struct umn_rcache *rc = r->rc;

	umn_set_seq(sub, cur_seq);
	if (range->event == UMN_EVENT_PROTECTION &&
	    (rc->flags & UMN_RCACHE_KEEP_ON_PROTECTION))
		return true;
	uint64_t w = atomic_load_relaxed(&r->refs);

	/* Acq_rel: a publish CAS after this one sees INVAL and fails; one
	 * before it made the region valid, and we invalidate it. */
	while (!atomic_compare_exchange_weak_explicit(
		&r->refs, &w, (w & ~REF_VALID) | REF_INVAL,
		memory_order_acq_rel, memory_order_relaxed))
		;
	if (w & REF_VALID) {
		atomic_fetch_add_explicit(&rc->invalidated, 1,
					  memory_order_relaxed);
		umn__rc_push(rc, r, (w & REF_COUNT) ? P_CHECK
						    : P_CHECK | P_RETIRED);
	}
	umn__region_put_sub(r); /* deferred: a walk is in progress */
	return true;
}

static void region_release(struct umn_interval *sub)
{
	struct umn_region *r = container_of(sub, struct umn_region, sub);

	umn__rc_push(r->rc, r, P_RELEASED);
}

const struct umn_interval_ops umn__region_sub_ops = {
	.invalidate = region_invalidate,
	.release = region_release,
};
