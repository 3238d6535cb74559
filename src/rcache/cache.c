// SPDX-License-Identifier: MIT
/*
 * cache — umn_rcache_*: the hit path, the miss path, limits, flush, free.
 *
 * A hit takes no lock and writes only the region it returns:
 *
 *   r = umn__ix_lookup(addr)            racy, a candidate (index.h)
 *   CAS refs: VALID|n -> VALID|n+1      (acquire) fails unless valid
 *   r->start <= addr, addr+len <= r->end?   else put it back, slow path
 *
 * The CAS pairs with the release CAS that published the region, so the
 * bounds and the backend's data are seen as ->reg left them; they cannot
 * change while the region is valid and referenced, so the check after the
 * CAS is final, even if the region was recycled since the lookup (it is
 * then a valid region that covers the range, which is all get promises).
 *
 * A miss takes the mutex and registers (one miss at a time per cache):
 *
 *   union = [start, end) aligned, grown over the valid regions it
 *           overlaps or touches, up to max_region_bytes
 *   insert a new region's subscription over the union   (maybe deferred)
 *   seq = umn_read_begin(sub)   waits while a walk that reached the range,
 *                               or one the insert had to wait for, runs
 *   union recomputed the same?  no: a merged region died before the insert
 *                               could see it: start over
 *   ->reg
 *   CAS refs: 0 -> VALID|1      (release) fails if an invalidation reached
 *                               the subscription since the insert (INVAL):
 *                               ->dereg and start over
 *   every region the union overlaps: VALID cleared, out of the index
 *   the new one into the index
 *   ->dereg of the replaced regions that are unused   (only now: a dereg
 *                               sees the new region registered)
 *
 * This is the sequence protocol with the reference word as the owner's
 * lock: ->invalidate() calls umn_set_seq() and then sets INVAL with a
 * read-modify-write of refs; the publish is a read-modify-write of the
 * same word, so either it comes first (the region was valid, and the
 * invalidation then takes it away from later gets and from holders'
 * umn_region_valid()) or it sees INVAL, which is what umn_read_retry()
 * would have reported.  read_begin is what makes the miss wait for an
 * invalidation already in progress instead of registering the pages it is
 * taking away: the insert made while that walk runs is deferred, and
 * read_begin of a deferred insert waits for the walk to end.
 *
 * The mutex is held across read_begin and ->reg.  That is safe because no
 * callback of the cache takes it (region.c); it is why a miss, a flush or
 * stats from inside a walk or release of the space returns -EDEADLK
 * without touching the mutex:
 *
 *   thread A (miss)                   thread B (inside a walk of the space)
 *   lock(rc->lock)
 *   read_begin: waits for B's walk    ->invalidate(): umn_rcache_get() miss
 *                                     lock(rc->lock): waits for A
 *
 * For the same reason get and put never drain the to-do stack there (that
 * would run ->dereg inside an invalidation): the next call elsewhere does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/export.h"
#include "rcache/region.h"

/* Misses that an invalidation keeps spoiling give up after this many. */
#define GET_ATTEMPTS 8

/* ---- the reference word --------------------------------------------- */

static bool region_try_get(struct umn_region *r)
{
	uint64_t w = atomic_load_relaxed(&r->refs);

	do {
		if (!(w & REF_VALID))
			return false;
		/* Acquire pairs with the publish CAS in region_register(). */
	} while (!atomic_compare_exchange_weak_explicit(
		&r->refs, &w, w + 1, memory_order_acquire,
		memory_order_relaxed));
	return true;
}

static bool region_covers(const struct umn_region *r, uintptr_t a,
			  uintptr_t e)
{
	/* Relaxed: fixed while we hold a reference to a valid region. */
	return atomic_load_relaxed(&r->start) <= a &&
	       e <= atomic_load_relaxed(&r->end);
}

static void region_touch(struct umn_region *r)
{
	/* Relaxed: a hint for the clock; the line is ours after the CAS. */
	if (!atomic_load_relaxed(&r->referenced))
		atomic_store_relaxed(&r->referenced, 1);
}

/* ---- limits --------------------------------------------------------- */

static bool over_limits_locked(struct umn_rcache *rc)
{
	return rc->ix.regions > rc->max_regions || rc->bytes > rc->max_bytes;
}

/*
 * The clock (second chance): the hand goes round the cached regions; an
 * unused one used since the hand last passed loses its mark and stays,
 * an unused unmarked one is evicted.  Twice round at most.
 */
static void evict_locked(struct umn_rcache *rc)
{
	size_t budget = 2 * rc->ix.regions + 1;

	while (over_limits_locked(rc) && rc->hand && budget--) {
		struct umn_region *r = rc->hand;
		uint64_t w = REF_VALID;

		rc->hand = r->next;
		if (atomic_load_relaxed(&r->refs) != REF_VALID) {
			umn__region_settle_locked(rc, r); /* held, or dead */
			continue;
		}
		if (atomic_exchange_relaxed(&r->referenced, 0))
			continue;
		/* Acq_rel: against a get's CAS, and after the last put. */
		if (!atomic_compare_exchange_strong_explicit(
			    &r->refs, &w, 0, memory_order_acq_rel,
			    memory_order_relaxed))
			continue;
		rc->evicted++;
		umn__region_retire_locked(rc, r);
	}
	/* Relaxed: a hint for put, which takes the mutex to act on it. */
	atomic_store_relaxed(&rc->over, over_limits_locked(rc));
}

/* ---- the miss path -------------------------------------------------- */

/* A valid region covering [a, e), held; under the mutex. */
static struct umn_region *hit_locked(struct umn_rcache *rc, uintptr_t a,
				     uintptr_t e)
{
	struct umn_region *r = umn__ix_lookup(&rc->ix, a);

	if (!r || !region_try_get(r))
		return NULL;
	if (region_covers(r, a, e))
		return r;
	umn_rcache_put(rc, r);
	return NULL;
}

static bool region_valid_overlapping(struct umn_region *r, uintptr_t s,
				     uintptr_t e)
{
	return (atomic_load_relaxed(&r->refs) & REF_VALID) &&
	       atomic_load_relaxed(&r->start) <= e &&
	       atomic_load_relaxed(&r->end) >= s;
}

/*
 * Grow [*s, *e) over the valid regions that overlap or touch it, nearest
 * first, while the union stays within max_region: what a miss registers.
 * Regions do not overlap, so the candidates are the one at or before *s,
 * those before it that touch, and those after it up to *e; one that would
 * take the union past max_region stops the growth on its side (the ones
 * beyond it would take it further).  An overlapping region left out is
 * replaced all the same (supersede_locked()), so the index never holds two
 * regions over one address; a request longer than max_region is
 * registered as asked, merged with nothing.
 */
static void union_locked(struct umn_rcache *rc, uintptr_t *s, uintptr_t *e)
{
	size_t max = rc->max_region;
	struct ix_pos pos, back;
	struct umn_region *r;

	if (!umn__ix_floor(&rc->ix, *s, &pos)) {
		pos.leaf = 0; /* before every key: scan from the first */
		pos.slot = 0;
	} else {
		back = pos;
		do {
			r = umn__ix_at(&rc->ix, &back);
			if (!r || atomic_load_relaxed(&r->end) < *s)
				break;
			if (!region_valid_overlapping(r, *s, *e))
				continue;
			if (*e - atomic_load_relaxed(&r->start) > max)
				break;
			*s = atomic_load_relaxed(&r->start);
		} while (umn__ix_prev(&rc->ix, &back));
	}
	for (; (r = umn__ix_at(&rc->ix, &pos)); umn__ix_next(&rc->ix, &pos)) {
		uintptr_t re = atomic_load_relaxed(&r->end);

		if (atomic_load_relaxed(&r->start) > *e)
			break;
		if (!region_valid_overlapping(r, *s, *e) || re <= *e)
			continue;
		if (re - *s > max)
			break;
		*e = re;
	}
}

/* The first region in the index overlapping [s, e), or NULL. */
static struct umn_region *first_overlap_locked(struct umn_rcache *rc,
					       uintptr_t s, uintptr_t e)
{
	struct ix_pos pos;
	struct umn_region *r;

	if (!umn__ix_floor(&rc->ix, s, &pos)) {
		pos.leaf = 0;
		pos.slot = 0;
	}
	for (; (r = umn__ix_at(&rc->ix, &pos)); umn__ix_next(&rc->ix, &pos)) {
		if (atomic_load_relaxed(&r->start) >= e)
			return NULL;
		if (atomic_load_relaxed(&r->end) > s)
			return r;
	}
	return NULL;
}

/*
 * Take every region overlapping the new region's range out of the index:
 * the valid ones are merged into it (VALID cleared here; the unused ones
 * are retired), the dead ones were waiting for a settle anyway.  Nothing
 * is deregistered here: they stay on the dead list, registered, until the
 * new region is in the index and dead_settle_locked() runs their ->dereg.
 * A ->dereg run before that would not see the new region registered (the
 * mlock backend would unlock the pages it has just locked).
 */
static void supersede_locked(struct umn_rcache *rc, uintptr_t s, uintptr_t e)
{
	struct umn_region *r;

	while ((r = first_overlap_locked(rc, s, e))) {
		/* Acq_rel: against gets' CAS; after the last put. */
		uint64_t w = atomic_fetch_and_explicit(&r->refs, ~REF_VALID,
						       memory_order_acq_rel);

		if (w & REF_VALID) {
			rc->merged++;
			if (!(w & REF_COUNT))
				atomic_fetch_or_explicit(&r->pend, P_RETIRED,
							 memory_order_relaxed);
		}
		UMN_BUG_ON(r->state != R_CACHED);
		umn__region_uncache_locked(rc, r); /* now DEAD */
	}
}

/* Settle every dead region: deregister those that are retired. */
static void dead_settle_locked(struct umn_rcache *rc)
{
	struct umn_region *r = rc->dead;

	while (r) {
		struct umn_region *next = r->next;

		umn__region_settle_locked(rc, r);
		r = next;
	}
}

static void flush_locked(struct umn_rcache *rc);

/*
 * ->reg, and once more if it failed for want of something the cache itself
 * may hold (slots, pinned memory, ...): evict every unused region, run the
 * due deregs and, if that deregistered anything, try again with the
 * region's data zeroed as before the first call.
 */
static int region_reg_locked(struct umn_rcache *rc, struct umn_region *r)
{
	int err = rc->ops->reg(rc, r);
	uint64_t deregs = rc->deregs;

	if (err != -ENOSPC && err != -ENOMEM && err != -EAGAIN)
		return err;
	flush_locked(rc);
	if (rc->deregs == deregs)
		return err;
	memset((char *)r + umn__region_data_offset(), 0, rc->data_size);
	return rc->ops->reg(rc, r);
}

/* Give up on @r, never published: ->dereg if ->reg succeeded. */
static void region_abandon_locked(struct umn_rcache *rc, struct umn_region *r,
				  bool registered)
{
	if (registered) {
		rc->ops->dereg(rc, r);
		rc->deregs++;
	}
	r->state = R_DEREGD;
	umn__region_put_sub(r);
	umn__region_settle_locked(rc, r); /* FREE if already released */
}

/*
 * Register the union around [s, e) (aligned) as a new region, held.
 * -EAGAIN: an invalidation got in the way, try again.
 */
static int region_register(struct umn_rcache *rc, uintptr_t s, uintptr_t e,
			   struct umn_region **out)
{
	uintptr_t us = s, ue = e, vs = s, ve = e;
	struct umn_region *r;
	uint64_t zero = 0;
	int err;

	union_locked(rc, &us, &ue);
	if (umn__ix_reserve(&rc->ix) || !(r = umn__region_alloc_locked(rc)))
		return -ENOMEM;
	atomic_store_relaxed(&r->start, us);
	atomic_store_relaxed(&r->end, ue);
	err = umn_interval_insert(&r->sub, rc->mm, us, ue - us,
				  &umn__region_sub_ops);
	UMN_BUG_ON(err); /* a released region, a checked range */
	unsigned long seq = umn_read_begin(&r->sub);

	union_locked(rc, &vs, &ve);
	if (umn_check_retry(&r->sub, seq) || vs != us || ve != ue) {
		rc->retried++;
		region_abandon_locked(rc, r, false);
		return -EAGAIN;
	}
	err = region_reg_locked(rc, r);
	if (err) {
		rc->reg_errors++;
		region_abandon_locked(rc, r, false);
		return err < 0 ? err : -EIO;
	}
	rc->regs++;
	/* Release pairs with the acquire CAS in region_try_get(). */
	if (!atomic_compare_exchange_strong_explicit(&r->refs, &zero,
						     REF_VALID | 1,
						     memory_order_acq_rel,
						     memory_order_relaxed)) {
		rc->retried++;
		region_abandon_locked(rc, r, true);
		return -EAGAIN;
	}
	supersede_locked(rc, us, ue);
	umn__region_cache_locked(rc, r);
	dead_settle_locked(rc); /* the new region covers theirs first */
	evict_locked(rc);
	*out = r;
	return 0;
}

/* Out of line: the hit path in umn_rcache_get() stays a leaf function. */
__attribute__((noinline, cold))
static int get_slow(struct umn_rcache *rc, uintptr_t a, uintptr_t e,
		    struct umn_region **out)
{
	uintptr_t mask = rc->align_mask;
	int err = -EAGAIN;

	if (e > UINTPTR_MAX - mask)
		return -EOVERFLOW; /* the end rounded up would wrap */
	if (umn__thread_inside(rc->mm))
		return -EDEADLK;
	umn__rc_lock(rc);
	rc->misses++;
	for (int i = 0; i < GET_ATTEMPTS && err == -EAGAIN; i++) {
		*out = hit_locked(rc, a, e);
		if (*out) {
			region_touch(*out);
			err = 0;
			break;
		}
		err = region_register(rc, a & ~mask, (e + mask) & ~mask, out);
	}
	umn__rc_unlock(rc);
	return err;
}

/* ---- the API -------------------------------------------------------- */

/* Run what is due if the mutex is free, but never inside a walk of the
 * space: ->dereg must not run there; a later call runs it. */
static void rc_try_drain(struct umn_rcache *rc)
{
	if (!umn__thread_inside(rc->mm))
		umn__rc_try_drain(rc);
}

int umn_rcache_get(struct umn_rcache *rc, const void *addr, size_t len,
		   struct umn_region **out)
{
	uintptr_t a = (uintptr_t)addr;
	struct umn_region *r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!rc || !len)
		return -EINVAL;
	if (len > UINTPTR_MAX - a)
		return -EOVERFLOW;
	/* Relaxed: a hint; the drain's exchange is the acquire. */
	if (atomic_load_relaxed(&rc->todo))
		rc_try_drain(rc);
	r = umn__ix_lookup(&rc->ix, a);
	if (r && region_try_get(r)) {
		if (region_covers(r, a, a + len)) {
			region_touch(r);
			*out = r;
			return 0;
		}
		umn_rcache_put(rc, r);
	}
	return get_slow(rc, a, a + len, out);
}

int umn_rcache_put(struct umn_rcache *rc, struct umn_region *r)
{
	if (!rc || !r || r->rc != rc)
		return -EINVAL;
	uint64_t w = atomic_load_relaxed(&r->refs);

	do {
		if (!(w & REF_COUNT))
			return -EALREADY;
		/* Release: the holder's use of the region happens before the
		 * settle that deregisters it (its acquire load of refs). */
	} while (!atomic_compare_exchange_weak_explicit(
		&r->refs, &w, w - 1, memory_order_release,
		memory_order_relaxed));
	if ((w & REF_COUNT) == 1 && !(w & REF_VALID)) {
		/* We retired it: ->dereg is due, here if the mutex is free. */
		umn__rc_push(rc, r, P_RETIRED);
		rc_try_drain(rc);
		return 0;
	}
	if ((w & REF_COUNT) == 1 && atomic_load_relaxed(&rc->over) &&
	    !umn__thread_inside(rc->mm) && !pthread_mutex_trylock(&rc->lock)) {
		evict_locked(rc);
		umn__rc_unlock(rc);
	}
	if (atomic_load_relaxed(&rc->todo))
		rc_try_drain(rc);
	return 0;
}

/* Evict every unused region, and run every ->dereg that is due. */
static void flush_locked(struct umn_rcache *rc)
{
	for (size_t n = rc->ix.regions; n && rc->hand; n--) {
		struct umn_region *r = rc->hand;
		uint64_t w = REF_VALID;

		rc->hand = r->next;
		if (atomic_compare_exchange_strong_explicit(
			    &r->refs, &w, 0, memory_order_acq_rel,
			    memory_order_relaxed)) {
			rc->evicted++;
			umn__region_retire_locked(rc, r);
		} else {
			umn__region_settle_locked(rc, r);
		}
	}
	dead_settle_locked(rc);
	atomic_store_relaxed(&rc->over, over_limits_locked(rc));
}

int umn_rcache_flush(struct umn_rcache *rc)
{
	if (!rc)
		return -EINVAL;
	if (umn__thread_inside(rc->mm))
		return -EDEADLK;
	umn__rc_lock(rc);
	flush_locked(rc);
	umn__rc_unlock(rc);
	return 0;
}

static bool any_held_locked(struct umn_rcache *rc)
{
	struct umn_region *r = rc->hand;

	for (size_t n = rc->ix.regions; n && r; n--, r = r->next)
		if (atomic_load_relaxed(&r->refs) & REF_COUNT)
			return true;
	for (r = rc->dead; r; r = r->next)
		if (atomic_load_relaxed(&r->refs) & REF_COUNT)
			return true;
	return false;
}

static void rc_destroy(struct umn_rcache *rc)
{
	umn__ix_destroy(&rc->ix);
	umn__rc_pool_destroy(rc);
	pthread_mutex_destroy(&rc->lock);
	free(rc);
}

int umn_rcache_free(struct umn_rcache *rc)
{
	int err;

	if (!rc)
		return -EINVAL;
	/* First, so that a call from a callback changes nothing. */
	err = umn_synchronize(rc->mm);
	if (err)
		return err;
	umn__rc_lock(rc);
	if (any_held_locked(rc)) {
		umn__rc_unlock(rc);
		return -EBUSY;
	}
	umn__rc_unlock(rc);
	umn_rcache_flush(rc);
	/*
	 * Every subscription is put now, or is being put by an invalidation
	 * still running: once the walks and releases have ended, the last
	 * drain returns every region to the pool.
	 */
	for (int round = 0;; round++) {
		err = umn_synchronize(rc->mm);
		UMN_BUG_ON(err);
		umn__rc_lock(rc);
		dead_settle_locked(rc);
		bool done = !rc->live;

		umn__rc_unlock(rc);
		if (done)
			break;
		UMN_BUG_ON(round > 3);
	}
	rc_destroy(rc);
	return 0;
}

int umn_rcache_new(const struct umn_rcache_config *cfg,
		   struct umn_rcache **out)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t align, data;
	struct umn_rcache *rc;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!cfg || !cfg->mm || !cfg->ops || !cfg->ops->reg ||
	    !cfg->ops->dereg || (cfg->flags & ~UMN_RCACHE_KEEP_ON_PROTECTION))
		return -EINVAL;
	align = cfg->alignment ? cfg->alignment : (size_t)page;
	if (align < (size_t)page || (align & (align - 1)))
		return -EINVAL;
	if (cfg->region_data_size > SIZE_MAX / 2)
		return -EINVAL;
	data = (cfg->region_data_size + 15) & ~(size_t)15;
	rc = aligned_alloc(64, sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	memset(rc, 0, sizeof(*rc));
	if (pthread_mutex_init(&rc->lock, NULL)) {
		free(rc);
		return -ENOMEM;
	}
	umn__ix_init(&rc->ix);
	atomic_init(&rc->todo, NULL);
	rc->align_mask = align - 1;
	rc->flags = cfg->flags;
	rc->mm = cfg->mm;
	rc->ops = cfg->ops;
	rc->ctx = cfg->ctx;
	rc->data_size = cfg->region_data_size;
	rc->stride = (umn__region_data_offset() + data + 63) & ~(size_t)63;
	rc->max_regions = cfg->max_regions ? cfg->max_regions : SIZE_MAX;
	rc->max_bytes = cfg->max_bytes ? cfg->max_bytes : SIZE_MAX;
	rc->max_region = cfg->max_region_bytes ? cfg->max_region_bytes
					       : UMN_RCACHE_MAX_REGION_DEFAULT;
	*out = rc;
	return 0;
}

void *umn_rcache_ctx(struct umn_rcache *rc)
{
	return rc ? rc->ctx : NULL;
}

int umn_rcache_stats(struct umn_rcache *rc, struct umn_rcache_stats *st)
{
	if (!rc || !st)
		return -EINVAL;
	if (umn__thread_inside(rc->mm))
		return -EDEADLK;
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&rc->lock); /* no drain: no backend call here */
	struct umn_region *r = rc->hand;

	for (size_t n = rc->ix.regions; n && r; n--, r = r->next) {
		uint64_t w = atomic_load_relaxed(&r->refs);

		if (w & REF_VALID) {
			st->regions++;
			st->bytes += atomic_load_relaxed(&r->end) -
				     atomic_load_relaxed(&r->start);
		} else if (!(w & REF_COUNT)) {
			st->pending++;
		}
	}
	for (r = rc->dead; r; r = r->next)
		if (!(atomic_load_relaxed(&r->refs) & REF_COUNT))
			st->pending++;
	st->misses = rc->misses;
	st->regs = rc->regs;
	st->reg_errors = rc->reg_errors;
	st->deregs = rc->deregs;
	st->merged = rc->merged;
	st->invalidated = atomic_load_relaxed(&rc->invalidated);
	st->evicted = rc->evicted;
	st->retried = rc->retried;
	pthread_mutex_unlock(&rc->lock);
	return 0;
}

bool umn__rcache_next_registered(struct umn_rcache *rc,
				 const struct umn_region *self,
				 uintptr_t start, uintptr_t end,
				 uintptr_t *cs, uintptr_t *ce)
{
	/* @self is never in the index here: DEAD or never published. */
	struct umn_region *r = first_overlap_locked(rc, start, end);
	bool found = false;

	if (r) {
		*cs = atomic_load_relaxed(&r->start);
		*ce = atomic_load_relaxed(&r->end);
		found = true;
	}
	for (r = rc->dead; r; r = r->next) {
		uintptr_t s = atomic_load_relaxed(&r->start);
		uintptr_t e = atomic_load_relaxed(&r->end);

		if (r == self || s >= end || e <= start || (found && s >= *cs))
			continue;
		*cs = s;
		*ce = e;
		found = true;
	}
	return found;
}

uintptr_t umn_region_start(const struct umn_region *r)
{
	return atomic_load_relaxed(&r->start);
}

uintptr_t umn_region_end(const struct umn_region *r)
{
	return atomic_load_relaxed(&r->end);
}

void *umn_region_data(struct umn_region *r)
{
	return r->rc->data_size ? (char *)r + umn__region_data_offset() : NULL;
}

bool umn_region_valid(const struct umn_region *r)
{
	/* Relaxed: a snapshot, stale as soon as it is read. */
	return atomic_load_relaxed(&r->refs) & REF_VALID;
}
