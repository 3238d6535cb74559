/* SPDX-License-Identifier: MIT */
/*
 * LRU limits: when the cache keeps more regions (max_regions) or more bytes
 * (max_bytes) than allowed, unused regions are evicted, least recently used
 * first (a clock: a region used since the hand last passed gets a second
 * chance); held regions are never evicted, and are evicted at their put if
 * the cache is still over a limit then.
 */
#include "rcache/helpers.h"

static void open_limited(struct env *e, size_t regions, size_t bytes)
{
	struct umn_rcache_config cfg = {
		.max_regions = regions,
		.max_bytes = bytes,
	};

	env_open_cfg(e, &cfg);
}

static void test_max_regions_evicts_oldest(void **state)
{
	struct env e;
	struct umn_region *a, *b, *c;

	open_limited(&e, 2, 0);
	a = get_ok(&e, 0, 1);
	put_ok(&e, a);
	b = get_ok(&e, 10, 1);
	put_ok(&e, b);
	c = get_ok(&e, 20, 1);
	put_ok(&e, c);
	assert_false(umn_region_valid(a));
	assert_true(umn_region_valid(b));
	assert_true(umn_region_valid(c));
	struct umn_rcache_stats st = stats(&e);

	assert_int_equal(st.regions, 2);
	assert_int_equal(st.evicted, 1);
	assert_int_equal(atomic_load(&e.f.deregs), 1);
	env_close(&e);
}

static void test_recent_use_survives(void **state)
{
	struct env e;
	struct umn_region *a, *b, *c;

	open_limited(&e, 2, 0);
	a = get_ok(&e, 0, 1);
	put_ok(&e, a);
	b = get_ok(&e, 10, 1);
	put_ok(&e, b);
	put_ok(&e, get_ok(&e, 0, 1));   /* a used again: b is older now */
	c = get_ok(&e, 20, 1);
	put_ok(&e, c);
	assert_true(umn_region_valid(a));
	assert_false(umn_region_valid(b));
	assert_true(umn_region_valid(c));
	env_close(&e);
}

static void test_max_bytes(void **state)
{
	struct env e;
	struct umn_region *a, *b, *c;

	open_limited(&e, 0, 4 * pg());
	a = get_ok(&e, 0, 2);
	put_ok(&e, a);
	b = get_ok(&e, 10, 2);
	put_ok(&e, b);
	assert_int_equal(stats(&e).bytes, 4 * pg());
	c = get_ok(&e, 20, 1);          /* 5 pages: one region must go */
	put_ok(&e, c);
	assert_false(umn_region_valid(a));
	assert_true(umn_region_valid(b));
	struct umn_rcache_stats st = stats(&e);

	assert_int_equal(st.bytes, 3 * pg());
	assert_int_equal(st.evicted, 1);
	env_close(&e);
}

static void test_held_never_evicted(void **state)
{
	struct env e;
	struct umn_region *a, *b;

	open_limited(&e, 1, 0);
	a = get_ok(&e, 0, 1);
	b = get_ok(&e, 10, 1);
	/* Over the limit, but both are held. */
	assert_true(umn_region_valid(a));
	assert_true(umn_region_valid(b));
	assert_int_equal(stats(&e).regions, 2);
	put_ok(&e, a);                  /* unused and over: evicted now */
	assert_false(umn_region_valid(a));
	assert_int_equal(atomic_load(&e.f.deregs), 1);
	put_ok(&e, b);                  /* within the limit: stays */
	assert_true(umn_region_valid(b));
	assert_int_equal(stats(&e).regions, 1);
	env_close(&e);
}

static void test_region_bigger_than_limit(void **state)
{
	struct env e;
	struct umn_region *r;

	open_limited(&e, 0, pg());
	r = get_ok(&e, 0, 4);           /* held: usable though too big */
	assert_int_equal(atomic_load(&e.f.regs), 1);
	put_ok(&e, r);
	assert_false(umn_region_valid(r));
	assert_int_equal(stats(&e).regions, 0);
	env_close(&e);
}

static void test_many_at_the_limit(void **state)
{
	struct env e;

	open_limited(&e, 64, 0);
	for (long i = 0; i < 1000; i++)
		put_ok(&e, get_ok(&e, 2 * i, 1));
	struct umn_rcache_stats st = stats(&e);

	assert_int_equal(st.regions, 64);
	assert_int_equal(st.evicted, 1000 - 64);
	assert_int_equal(atomic_load(&e.f.live), 64);
	/* The last 64 are the ones kept. */
	for (long i = 1000 - 64; i < 1000; i++)
		put_ok(&e, get_ok(&e, 2 * i, 1));
	assert_int_equal(atomic_load(&e.f.regs), 1000);
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_max_regions_evicts_oldest),
		cmocka_unit_test(test_recent_use_survives),
		cmocka_unit_test(test_max_bytes),
		cmocka_unit_test(test_held_never_evicted),
		cmocka_unit_test(test_region_bigger_than_limit),
		cmocka_unit_test(test_many_at_the_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
