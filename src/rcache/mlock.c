// SPDX-License-Identifier: MIT
/*
 * mlock — the simplest real backend: a region is its pages pinned in RAM.
 *
 * ->reg is mlock(2) of the region.  Linux keeps one "locked" flag per page
 * range, not a count, so ->dereg must not munlock pages that another
 * region of the cache still has registered: a region merged into a larger
 * one is deregistered while the larger one lives, and a region whose
 * memory was unmapped may be deregistered after a new region locked the
 * memory mapped at the same address since.  ->dereg therefore unlocks only
 * the gaps between the other registered regions (the cache calls it under
 * its mutex, so that set is stable).  A failed mlock may have locked part
 * of the range before it met a hole; that part is undone the same way.
 */
#include <errno.h>
#include <sys/mman.h>

#include "rcache/cache.h"

/* munlock [a, e) except what other registered regions cover. */
static void mlock_unlock_gaps(struct umn_rcache *rc, struct umn_region *r,
			      uintptr_t a, uintptr_t e)
{
	uintptr_t cs, ce;

	while (a < e) {
		if (!umn__rcache_next_registered(rc, r, a, e, &cs, &ce)) {
			munlock((void *)a, e - a); /* ENOMEM: unmapped, fine */
			return;
		}
		if (cs > a)
			munlock((void *)a, cs - a);
		if (ce > a)
			a = ce;
	}
}

static int mlock_reg(struct umn_rcache *rc, struct umn_region *r)
{
	uintptr_t s = umn_region_start(r), e = umn_region_end(r);

	if (!mlock((void *)s, e - s))
		return 0;
	int err = -errno;

	mlock_unlock_gaps(rc, r, s, e);
	return err;
}

static void mlock_dereg(struct umn_rcache *rc, struct umn_region *r)
{
	mlock_unlock_gaps(rc, r, umn_region_start(r), umn_region_end(r));
}

static const struct umn_rcache_ops mlock_ops = {
	.reg = mlock_reg,
	.dereg = mlock_dereg,
};

const struct umn_rcache_ops *umn_rcache_mlock_ops(void)
{
	return &mlock_ops;
}
