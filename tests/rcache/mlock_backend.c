/* SPDX-License-Identifier: MIT */
/*
 * The mlock backend on real pages, in a space the test drives: a region's
 * pages are locked from ->reg to ->dereg (the process's VmLck says so),
 * a deregistered region never unlocks pages another registered region
 * still covers (locks do not nest in Linux), and a failed mlock (a hole in
 * the range) is returned with nothing left locked.  Needs RLIMIT_MEMLOCK
 * of at least 64 KiB (the default is 8 MiB) or CAP_IPC_LOCK; skips
 * otherwise.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "rcache/helpers.h"

#define PAGES 16

static char *mem;


struct mlenv {
	struct umn_mm *mm;
	struct umn_rcache *rc;
	long base;      /* VmLck before */
};

static void ml_open(struct mlenv *e)
{
	struct umn_rcache_config cfg = { .ops = umn_rcache_mlock_ops() };

	e->mm = umn_mm_new();
	assert_non_null(e->mm);
	cfg.mm = e->mm;
	assert_int_equal(umn_rcache_new(&cfg, &e->rc), 0);
	e->base = locked();
}

static void ml_close(struct mlenv *e)
{
	assert_int_equal(umn_rcache_free(e->rc), 0);
	assert_int_equal(umn_mm_free(e->mm), 0);
	assert_int_equal(locked(), e->base);
}

static struct umn_region *ml_get(struct mlenv *e, long page, long pages)
{
	struct umn_region *r;

	assert_int_equal(umn_rcache_get(e->rc, mem + page * (long)pg(),
					(size_t)pages * pg(), &r), 0);
	return r;
}

static long pages_locked(struct mlenv *e)
{
	return (locked() - e->base) / (long)pg();
}

static int setup(void **state)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && geteuid() != 0 &&
	    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 64 * 1024) {
		fprintf(stderr, "skipped: RLIMIT_MEMLOCK is %lu bytes, "
			"the test locks up to 64 KiB\n",
			(unsigned long)rl.rlim_cur);
		exit(77);
	}
	mem = mmap(NULL, PAGES * pg(), PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);
	memset(mem, 1, PAGES * pg());
	return 0;
}

static int teardown(void **state)
{
	munmap(mem, PAGES * pg());
	return 0;
}

static void test_locked_from_reg_to_dereg(void **state)
{
	struct mlenv e;
	struct umn_region *r;

	ml_open(&e);
	r = ml_get(&e, 0, 4);
	assert_int_equal(pages_locked(&e), 4);
	assert_int_equal(umn_rcache_put(e.rc, r), 0);
	assert_int_equal(pages_locked(&e), 4);   /* cached: still pinned */
	assert_int_equal(umn_rcache_flush(e.rc), 0);
	assert_int_equal(pages_locked(&e), 0);
	ml_close(&e);
}

static void test_merge_keeps_pages_locked(void **state)
{
	struct mlenv e;
	struct umn_region *a, *m;

	ml_open(&e);
	a = ml_get(&e, 0, 2);
	m = ml_get(&e, 1, 3);                    /* [0, 4), replaces a */
	assert_int_equal(pages_locked(&e), 4);
	assert_int_equal(umn_rcache_put(e.rc, a), 0); /* a deregistered */
	assert_int_equal(pages_locked(&e), 4);   /* m still covers it */
	assert_int_equal(umn_rcache_put(e.rc, m), 0);
	assert_int_equal(umn_rcache_flush(e.rc), 0);
	assert_int_equal(pages_locked(&e), 0);
	ml_close(&e);
}

/*
 * The replaced region is unused, so the merge deregisters it at once: its
 * ->dereg must see the new region registered, or it unlocks the pages the
 * new one has just locked.
 */
static void test_merge_unused_keeps_pages_locked(void **state)
{
	struct mlenv e;
	struct umn_region *a, *m;

	ml_open(&e);
	a = ml_get(&e, 0, 2);
	assert_int_equal(umn_rcache_put(e.rc, a), 0);
	m = ml_get(&e, 1, 3);                    /* [0, 4), replaces a */
	assert_int_equal(umn_region_start(m), (uintptr_t)mem);
	assert_int_equal(umn_region_end(m), (uintptr_t)(mem + 4 * pg()));
	assert_int_equal(pages_locked(&e), 4);
	assert_int_equal(umn_rcache_put(e.rc, m), 0);
	assert_int_equal(umn_rcache_flush(e.rc), 0);
	assert_int_equal(pages_locked(&e), 0);
	ml_close(&e);
}

static void test_old_region_dereg_after_new(void **state)
{
	struct mlenv e;
	struct umn_region *old, *n;

	ml_open(&e);
	old = ml_get(&e, 4, 2);
	/* As if the pages were unmapped and mapped again: a new region over
	 * the same addresses while the old one is still held. */
	assert_int_equal(umn_invalidate(e.mm, (uintptr_t)(mem + 4 * pg()),
					(uintptr_t)(mem + 6 * pg()),
					UMN_EVENT_UNMAP), 0);
	n = ml_get(&e, 4, 3);
	assert_ptr_not_equal(n, old);
	assert_int_equal(pages_locked(&e), 3);
	assert_int_equal(umn_rcache_put(e.rc, old), 0);
	assert_int_equal(pages_locked(&e), 3);   /* n's pages stay locked */
	assert_int_equal(umn_rcache_put(e.rc, n), 0);
	assert_int_equal(umn_rcache_flush(e.rc), 0);
	assert_int_equal(pages_locked(&e), 0);
	ml_close(&e);
}

static void test_hole_fails_nothing_locked(void **state)
{
	struct mlenv e;
	struct umn_region *r = (struct umn_region *)1;
	char *p = mmap(NULL, 3 * pg(), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	assert_int_equal(munmap(p + pg(), pg()), 0);
	ml_open(&e);
	assert_int_equal(umn_rcache_get(e.rc, p, 3 * pg(), &r), -ENOMEM);
	assert_null(r);
	assert_int_equal(pages_locked(&e), 0);
	struct umn_rcache_stats st;

	assert_int_equal(umn_rcache_stats(e.rc, &st), 0);
	assert_int_equal(st.regions, 0);
	assert_int_equal(st.reg_errors, 1);
	ml_close(&e);
	munmap(p, pg());
	munmap(p + 2 * pg(), pg());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_locked_from_reg_to_dereg),
		cmocka_unit_test(test_merge_keeps_pages_locked),
		cmocka_unit_test(test_merge_unused_keeps_pages_locked),
		cmocka_unit_test(test_old_region_dereg_after_new),
		cmocka_unit_test(test_hole_fails_nothing_locked),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
