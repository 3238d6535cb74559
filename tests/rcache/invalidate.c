/* SPDX-License-Identifier: MIT */
/*
 * Invalidation: an unmap, remap or discard overlapping a region makes it
 * invalid at once (no later get returns it); a protection change too,
 * unless the cache keeps regions across them.  Its ->dereg runs once, after
 * the last put, never inside the invalidation: the fake backend counts any
 * ->dereg made while the test thread is inside umn_invalidate().
 */
#include "rcache/helpers.h"

static void check_event_invalidates(enum umn_event ev)
{
	struct env e;
	struct umn_region *r, *n;

	env_open(&e);
	r = get_ok(&e, 0, 4);
	put_ok(&e, r);
	inval(&e, 3, 1, ev);
	assert_false(umn_region_valid(r));
	/* Not deregistered inside the walk: it waits for a safe point. */
	assert_int_equal(atomic_load(&e.f.deregs), 0);
	struct umn_rcache_stats st = stats(&e);

	assert_int_equal(st.invalidated, 1);
	assert_int_equal(st.regions, 0);
	assert_int_equal(st.pending, 1);
	/* The next get deregisters it and registers the range again. */
	n = get_ok(&e, 0, 4);
	assert_int_equal(atomic_load(&e.f.deregs), 1);
	assert_int_equal(atomic_load(&e.f.regs), 2);
	assert_int_equal(fdata(n)->id, 2);
	put_ok(&e, n);
	assert_int_equal(stats(&e).pending, 0);
	env_close(&e);
}

static void test_unmap(void **state)
{
	check_event_invalidates(UMN_EVENT_UNMAP);
}

static void test_remap(void **state)
{
	check_event_invalidates(UMN_EVENT_REMAP);
}

static void test_clear(void **state)
{
	check_event_invalidates(UMN_EVENT_CLEAR);
}

static void test_protection(void **state)
{
	check_event_invalidates(UMN_EVENT_PROTECTION);
}

static void test_keep_on_protection(void **state)
{
	struct umn_rcache_config cfg = {
		.flags = UMN_RCACHE_KEEP_ON_PROTECTION,
	};
	struct env e;
	struct umn_region *r;

	env_open_cfg(&e, &cfg);
	r = get_ok(&e, 0, 4);
	put_ok(&e, r);
	inval(&e, 0, 4, UMN_EVENT_PROTECTION);
	assert_true(umn_region_valid(r));
	assert_ptr_equal(get_ok(&e, 1, 1), r);
	put_ok(&e, r);
	/* Other events still invalidate. */
	inval(&e, 0, 1, UMN_EVENT_UNMAP);
	assert_false(umn_region_valid(r));
	env_close(&e);
}

static void test_only_overlaps_count(void **state)
{
	struct env e;
	struct umn_region *r;

	env_open(&e);
	r = get_ok(&e, 4, 4);
	put_ok(&e, r);
	inval(&e, 0, 4, UMN_EVENT_UNMAP);   /* ends where r starts */
	inval(&e, 8, 4, UMN_EVENT_UNMAP);   /* starts where r ends */
	assert_true(umn_region_valid(r));
	assert_ptr_equal(get_ok(&e, 4, 4), r);
	put_ok(&e, r);
	assert_int_equal(stats(&e).invalidated, 0);
	env_close(&e);
}

static void test_invalidated_while_held(void **state)
{
	struct env e;
	struct umn_region *r, *n;

	env_open(&e);
	r = get_ok(&e, 0, 2);
	inval(&e, 1, 1, UMN_EVENT_UNMAP);
	/* Never returned again, but still registered for its holder. */
	assert_false(umn_region_valid(r));
	assert_int_equal(atomic_load(&fdata(r)->registered), 1);
	n = get_ok(&e, 0, 2);
	assert_ptr_not_equal(n, r);
	assert_int_equal(atomic_load(&e.f.regs), 2);
	assert_int_equal(atomic_load(&e.f.deregs), 0);
	/* A second invalidation of the held region changes nothing for it. */
	inval(&e, 0, 2, UMN_EVENT_CLEAR);
	assert_false(umn_region_valid(n));
	put_ok(&e, r);          /* its last put: ->dereg, here */
	assert_int_equal(atomic_load(&e.f.deregs), 1);
	assert_int_equal(umn_rcache_put(e.rc, r), -EALREADY);
	put_ok(&e, n);
	assert_int_equal(atomic_load(&e.f.deregs), 2);
	assert_int_equal(atomic_load(&e.f.live), 0);
	env_close(&e);
}

static void test_partial_unmap_of_merged(void **state)
{
	struct env e;
	struct umn_region *a, *b, *m, *n;

	env_open(&e);
	a = get_ok(&e, 0, 3);
	b = get_ok(&e, 5, 3);
	m = get_ok(&e, 0, 8);   /* merges both, which are still held */
	assert_ptr_not_equal(m, a);
	assert_ptr_not_equal(m, b);
	put_ok(&e, a);
	put_ok(&e, b);
	put_ok(&e, m);
	assert_int_equal(atomic_load(&e.f.live), 1);
	/* Unmap a page in the middle: the whole registration goes. */
	inval(&e, 2, 1, UMN_EVENT_UNMAP);
	assert_false(umn_region_valid(m));
	/* What survives is registered anew, without the hole. */
	n = get_ok(&e, 5, 1);
	assert_int_equal(umn_region_start(n), (uintptr_t)at(5));
	assert_int_equal(umn_region_end(n), (uintptr_t)at(6));
	assert_int_equal(atomic_load(&e.f.live), 1);
	put_ok(&e, n);
	assert_int_equal(atomic_load(&e.f.regs), 4);
	assert_int_equal(atomic_load(&e.f.deregs), 3);
	env_close(&e);
}

static void test_safe_points(void **state)
{
	struct env e;
	struct umn_region *held;

	env_open(&e);
	held = get_ok(&e, 100, 1);
	put_ok(&e, get_ok(&e, 0, 1));
	put_ok(&e, get_ok(&e, 10, 1));
	put_ok(&e, get_ok(&e, 20, 1));
	inval(&e, 0, 30, UMN_EVENT_UNMAP);
	assert_int_equal(atomic_load(&e.f.deregs), 0);
	/* A hit elsewhere is a safe point: it deregisters what is due. */
	assert_ptr_equal(get_ok(&e, 100, 1), held);
	assert_int_equal(atomic_load(&e.f.deregs), 3);
	put_ok(&e, held);
	put_ok(&e, held);
	/* So is a put, and flush. */
	put_ok(&e, get_ok(&e, 0, 1));
	inval(&e, 0, 1, UMN_EVENT_UNMAP);
	assert_ptr_equal(get_ok(&e, 100, 1), held);
	assert_int_equal(atomic_load(&e.f.deregs), 4);
	inval(&e, 100, 1, UMN_EVENT_UNMAP);
	put_ok(&e, held);
	assert_int_equal(atomic_load(&e.f.deregs), 5);
	put_ok(&e, get_ok(&e, 0, 1));
	inval(&e, 0, 1, UMN_EVENT_UNMAP);
	assert_int_equal(umn_rcache_flush(e.rc), 0);
	assert_int_equal(atomic_load(&e.f.deregs), 6);
	assert_int_equal(atomic_load(&e.f.live), 0);
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unmap),
		cmocka_unit_test(test_remap),
		cmocka_unit_test(test_clear),
		cmocka_unit_test(test_protection),
		cmocka_unit_test(test_keep_on_protection),
		cmocka_unit_test(test_only_overlaps_count),
		cmocka_unit_test(test_invalidated_while_held),
		cmocka_unit_test(test_partial_unmap_of_merged),
		cmocka_unit_test(test_safe_points),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
