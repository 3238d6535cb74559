/* SPDX-License-Identifier: MIT */
/*
 * A ->reg that fails for want of something the cache itself holds (-ENOSPC:
 * slots; -ENOMEM: pinned memory; -EAGAIN) makes the miss evict the unused
 * regions, run the due deregs and try once more; held regions stay.  Other
 * errors, and a second failure, go to the caller with nothing evicted for
 * them.
 */
#include "rcache/helpers.h"

/* The fake backend with room for CAP registrations; then -full_err. */
#define CAP 2
static int full_err;

static int capped_reg(struct umn_rcache *rc, struct umn_region *r)
{
	struct fake *f = umn_rcache_ctx(rc);

	if (atomic_load(&f->live) >= CAP)
		return -full_err;
	return fake_reg(rc, r);
}

static const struct umn_rcache_ops capped_ops = {
	.reg = capped_reg,
	.dereg = fake_dereg,
};

static void open_capped(struct env *e, int err)
{
	struct umn_rcache_config cfg = { 0 };

	env_open_cfg(e, &cfg);
	assert_int_equal(umn_rcache_free(e->rc), 0);
	cfg.ops = &capped_ops;
	assert_int_equal(umn_rcache_new(&cfg, &e->rc), 0);
	full_err = err;
}

/* Two unused regions fill the backend; a third get evicts them. */
static void evicts_unused_and_retries(int err)
{
	struct env e;
	struct umn_region *r;

	open_capped(&e, err);
	put_ok(&e, get_ok(&e, 0, 1));
	put_ok(&e, get_ok(&e, 10, 1));
	r = get_ok(&e, 20, 1);
	struct umn_rcache_stats st = stats(&e);

	assert_int_equal(st.regions, 1);
	assert_int_equal(st.evicted, 2);
	assert_int_equal(st.reg_errors, 0);
	assert_int_equal(atomic_load(&e.f.deregs), 2);
	put_ok(&e, r);
	env_close(&e);
}

static void test_enospc(void **state)
{
	evicts_unused_and_retries(ENOSPC);
}

static void test_enomem(void **state)
{
	evicts_unused_and_retries(ENOMEM);
}

static void test_eagain(void **state)
{
	evicts_unused_and_retries(EAGAIN);
}

/* The unused region goes, which is still not enough: the error is the
 * caller's, and the held region is untouched. */
static void test_held_stay_error_returned(void **state)
{
	struct env e;
	struct umn_region *a, *b, *r = (struct umn_region *)1;

	open_capped(&e, ENOSPC);
	a = get_ok(&e, 0, 1);
	b = get_ok(&e, 10, 1);
	assert_int_equal(umn_rcache_get(e.rc, at(20), pg(), &r), -ENOSPC);
	assert_null(r);
	assert_true(umn_region_valid(a));
	assert_true(umn_region_valid(b));
	struct umn_rcache_stats st = stats(&e);

	assert_int_equal(st.reg_errors, 1);
	assert_int_equal(st.evicted, 0);
	assert_int_equal(atomic_load(&e.f.deregs), 0);
	put_ok(&e, a);
	put_ok(&e, b);
	env_close(&e);
}

/* Another error evicts nothing. */
static void test_other_error_keeps_cache(void **state)
{
	struct env e;
	struct umn_region *r;

	open_capped(&e, EINVAL);
	put_ok(&e, get_ok(&e, 0, 1));
	put_ok(&e, get_ok(&e, 10, 1));
	assert_int_equal(umn_rcache_get(e.rc, at(20), pg(), &r), -EINVAL);
	assert_int_equal(stats(&e).regions, 2);
	assert_int_equal(atomic_load(&e.f.deregs), 0);
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enospc),
		cmocka_unit_test(test_enomem),
		cmocka_unit_test(test_eagain),
		cmocka_unit_test(test_held_stay_error_returned),
		cmocka_unit_test(test_other_error_keeps_cache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
