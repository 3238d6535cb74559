/* SPDX-License-Identifier: MIT */
/*
 * The cache over the process's own space (umn_mm_process()), with the mlock
 * backend and real memory: munmap, free, madvise and mprotect of cached
 * memory invalidate its region inside the call, the region's ->dereg runs
 * later, outside it (the backend counts any ->dereg made while the test is
 * inside such a call), and memory mapped again at the same address gets a
 * new registration.
 *
 * Not under ThreadSanitizer: the monitor cannot run there (glibc's thread
 * exit calls madvise after TSan has torn the thread down).  The free and
 * malloc test needs glibc's allocator, so it also skips under ASan.  Locks
 * up to 1 MiB: skips below that RLIMIT_MEMLOCK (the default is 8 MiB).
 */
#include "monitor/helpers.h"
#include "rcache/helpers.h"

#include <sys/resource.h>


/* Set by the test around the libc call that should invalidate. */
static _Thread_local int in_call;
static atomic_int regs, deregs, dereg_in_call;

static int checked_reg(struct umn_rcache *rc, struct umn_region *r)
{
	int err = umn_rcache_mlock_ops()->reg(rc, r);

	if (!err)
		atomic_fetch_add(&regs, 1);
	return err;
}

static void checked_dereg(struct umn_rcache *rc, struct umn_region *r)
{
	if (in_call)
		atomic_fetch_add(&dereg_in_call, 1);
	atomic_fetch_add(&deregs, 1);
	umn_rcache_mlock_ops()->dereg(rc, r);
}

static const struct umn_rcache_ops checked_ops = {
	.reg = checked_reg,
	.dereg = checked_dereg,
};


static struct umn_rcache *open_cache(unsigned flags)
{
	struct umn_rcache_config cfg = {
		.mm = process_space(), .ops = &checked_ops, .flags = flags,
	};
	struct umn_rcache *rc;

	atomic_store(&regs, 0);
	atomic_store(&deregs, 0);
	atomic_store(&dereg_in_call, 0);
	assert_int_equal(umn_rcache_new(&cfg, &rc), 0);
	return rc;
}

static void close_cache(struct umn_rcache *rc, long base)
{
	assert_int_equal(umn_rcache_free(rc), 0);
	assert_int_equal(atomic_load(&regs), atomic_load(&deregs));
	assert_int_equal(atomic_load(&dereg_in_call), 0);
	assert_int_equal(locked(), base);
}

static struct umn_region *get(struct umn_rcache *rc, const void *p,
			      size_t len)
{
	struct umn_region *r;

	assert_int_equal(umn_rcache_get(rc, p, len, &r), 0);
	assert_true(umn_region_valid(r));
	return r;
}

static void test_munmap_while_held(void **state)
{
	if (UNDER_TSAN)
		skip();
	long base = locked();
	struct umn_rcache *rc = open_cache(0);
	char *p = map_pages(4, 'a');
	struct umn_region *r = get(rc, p, 4 * PG);

	assert_int_equal(locked() - base, 4 * PG);
	in_call = 1;
	assert_int_equal(munmap(p, 4 * PG), 0);
	in_call = 0;
	assert_false(umn_region_valid(r));
	assert_int_equal(atomic_load(&deregs), 0);
	assert_int_equal(umn_rcache_put(rc, r), 0); /* deregistered here */
	assert_int_equal(atomic_load(&deregs), 1);
	close_cache(rc, base);
}

static void test_munmap_then_map_again(void **state)
{
	if (UNDER_TSAN)
		skip();
	long base = locked();
	struct umn_rcache *rc = open_cache(0);
	char *p = map_pages(4, 'a');
	struct umn_region *r = get(rc, p, 4 * PG), *n;

	assert_int_equal(umn_rcache_put(rc, r), 0);
	in_call = 1;
	assert_int_equal(munmap(p + PG, PG), 0);   /* part of it */
	in_call = 0;
	assert_false(umn_region_valid(r));
	/* New pages at the same address. */
	char *q = mmap(p + PG, PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	assert_ptr_equal(q, p + PG);
	n = get(rc, p, 4 * PG);  /* maybe r's memory again: FREE, reused */
	assert_int_equal(atomic_load(&regs), 2);
	assert_int_equal(atomic_load(&deregs), 1);
	assert_int_equal(locked() - base, 4 * PG);
	assert_int_equal(umn_rcache_put(rc, n), 0);
	close_cache(rc, base);
	munmap(p, 4 * PG);
}

static void test_free_then_malloc(void **state)
{
	if (UNDER_SANITIZER)
		skip(); /* the sanitizers' allocators never munmap here */
	long base = locked();
	struct umn_rcache *rc = open_cache(0);
	size_t len = 1 << 20; /* above the mmap threshold: free munmaps */
	char *a = malloc(len), *b;
	struct umn_region *r, *n;

	assert_non_null(a);
	memset(a, 1, len);
	r = get(rc, a, len);
	assert_int_equal(umn_rcache_put(rc, r), 0);
	in_call = 1;
	free(a);
	in_call = 0;
	assert_false(umn_region_valid(r));
	b = malloc(len);
	assert_non_null(b);
	memset(b, 2, len);
	n = get(rc, b, len);
	assert_int_equal(atomic_load(&regs), 2);
	assert_int_equal(atomic_load(&deregs), 1);
	assert_int_equal(umn_rcache_put(rc, n), 0);
	in_call = 1;
	free(b);
	in_call = 0;
	close_cache(rc, base);
}

static void test_madvise_and_mprotect(void **state)
{
	if (UNDER_TSAN)
		skip();
	long base = locked();
	struct umn_rcache *rc = open_cache(0);
	char *p = map_pages(4, 'a');
	struct umn_region *r = get(rc, p, 4 * PG);

	assert_int_equal(umn_rcache_put(rc, r), 0);
	in_call = 1;
	/* Locked pages refuse MADV_DONTNEED, but the monitor has already
	 * invalidated the range by then: a spurious invalidation. */
	madvise(p, PG, MADV_DONTNEED);
	in_call = 0;
	assert_false(umn_region_valid(r));
	r = get(rc, p, 4 * PG);
	assert_int_equal(umn_rcache_put(rc, r), 0);
	in_call = 1;
	assert_int_equal(mprotect(p + 2 * PG, PG, PROT_READ), 0);
	in_call = 0;
	assert_false(umn_region_valid(r));
	close_cache(rc, base);

	/* Kept across protection changes when asked. */
	rc = open_cache(UMN_RCACHE_KEEP_ON_PROTECTION);
	r = get(rc, p, 4 * PG);
	assert_int_equal(umn_rcache_put(rc, r), 0);
	assert_int_equal(mprotect(p + 2 * PG, PG, PROT_READ | PROT_WRITE), 0);
	assert_true(umn_region_valid(r));
	assert_int_equal(munmap(p, 4 * PG), 0);
	assert_false(umn_region_valid(r));
	close_cache(rc, base);
}

static int check_limit(void **state)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && geteuid() != 0 &&
	    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (2ul << 20)) {
		fprintf(stderr, "skipped: RLIMIT_MEMLOCK is %lu bytes, "
			"the test locks up to 1 MiB at a time\n",
			(unsigned long)rl.rlim_cur);
		exit(77);
	}
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_munmap_while_held),
		cmocka_unit_test(test_munmap_then_map_again),
		cmocka_unit_test(test_free_then_malloc),
		cmocka_unit_test(test_madvise_and_mprotect),
	};

	return cmocka_run_group_tests(tests, check_limit, NULL);
}
