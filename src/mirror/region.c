// SPDX-License-Identifier: MIT
/*
 * region — a region's callbacks: the seed's scenario.
 *
 * ->invalidate() takes the mirror lock, records the sequence, zaps the
 * device entries in the range, and for an unmap or a remap changes the
 * region from inside the callback:
 *
 *   range covers it all      umn_interval_put(); ->release() returns it to
 *                            the pool later
 *   range covers the head    umn_interval_update() to the rest
 *   or the tail
 *   range in the middle      umn_interval_insert() of a pooled region for
 *                            the part after the hole, umn_interval_update()
 *                            of this one to the part before it; with no
 *                            pooled region, keep the larger part and zap the
 *                            other (entries are a cache: dropping them is
 *                            always allowed, they refault)
 *
 * All three are deferred by the core while walks are in progress, so the
 * walks of the same period still reach the region with its old range (its
 * walk range, umn_interval_start/_end), and not at all the tail a split
 * inserted.  A walk therefore applies the unmap of the overlap of the
 * range with the walk range to every LIVE region there: the region itself
 * with the range it asked for last (start, end), and the tails split from
 * it.  Of several walks before the deferred operations apply, each trims
 * what is left, and the last update wins, as the core promises:
 *
 *   walk 1: UNMAP [4, 6)    region [0, 16) -> [0, 4), tail [6, 16) inserted
 *   walk 2: REMAP [10, 12)  reaches [0, 16) only: the tail -> [6, 10),
 *                           a second tail [12, 16) inserted
 *   period ends             [0, 4), [6, 10), [12, 16) in the tree
 */
#include <errno.h>
#include <stdlib.h>

#include "mirror/mirror.h"
#include "sys/debug.h"

static bool region_invalidate(struct umn_interval *sub,
			      const struct umn_range *range,
			      unsigned long cur_seq);
static void region_release(struct umn_interval *sub);

static const struct umn_interval_ops region_ops = {
	.invalidate = region_invalidate,
	.release = region_release,
};

static uintptr_t max_u(uintptr_t a, uintptr_t b) { return a > b ? a : b; }
static uintptr_t min_u(uintptr_t a, uintptr_t b) { return a < b ? a : b; }

static void unlink_locked(struct region *r)
{
	struct region **p = &r->m->regions;

	while (*p != r)
		p = &(*p)->next;
	*p = r->next;
	r->next = NULL;
	r->m->st.regions--;
}

/* Link a pooled region as LIVE over [start, end) and insert it. */
static int region_add_locked(struct umn_mirror *m, struct region *r,
			     uintptr_t start, uintptr_t end, bool checked)
{
	int err = umn_interval_insert(&r->sub, m->mm, start, end - start,
				      &region_ops);

	if (err)
		return err;
	r->start = start;
	r->end = end;
	r->checked = checked;
	r->state = REGION_LIVE;
	r->next = m->regions;
	m->regions = r;
	m->st.regions++;
	return 0;
}

static struct region *pool_take_locked(struct umn_mirror *m)
{
	struct region *r = m->pool;

	if (r)
		m->pool = r->next;
	return r;
}

/*
 * A LIVE region is inserted (or its insert is deferred) and neither put
 * nor removed: only this file and umn_mirror_free() put or remove one, and
 * they make it DEAD first, under the lock.  @start < @end lie in its range,
 * which lies in the address space.  So the update cannot fail; in the child
 * of a fork, where the space forgot it, nothing gets this far (-ESTALE).
 */
static void trim_locked(struct region *r, uintptr_t start, uintptr_t end)
{
	int err = umn_interval_update(&r->sub, start, end - start);

	UMN_BUG_ON(err);
	r->start = start;
	r->end = end;
	r->m->st.updated++;
}

static void region_split_locked(struct region *r, uintptr_t lo, uintptr_t hi)
{
	struct umn_mirror *m = r->m;
	struct region *tail = r->checked ? pool_take_locked(m) : NULL;

	if (tail && region_add_locked(m, tail, hi, r->end, true) == 0) {
		trim_locked(r, r->start, lo);
		m->st.splits++;
		return;
	}
	if (tail) {
		tail->next = m->pool;
		m->pool = tail;
	}
	if (lo - r->start >= r->end - hi) {
		umn__mirror_zap_locked(m, hi, r->end);
		trim_locked(r, r->start, lo);
	} else {
		umn__mirror_zap_locked(m, r->start, lo);
		trim_locked(r, hi, r->end);
	}
}

/*
 * As for trim_locked(): a LIVE region made DEAD by the caller, whose ops
 * have ->release.  Inside ->invalidate() the release waits for the end of
 * the walks; outside, it may run before the put returns, so no mirror lock
 * may be held then.
 */
static void region_put(struct region *r)
{
	int err = umn_interval_put(&r->sub);

	UMN_BUG_ON(err);
}

/* @lo, @hi: the overlap of the range unmapped with [r->start, r->end). */
static void region_unmap_locked(struct region *r, uintptr_t lo, uintptr_t hi)
{
	if (lo == r->start && hi == r->end) {
		unlink_locked(r);
		r->state = REGION_DEAD;
		region_put(r);
		r->m->st.puts++;
	} else if (lo == r->start) {
		trim_locked(r, hi, r->end);
	} else if (hi == r->end) {
		trim_locked(r, r->start, lo);
	} else {
		region_split_locked(r, lo, hi);
	}
}

/*
 * Unmap [@lo, @hi) from every LIVE region it overlaps, not just from the
 * one whose walk this is: @lo, @hi lie in that region's walk range, which
 * covers the regions split from it in this period (their inserts wait for
 * the end of the period, so no walk of it reaches them).  Regions split or
 * put here stay off the part of the list still to visit: a split tail is
 * pushed on the head and lies past @hi anyway.
 */
static void mirror_unmap_locked(struct umn_mirror *m, uintptr_t lo,
				uintptr_t hi)
{
	struct region *q, *next;

	for (q = m->regions; q; q = next) {
		next = q->next;
		if (q->start < hi && lo < q->end)
			region_unmap_locked(q, max_u(lo, q->start),
					    min_u(hi, q->end));
	}
}

static bool region_invalidate(struct umn_interval *sub,
			      const struct umn_range *range,
			      unsigned long cur_seq)
{
	struct region *r = (struct region *)sub;
	struct umn_mirror *m = r->m;
	uintptr_t lo, hi;

	if (umn__mirror_stale(m))
		return true; /* a space the child did not start over */
	if (range->flags & UMN_RANGE_BLOCKABLE)
		umn__mirror_lock(m);
	else if (!umn__mirror_trylock(m))
		return false;
	umn_set_seq(sub, cur_seq);
	m->st.invalidations++;
	/*
	 * The pages of the range: the kernel unmaps, clears and re-protects
	 * whole pages, and a range may end (munmap's length, an mremap that
	 * shrinks to a length that is not a page multiple) or begin inside
	 * one.  Trimmed to the bound itself, a region would keep the rest
	 * of a page that is gone, and its bounds would not be pages.
	 *
	 * Then the walk range: what this walk reaches through @sub.  Its
	 * asked range, and those of the regions split from it since the
	 * period began, lie inside it (updates only ever shrink a region);
	 * all are whole pages, so the rounding reaches no further.
	 */
	lo = max_u(range->start & ~(m->page - 1), umn_interval_start(sub));
	hi = range->end > UINTPTR_MAX - (m->page - 1)
		     ? UINTPTR_MAX
		     : (range->end + m->page - 1) & ~(m->page - 1);
	hi = min_u(hi, umn_interval_end(sub));
	if (lo < hi) {
		umn__mirror_zap_locked(m, lo, hi);
		if (range->event == UMN_EVENT_UNMAP ||
		    range->event == UMN_EVENT_REMAP)
			mirror_unmap_locked(m, lo, hi);
	}
	umn__mirror_unlock(m);
	return true;
}

static void region_release(struct umn_interval *sub)
{
	struct region *r = (struct region *)sub;
	struct umn_mirror *m = r->m;

	if (umn__mirror_stale(m))
		return;
	umn__mirror_lock(m);
	r->state = REGION_FREE;
	r->gen++;
	r->next = m->pool;
	m->pool = r;
	m->st.released++;
	umn__mirror_unlock(m);
}

/* The LIVE region whose range holds @addr, or NULL. */
struct region *umn__mirror_region_find_locked(struct umn_mirror *m,
					      uintptr_t addr)
{
	struct region *r;

	for (r = m->regions; r; r = r->next)
		if (r->start <= addr && addr < r->end)
			return r;
	return NULL;
}

/* Keep two regions in the pool: one for a fault, one for a split. */
int umn__mirror_region_prealloc(struct umn_mirror *m)
{
	for (;;) {
		struct region *r;
		int pooled = 0;

		umn__mirror_lock(m);
		for (r = m->pool; r && pooled < 2; r = r->next)
			pooled++;
		umn__mirror_unlock(m);
		if (pooled >= 2)
			return 0;
		r = calloc(1, sizeof(*r));
		if (!r)
			return -ENOMEM;
		r->m = m;
		umn__mirror_lock(m);
		r->all = m->all_regions;
		m->all_regions = r;
		r->next = m->pool;
		m->pool = r;
		umn__mirror_unlock(m);
	}
}

/* region_add_locked() for fault.c, which owns the rest of the fault. */
int umn__mirror_region_add_locked(struct umn_mirror *m, uintptr_t start,
				  uintptr_t end, struct region **out)
{
	struct region *r = pool_take_locked(m);
	int err;

	if (!r)
		return -EAGAIN;
	err = region_add_locked(m, r, start, end, false);
	if (err) {
		r->next = m->pool;
		m->pool = r;
		return err;
	}
	m->st.inserted++;
	*out = r;
	return 0;
}

/*
 * Drop a region from a device fault if it is still the same LIVE one (and
 * unchecked, unless @checked_too); put with no lock held.
 */
void umn__mirror_region_drop(struct umn_mirror *m, struct region *r,
			     unsigned long gen, bool checked_too)
{
	bool put;

	umn__mirror_lock(m);
	put = r->gen == gen && r->state == REGION_LIVE &&
	      (checked_too || !r->checked);
	if (put) {
		umn__mirror_zap_locked(m, r->start, r->end);
		unlink_locked(r);
		r->state = REGION_DEAD;
		m->st.puts++;
	}
	umn__mirror_unlock(m);
	if (put)
		region_put(r);
}

/*
 * From a device fault, after its read_begin: [@lo, @hi) is the mapping
 * that holds the fault's page in /proc/self/maps.  Clip the LIVE region to
 * it, which checks it.  Its entries outside are zapped (none should be
 * there: a fault installs only through a region the maps showed mapped).
 * If an invalidation trimmed the page out meanwhile, leave it: the fault
 * looks again.
 */
void umn__mirror_region_clip_locked(struct region *r, uintptr_t page,
				    uintptr_t lo, uintptr_t hi)
{
	lo = max_u(lo, r->start);
	hi = min_u(hi, r->end);
	if (page < lo || page >= hi)
		return;
	if (lo != r->start || hi != r->end) {
		umn__mirror_zap_locked(r->m, r->start, lo);
		umn__mirror_zap_locked(r->m, hi, r->end);
		trim_locked(r, lo, hi);
	}
	r->checked = true;
}
