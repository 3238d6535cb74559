// SPDX-License-Identifier: MIT
/*
 * A device access from a thread that is inside a walk of the mirror's
 * space (between umn_invalidate_range_start() and _end(), or in a
 * callback) must not wait for that walk: the period cannot end while the
 * thread waits in it.  umn_read_begin() does not wait there either; it
 * hands out a sequence that always retries.  A fault that needs to wait
 * (its region was hit by the walk, or its insert is deferred behind it)
 * used to start over forever; it returns -EDEADLK, as umn_mirror_free()
 * does there, and leaves no region of its own behind.
 *
 * A watchdog turns the old endless loop into a failure.
 */
#include "mirror/helpers.h"

#define PAGES 4

static void watchdog(unsigned seconds)
{
	alarm(seconds); /* SIGALRM's default action ends the test */
}

struct user {
	struct umn_mm *mm;
	struct umn_mirror *m;
	char *p;
};

static void user_setup(struct user *u)
{
	u->mm = umn_mm_new();
	assert_non_null(u->mm);
	u->m = umn_mirror_new(u->mm, NULL);
	assert_non_null(u->m);
	u->p = map_guarded(PAGES, 1);
}

static struct umn_range range_of(struct umn_mm *mm, uintptr_t start,
				 uintptr_t end, enum umn_event event)
{
	return (struct umn_range){ .mm = mm, .start = start, .end = end,
				   .event = event,
				   .flags = UMN_RANGE_BLOCKABLE };
}

/* The walk hit the region: the fault would wait for the period's end. */
static void region_hit_by_own_walk(void **state)
{
	struct user u;
	struct umn_range r;
	uint64_t v;

	watchdog(20);
	user_setup(&u);
	check_device(u.m, u.p, PAGES * PG, 1);
	r = range_of(u.mm, (uintptr_t)u.p, (uintptr_t)u.p + PG,
		     UMN_EVENT_CLEAR);
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	assert_int_equal(umn_mirror_read(u.m, (uintptr_t)u.p, &v, sizeof(v)),
			 -EDEADLK);
	assert_int_equal(umn_mirror_fault(u.m, (uintptr_t)u.p,
					  UMN_MIRROR_READ), -EDEADLK);
	umn_invalidate_range_end(&r);
	check_device(u.m, u.p, PAGES * PG, 1);
	assert_int_equal(umn_mirror_regions(u.m, NULL, 0), 1);
	watchdog(0);
	user_teardown(u.mm, u.m, u.p, PAGES);
}

/* A walk elsewhere: the new region's insert waits for the period's end. */
static void insert_deferred_by_own_walk(void **state)
{
	struct user u;
	struct umn_range r;
	uint64_t v = 1;

	watchdog(20);
	user_setup(&u);
	r = range_of(u.mm, 0x10000, 0x11000, UMN_EVENT_UNMAP);
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	assert_int_equal(umn_mirror_write(u.m, (uintptr_t)u.p, &v, sizeof(v)),
			 -EDEADLK);
	assert_int_equal(umn_mirror_atomic_add(u.m, (uintptr_t)u.p, 1, NULL),
			 -EDEADLK);
	umn_invalidate_range_end(&r);
	assert_int_equal(umn_mirror_regions(u.m, NULL, 0), 0);
	assert_true(*(uint64_t *)u.p == pattern(1, (uintptr_t)u.p));
	check_device(u.m, u.p, PAGES * PG, 1);
	watchdog(0);
	user_teardown(u.mm, u.m, u.p, PAGES);
}

/* From inside another subscription's ->invalidate(). */
static struct user cb_user;
static int cb_err = 1;

static bool reading_invalidate(struct umn_interval *sub,
			       const struct umn_range *range,
			       unsigned long cur_seq)
{
	uint64_t v;

	umn_set_seq(sub, cur_seq);
	cb_err = umn_mirror_read(cb_user.m, (uintptr_t)cb_user.p, &v,
				 sizeof(v));
	return true;
}

static const struct umn_interval_ops reading_ops = {
	.invalidate = reading_invalidate,
};

static void read_from_callback(void **state)
{
	struct umn_interval sub = { 0 };

	watchdog(20);
	user_setup(&cb_user);
	assert_int_equal(umn_interval_insert(&sub, cb_user.mm, 0x10000, PG,
					     &reading_ops), 0);
	assert_int_equal(umn_invalidate(cb_user.mm, 0x10000, 0x11000,
					UMN_EVENT_UNMAP), 0);
	assert_int_equal(cb_err, -EDEADLK);
	assert_int_equal(umn_interval_remove(&sub), 0);
	assert_int_equal(umn_mirror_regions(cb_user.m, NULL, 0), 0);
	check_device(cb_user.m, cb_user.p, PAGES * PG, 1);
	watchdog(0);
	user_teardown(cb_user.mm, cb_user.m, cb_user.p, PAGES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(region_hit_by_own_walk),
		cmocka_unit_test(insert_deferred_by_own_walk),
		cmocka_unit_test(read_from_callback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
