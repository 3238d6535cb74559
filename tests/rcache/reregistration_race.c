/* SPDX-License-Identifier: MIT */
/*
 * The re-registration race: thread A unmaps a cached range and its
 * invalidation is still running (a callback that waits), thread B gets the
 * same addresses.  B must not register the pages that are going away: it
 * waits for the invalidation to end, or, if the invalidation reaches its
 * new region while ->reg runs, drops that registration and registers again.
 *
 * "The memory" is a generation counter: A's walk bumps it between
 * umn_invalidate_range_start() and _end(), where a real munmap would change
 * the pages.  ->reg records the generation it saw; a registration of the
 * old pages is one that recorded the old generation.
 */
#include "rcache/helpers.h"

static atomic_int generation;

static void record_generation(struct fake *f, struct umn_region *r)
{
	fdata(r)->hook_word = (unsigned long)atomic_load(&generation);
}

/* Thread A: the munmap, its memory change inside the range. */
struct unmapper {
	pthread_t thread;
	struct umn_mm *mm;
	uintptr_t start, end;
	atomic_int done;
};

static void *unmapper_main(void *arg)
{
	struct unmapper *u = arg;
	struct umn_range range = {
		.mm = u->mm, .start = u->start, .end = u->end,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	assert_int_equal(umn_invalidate_range_start(&range), 0);
	atomic_fetch_add(&generation, 1); /* the pages change */
	umn_invalidate_range_end(&range);
	atomic_store(&u->done, 1);
	return NULL;
}

static void unmapper_start(struct unmapper *u, struct umn_mm *mm, long first,
			   long pages)
{
	u->mm = mm;
	u->start = (uintptr_t)at(first);
	u->end = (uintptr_t)at(first + pages);
	atomic_init(&u->done, 0);
	assert_int_equal(pthread_create(&u->thread, NULL, unmapper_main, u), 0);
}

/* Thread B: a get. */
struct getter {
	pthread_t thread;
	struct umn_rcache *rc;
	const void *addr;
	size_t len;
	struct umn_region *r;
	int ret;
	atomic_int done;
};

static void *getter_main(void *arg)
{
	struct getter *g = arg;

	g->ret = umn_rcache_get(g->rc, g->addr, g->len, &g->r);
	atomic_store(&g->done, 1);
	return NULL;
}

static void getter_start(struct getter *g, struct umn_rcache *rc, long first,
			 long pages)
{
	g->rc = rc;
	g->addr = at(first);
	g->len = (size_t)pages * pg();
	atomic_init(&g->done, 0);
	assert_int_equal(pthread_create(&g->thread, NULL, getter_main, g), 0);
}

static void join_ok(pthread_t t, atomic_int *done)
{
	assert_true(wait_for(done, 1, WAIT_S));
	assert_int_equal(pthread_join(t, NULL), 0);
}

static void test_get_waits_for_invalidation_in_progress(void **state)
{
	struct env e;
	struct blocker b = {0};
	struct unmapper a;
	struct getter g;
	struct umn_region *old;

	env_open(&e);
	e.f.reg_hook = record_generation;
	atomic_store(&generation, 0);
	old = get_ok(&e, 0, 4);
	put_ok(&e, old);
	/* Another subscriber over the same pages whose callback waits. */
	assert_int_equal(umn_interval_insert(&b.sub, e.mm, (uintptr_t)at(0),
					     4 * pg(), &blocker_ops), 0);
	unmapper_start(&a, e.mm, 0, 4);
	assert_true(wait_for(&b.entered, 1, WAIT_S));

	getter_start(&g, e.rc, 0, 4);
	sleep_ms(50);
	/* The old region is invalid, and B has not registered the old pages:
	 * it waits for the invalidation. */
	assert_int_equal(atomic_load(&g.done), 0);
	assert_int_equal(atomic_load(&e.f.regs), 1);

	atomic_store(&b.open, 1);
	join_ok(a.thread, &a.done);
	join_ok(g.thread, &g.done);
	assert_int_equal(g.ret, 0);
	assert_true(umn_region_valid(g.r));
	assert_int_equal(fdata(g.r)->hook_word, 1); /* the new pages */
	assert_int_equal(atomic_load(&e.f.regs), 2);
	put_ok(&e, g.r);
	assert_int_equal(umn_interval_remove(&b.sub), 0);
	env_close(&e);
}

/* Inside ->reg of the first registration: another thread unmaps it. */
static void unmap_during_first_reg(struct fake *f, struct umn_region *r)
{
	struct walker *w = f->hook_arg;

	record_generation(f, r);
	if (atomic_load(&f->regs))
		return;
	walker_start(w, w->mm, umn_region_start(r), umn_region_end(r));
	walker_join(w);
	atomic_fetch_add(&generation, 1); /* the pages changed meanwhile */
}

static void test_invalidation_during_reg_registers_again(void **state)
{
	struct env e;
	struct walker w;
	struct umn_region *r;

	env_open(&e);
	atomic_store(&generation, 0);
	w.mm = e.mm;
	e.f.hook_arg = &w;
	e.f.reg_hook = unmap_during_first_reg;
	r = get_ok(&e, 8, 2);
	/* The first registration was dropped (deregistered once), the one
	 * returned was made after the invalidation. */
	assert_int_equal(atomic_load(&e.f.regs), 2);
	assert_int_equal(atomic_load(&e.f.deregs), 1);
	assert_int_equal(fdata(r)->id, 2);
	assert_int_equal(fdata(r)->hook_word, 1);
	assert_int_equal(stats(&e).retried, 1);
	assert_int_equal(stats(&e).regions, 1);
	put_ok(&e, r);
	env_close(&e);
}

static void test_merged_region_dies_before_insert(void **state)
{
	struct env e;
	struct blocker b = {0};
	struct unmapper a;
	struct getter g;
	struct umn_region *old;

	env_open(&e);
	old = get_ok(&e, 1, 2);                 /* [1, 3) */
	put_ok(&e, old);
	/* The blocker starts first in the tree, so the walk over [0, 3)
	 * waits in it before it reaches the old region. */
	assert_int_equal(umn_interval_insert(&b.sub, e.mm, (uintptr_t)at(0),
					     pg(), &blocker_ops), 0);
	unmapper_start(&a, e.mm, 0, 3);
	assert_true(wait_for(&b.entered, 1, WAIT_S));
	assert_true(umn_region_valid(old));

	/* [2, 5) overlaps the old region, still valid: B's first union is
	 * [1, 5), which the walk is about to unmap in part. */
	getter_start(&g, e.rc, 2, 3);
	sleep_ms(50);
	assert_int_equal(atomic_load(&g.done), 0);
	atomic_store(&b.open, 1);
	join_ok(a.thread, &a.done);
	join_ok(g.thread, &g.done);
	assert_int_equal(g.ret, 0);
	assert_int_equal(umn_region_start(g.r), (uintptr_t)at(2));
	assert_int_equal(umn_region_end(g.r), (uintptr_t)at(5));
	assert_int_equal(atomic_load(&e.f.regs), 2);
	assert_int_equal(stats(&e).retried, 1);
	put_ok(&e, g.r);
	assert_int_equal(umn_interval_remove(&b.sub), 0);
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_waits_for_invalidation_in_progress),
		cmocka_unit_test(test_invalidation_during_reg_registers_again),
		cmocka_unit_test(test_merged_region_dies_before_insert),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
