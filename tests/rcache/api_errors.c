/* SPDX-License-Identifier: MIT */
/*
 * Every error the rcache's kernel-doc promises, and that a refused call
 * changes nothing: bad configs, zero-length and wrapping gets, puts of
 * regions not held or of another cache, a backend whose ->reg fails (the
 * error reaches the caller and nothing is cached), a free while a region is
 * held.  Also the plain accessors: ctx, data (zeroed, aligned), alignment.
 */
#include "rcache/helpers.h"

static void test_new_bad_config(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct umn_rcache *rc = (struct umn_rcache *)1;
	struct umn_rcache_ops no_dereg = { .reg = fake_reg };
	struct umn_rcache_config cfg = { .mm = mm, .ops = &fake_ops };

	assert_non_null(mm);
	assert_int_equal(umn_rcache_new(&cfg, NULL), -EINVAL);
	assert_int_equal(umn_rcache_new(NULL, &rc), -EINVAL);
	assert_null(rc);
	cfg.mm = NULL;
	assert_int_equal(umn_rcache_new(&cfg, &rc), -EINVAL);
	cfg.mm = mm;
	cfg.ops = NULL;
	assert_int_equal(umn_rcache_new(&cfg, &rc), -EINVAL);
	cfg.ops = &no_dereg;
	assert_int_equal(umn_rcache_new(&cfg, &rc), -EINVAL);
	cfg.ops = &fake_ops;
	cfg.alignment = pg() / 2;
	assert_int_equal(umn_rcache_new(&cfg, &rc), -EINVAL);
	cfg.alignment = pg() * 3;
	assert_int_equal(umn_rcache_new(&cfg, &rc), -EINVAL);
	cfg.alignment = 0;
	cfg.flags = 0x80;
	assert_int_equal(umn_rcache_new(&cfg, &rc), -EINVAL);
	assert_null(rc);
	cfg.flags = 0;
	assert_int_equal(umn_rcache_new(&cfg, &rc), 0);
	assert_int_equal(umn_rcache_free(rc), 0);
	assert_int_equal(umn_rcache_free(NULL), -EINVAL);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_get_bad_input(void **state)
{
	struct env e;
	struct umn_region *r = (struct umn_region *)1;

	env_open(&e);
	assert_int_equal(umn_rcache_get(e.rc, at(0), 0, &r), -EINVAL);
	assert_null(r);
	assert_int_equal(umn_rcache_get(NULL, at(0), 1, &r), -EINVAL);
	assert_int_equal(umn_rcache_get(e.rc, at(0), 1, NULL), -EINVAL);
	/* The exclusive end must be representable. */
	assert_int_equal(umn_rcache_get(e.rc, (void *)(UINTPTR_MAX - 10), 11,
					&r), -EOVERFLOW);
	assert_int_equal(umn_rcache_get(e.rc, (void *)(UINTPTR_MAX - 10), 20,
					&r), -EOVERFLOW);
	/* Representable, but not once rounded up to a page. */
	assert_int_equal(umn_rcache_get(e.rc, (void *)(UINTPTR_MAX - 10), 10,
					&r), -EOVERFLOW);
	assert_null(r);
	assert_int_equal(atomic_load(&e.f.regs), 0);
	assert_int_equal(stats(&e).regions, 0);
	env_close(&e);
}

static void test_put_bad_input(void **state)
{
	struct env a, b;
	struct umn_region *r;

	env_open(&a);
	env_open(&b);
	r = get_ok(&a, 0, 1);
	assert_int_equal(umn_rcache_put(NULL, r), -EINVAL);
	assert_int_equal(umn_rcache_put(a.rc, NULL), -EINVAL);
	assert_int_equal(umn_rcache_put(b.rc, r), -EINVAL);
	put_ok(&a, r);
	/* Not held any more: every get of it was put. */
	assert_int_equal(umn_rcache_put(a.rc, r), -EALREADY);
	/* Still cached and valid: the refused put changed nothing. */
	assert_ptr_equal(get_ok(&a, 0, 1), r);
	put_ok(&a, r);
	assert_int_equal(stats(&a).regions, 1);
	env_close(&b);
	env_close(&a);
}

static void test_reg_failure_returned_nothing_cached(void **state)
{
	struct env e;
	struct umn_region *r = (struct umn_region *)1;

	env_open(&e);
	atomic_store(&e.f.fail_next, ENOSPC);
	assert_int_equal(umn_rcache_get(e.rc, at(3), pg(), &r), -ENOSPC);
	assert_null(r);
	struct umn_rcache_stats st = stats(&e);

	assert_int_equal(st.regions, 0);
	assert_int_equal(st.reg_errors, 1);
	assert_int_equal(atomic_load(&e.f.regs), 0);
	/* Nothing was left behind: the next get registers. */
	r = get_ok(&e, 3, 1);
	assert_int_equal(atomic_load(&e.f.regs), 1);
	put_ok(&e, r);
	env_close(&e);
}

static void test_free_busy_while_held(void **state)
{
	struct env e;
	struct umn_region *r;

	env_open(&e);
	r = get_ok(&e, 0, 2);
	assert_int_equal(umn_rcache_free(e.rc), -EBUSY);
	/* Still working after the refusal. */
	assert_ptr_equal(get_ok(&e, 1, 1), r);
	put_ok(&e, r);
	assert_int_equal(umn_rcache_free(e.rc), -EBUSY);
	/* Held while invalid counts as held too. */
	inval(&e, 0, 1, UMN_EVENT_UNMAP);
	assert_false(umn_region_valid(r));
	assert_int_equal(umn_rcache_free(e.rc), -EBUSY);
	put_ok(&e, r);
	env_close(&e);
}

static void test_accessors(void **state)
{
	struct env e;
	struct umn_rcache_config cfg = { .alignment = 4 * pg() };
	struct umn_region *r;

	env_open_cfg(&e, &cfg);
	assert_ptr_equal(umn_rcache_ctx(e.rc), &e.f);
	assert_null(umn_rcache_ctx(NULL));
	assert_int_equal(umn_rcache_stats(NULL, NULL), -EINVAL);
	assert_int_equal(umn_rcache_stats(e.rc, NULL), -EINVAL);
	assert_int_equal(umn_rcache_flush(NULL), -EINVAL);
	/* One byte in page 5: the region is aligned out to [4, 8) pages. */
	assert_int_equal(umn_rcache_get(e.rc, (const char *)at(5) + 7, 1, &r),
			 0);
	assert_int_equal(umn_region_start(r), (uintptr_t)at(4));
	assert_int_equal(umn_region_end(r), (uintptr_t)at(8));
	assert_int_equal((uintptr_t)umn_region_data(r) % 16, 0);
	/* ->reg saw the same bounds, and zeroed data. */
	assert_int_equal(fdata(r)->start, (uintptr_t)at(4));
	assert_int_equal(fdata(r)->end, (uintptr_t)at(8));
	assert_int_equal(fdata(r)->id, 1);
	put_ok(&e, r);
	env_close(&e);
}

static void test_no_data(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct umn_rcache_config cfg = { .mm = mm,
					 .ops = umn_rcache_mlock_ops() };
	struct umn_rcache *rc;

	assert_non_null(mm);
	assert_int_equal(umn_rcache_new(&cfg, &rc), 0);
	assert_null(umn_rcache_ctx(rc));
	assert_int_equal(umn_rcache_free(rc), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_bad_config),
		cmocka_unit_test(test_get_bad_input),
		cmocka_unit_test(test_put_bad_input),
		cmocka_unit_test(test_reg_failure_returned_nothing_cached),
		cmocka_unit_test(test_free_busy_while_held),
		cmocka_unit_test(test_accessors),
		cmocka_unit_test(test_no_data),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
