/* SPDX-License-Identifier: MIT */
/*
 * Hits and merging: a get inside a cached region is a hit (no ->reg); a
 * get overlapping or touching valid regions registers one region over
 * their union, and the regions it replaces are deregistered once unused,
 * while their holders keep using them until put; merging stops at the
 * config's max_region_bytes.
 */
#include "rcache/helpers.h"

static void test_hit_needs_no_reg(void **state)
{
	struct env e;
	struct umn_region *r, *h;

	env_open(&e);
	r = get_ok(&e, 10, 4);
	h = get_ok(&e, 11, 2);  /* inside: a hit, a second reference */
	assert_ptr_equal(h, r);
	put_ok(&e, h);
	put_ok(&e, r);
	/* Unused now, still cached: hits again, byte ranges too. */
	assert_int_equal(umn_rcache_get(e.rc, (const char *)at(13) + 100, 9,
					&h), 0);
	assert_ptr_equal(h, r);
	put_ok(&e, h);
	assert_int_equal(atomic_load(&e.f.regs), 1);
	struct umn_rcache_stats st = stats(&e);

	assert_int_equal(st.regions, 1);
	assert_int_equal(st.bytes, 4 * pg());
	assert_int_equal(st.misses, 1);
	env_close(&e);
}

static void test_overlap_merges(void **state)
{
	struct env e;
	struct umn_region *a, *b, *m;

	env_open(&e);
	a = get_ok(&e, 0, 4);
	b = get_ok(&e, 8, 4);
	put_ok(&e, a);
	put_ok(&e, b);
	/* [2, 10) overlaps both: one region [0, 12) replaces them. */
	m = get_ok(&e, 2, 8);
	assert_int_equal(umn_region_start(m), (uintptr_t)at(0));
	assert_int_equal(umn_region_end(m), (uintptr_t)at(12));
	assert_false(umn_region_valid(a));
	assert_false(umn_region_valid(b));
	/* The replaced ones were unused: deregistered already. */
	assert_int_equal(atomic_load(&e.f.regs), 3);
	assert_int_equal(atomic_load(&e.f.deregs), 2);
	struct umn_rcache_stats st = stats(&e);

	assert_int_equal(st.regions, 1);
	assert_int_equal(st.merged, 2);
	/* Any part of the union is a hit now. */
	assert_ptr_equal(get_ok(&e, 0, 12), m);
	put_ok(&e, m);
	put_ok(&e, m);
	env_close(&e);
}

static void test_adjacent_merges(void **state)
{
	struct env e;
	struct umn_region *a, *b, *m;

	env_open(&e);
	a = get_ok(&e, 0, 2);
	b = get_ok(&e, 3, 2);
	put_ok(&e, a);
	put_ok(&e, b);
	/* Page 2 touches both: [0, 5) in one registration. */
	m = get_ok(&e, 2, 1);
	assert_int_equal(umn_region_start(m), (uintptr_t)at(0));
	assert_int_equal(umn_region_end(m), (uintptr_t)at(5));
	put_ok(&e, m);
	/* A region only touching the union's end joins it too. */
	m = get_ok(&e, 5, 1);
	assert_int_equal(umn_region_start(m), (uintptr_t)at(0));
	assert_int_equal(umn_region_end(m), (uintptr_t)at(6));
	put_ok(&e, m);
	assert_int_equal(stats(&e).regions, 1);
	assert_int_equal(atomic_load(&e.f.live), 1);
	env_close(&e);
}

static void test_merge_many(void **state)
{
	struct env e;
	struct umn_region *m;

	env_open(&e);
	for (long i = 0; i < 100; i++)
		put_ok(&e, get_ok(&e, 3 * i, 1)); /* gaps of two pages */
	assert_int_equal(stats(&e).regions, 100);
	m = get_ok(&e, 1, 296);
	assert_int_equal(umn_region_start(m), (uintptr_t)at(0));
	assert_int_equal(umn_region_end(m), (uintptr_t)at(298));
	assert_int_equal(stats(&e).regions, 1);
	assert_int_equal(atomic_load(&e.f.live), 1);
	put_ok(&e, m);
	env_close(&e);
}

static void env_open_max(struct env *e, long pages)
{
	struct umn_rcache_config cfg = {
		.max_region_bytes = (size_t)pages * pg(),
	};

	env_open_cfg(e, &cfg);
}

static void assert_region(struct umn_region *r, long first, long end)
{
	assert_int_equal(umn_region_start(r), (uintptr_t)at(first));
	assert_int_equal(umn_region_end(r), (uintptr_t)at(end));
}

/* Merging stops where the region would pass max_region_bytes. */
static void test_max_region_stops_merging(void **state)
{
	struct env e;
	struct umn_region *r;

	env_open_max(&e, 4);
	put_ok(&e, get_ok(&e, 0, 2));
	r = get_ok(&e, 2, 2);           /* touches [0, 2): 4 pages, fits */
	assert_region(r, 0, 4);
	put_ok(&e, r);
	r = get_ok(&e, 4, 1);           /* [0, 5) would not fit: alone */
	assert_region(r, 4, 5);
	put_ok(&e, r);
	assert_int_equal(stats(&e).regions, 2);
	r = get_ok(&e, 5, 1);           /* joins [4, 5) */
	assert_region(r, 4, 6);
	put_ok(&e, r);
	/* Overlaps both: [4, 6) fits, [0, 4) does not and is replaced. */
	r = get_ok(&e, 3, 2);
	assert_region(r, 3, 6);
	put_ok(&e, r);
	assert_int_equal(stats(&e).regions, 1);
	/* Longer than the limit: registered as asked, merged with nothing. */
	put_ok(&e, get_ok(&e, 20, 1));
	r = get_ok(&e, 14, 6);
	assert_region(r, 14, 20);
	put_ok(&e, r);
	assert_int_equal(stats(&e).regions, 3);
	env_close(&e);
}

static void count_bytes(struct fake *f, struct umn_region *r)
{
	*(size_t *)f->hook_arg += umn_region_end(r) - umn_region_start(r);
}

/*
 * Adjacent gets, one page each, going up: without a limit each miss
 * registers the whole run again (n^2 / 2 pages for n gets); with it, at
 * most the limit per miss.
 */
static void test_adjacent_gets_bounded(void **state)
{
	struct env e;
	size_t bytes = 0;
	long n = 256;

	env_open_max(&e, 8);
	e.f.hook_arg = &bytes;
	e.f.reg_hook = count_bytes;
	for (long i = 0; i < n; i++) {
		struct umn_region *r = get_ok(&e, i, 1);

		assert_true(umn_region_end(r) - umn_region_start(r) <=
			    8 * pg());
		put_ok(&e, r);
	}
	assert_int_equal(atomic_load(&e.f.regs), n);
	assert_true(bytes <= (size_t)n * 8 * pg());
	env_close(&e);
}

static void test_merged_while_held(void **state)
{
	struct env e;
	struct umn_region *a, *m;

	env_open(&e);
	a = get_ok(&e, 4, 2);
	m = get_ok(&e, 5, 4);   /* overlaps a, which is held */
	assert_ptr_not_equal(m, a);
	assert_int_equal(umn_region_start(m), (uintptr_t)at(4));
	assert_int_equal(umn_region_end(m), (uintptr_t)at(9));
	/* a is replaced: not returned again, but still registered for its
	 * holder. */
	assert_false(umn_region_valid(a));
	assert_int_equal(atomic_load(&fdata(a)->registered), 1);
	assert_ptr_equal(get_ok(&e, 4, 1), m);
	put_ok(&e, m);
	assert_int_equal(atomic_load(&e.f.deregs), 0);
	put_ok(&e, a);          /* the last reference: deregistered here */
	assert_int_equal(atomic_load(&e.f.deregs), 1);
	assert_int_equal(umn_rcache_put(e.rc, a), -EALREADY);
	put_ok(&e, m);
	env_close(&e);
}

static void test_flush(void **state)
{
	struct env e;
	struct umn_region *held, *r;

	env_open(&e);
	held = get_ok(&e, 0, 1);
	put_ok(&e, get_ok(&e, 10, 1));
	put_ok(&e, get_ok(&e, 20, 1));
	assert_int_equal(umn_rcache_flush(e.rc), 0);
	/* Unused ones are gone, the held one stays, valid. */
	struct umn_rcache_stats st = stats(&e);

	assert_int_equal(st.regions, 1);
	assert_int_equal(st.evicted, 2);
	assert_int_equal(atomic_load(&e.f.live), 1);
	assert_true(umn_region_valid(held));
	r = get_ok(&e, 10, 1);  /* a miss again */
	assert_int_equal(atomic_load(&e.f.regs), 4);
	put_ok(&e, r);
	put_ok(&e, held);
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_needs_no_reg),
		cmocka_unit_test(test_overlap_merges),
		cmocka_unit_test(test_adjacent_merges),
		cmocka_unit_test(test_merge_many),
		cmocka_unit_test(test_max_region_stops_merging),
		cmocka_unit_test(test_adjacent_gets_bounded),
		cmocka_unit_test(test_merged_while_held),
		cmocka_unit_test(test_flush),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
