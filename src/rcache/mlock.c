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
 *
 * Raw system calls, not libc's: the sanitizers replace mlock and munlock
 * with no-ops (their shadow memory must not be locked), which would make
 * the backend a silent no-op exactly where it is tested.
 */
#include "rcache/cache.h"
#include "sys/raw_syscall.h"

static int sys_mlock(uintptr_t a, uintptr_t len)
{
	return -umn__sys_error(umn__sys2(SYS_mlock, a, len));
}

static void sys_munlock(uintptr_t a, uintptr_t len)
{
	umn__sys2(SYS_munlock, a, len); /* ENOMEM: unmapped since, fine */
}

/* munlock [a, e) except what other registered regions cover. */
static void mlock_unlock_gaps(struct umn_rcache *rc, struct umn_region *r,
			      uintptr_t a, uintptr_t e)
{
	uintptr_t cs, ce;

	while (a < e) {
		if (!umn__rcache_next_registered(rc, r, a, e, &cs, &ce)) {
			sys_munlock(a, e - a);
			return;
		}
		if (cs > a)
			sys_munlock(a, cs - a);
		if (ce > a)
			a = ce;
	}
}

static int mlock_reg(struct umn_rcache *rc, struct umn_region *r)
{
	uintptr_t s = umn_region_start(r), e = umn_region_end(r);
	int err = sys_mlock(s, e - s);

	if (err)
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
