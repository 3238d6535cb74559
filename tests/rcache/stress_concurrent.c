/* SPDX-License-Identifier: MIT */
/*
 * Two threads get and put random ranges (hits, misses, merges, held
 * regions) while a third invalidates random ranges, for
 * UMN_STRESS_SECONDS; run under ThreadSanitizer by the test suite.
 *
 * "The memory" is a generation per page, bumped by the invalidating thread
 * between umn_invalidate_range_start() and _end(), where a real munmap
 * changes the pages.  ->reg copies the generations of its pages.  The
 * property: a region that is still valid after a get always carries the
 * generations the pages have now.  A getter that sees a page newer than
 * its region's copy must see the region invalid, because the invalidation
 * cleared VALID before it bumped the page.  And every region is registered
 * once and deregistered once, never inside a walk.
 */
#include "rcache/helpers.h"

#define MAXPAGES 8192
#define MAXLEN   8
#define HOLD     4

/* Pages in play: few (much merging and contention) or many (the index
 * grows, splits and shrinks under the hits). */
static long pages = 64;
static atomic_int gen[MAXPAGES];
static atomic_int stop, stale, uncovered, gets, invalidations;

struct snap_data {
	atomic_int registered;
	int *gens;
};

static atomic_int snap_regs, snap_deregs, snap_bad, snap_in_walk;

static long page_of(uintptr_t a)
{
	return (long)((a - BASE) / pg());
}

static int snap_reg(struct umn_rcache *rc, struct umn_region *r)
{
	struct snap_data *d = umn_region_data(r);
	long first = page_of(umn_region_start(r));
	long n = page_of(umn_region_end(r)) - first;

	d->gens = malloc((size_t)n * sizeof(int));
	if (!d->gens)
		return -ENOMEM;
	for (long i = 0; i < n; i++)
		d->gens[i] = atomic_load(&gen[first + i]);
	if (atomic_exchange(&d->registered, 1))
		atomic_fetch_add(&snap_bad, 1);
	atomic_fetch_add(&snap_regs, 1);
	return 0;
}

static void snap_dereg(struct umn_rcache *rc, struct umn_region *r)
{
	struct snap_data *d = umn_region_data(r);

	if (!atomic_exchange(&d->registered, 0))
		atomic_fetch_add(&snap_bad, 1);
	if (t_in_walk)
		atomic_fetch_add(&snap_in_walk, 1);
	free(d->gens);
	d->gens = NULL;
	atomic_fetch_add(&snap_deregs, 1);
}

static const struct umn_rcache_ops snap_ops = {
	.reg = snap_reg,
	.dereg = snap_dereg,
};

static void check_fresh(struct umn_region *r)
{
	struct snap_data *d = umn_region_data(r);
	long first = page_of(umn_region_start(r));
	long n = page_of(umn_region_end(r)) - first;

	for (long i = 0; i < n; i++) {
		if (atomic_load(&gen[first + i]) == d->gens[i])
			continue;
		if (umn_region_valid(r))
			atomic_fetch_add(&stale, 1);
		return;
	}
}

struct getter {
	pthread_t thread;
	struct umn_rcache *rc;
	uint64_t seed;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *getter_main(void *arg)
{
	struct getter *g = arg;
	struct umn_region *held[HOLD] = {0};

	while (!atomic_load(&stop)) {
		long len = 1 + (long)(rnd(&g->seed) % MAXLEN);
		long first = (long)(rnd(&g->seed) % (uint64_t)(pages - len + 1));
		unsigned slot = (unsigned)(rnd(&g->seed) % HOLD);
		struct umn_region *r;
		int err = umn_rcache_get(g->rc, at(first), (size_t)len * pg(),
					 &r);

		if (err) {
			/* Only an invalidation storm may refuse a get. */
			assert_int_equal(err, -EAGAIN);
			continue;
		}
		atomic_fetch_add(&gets, 1);
		if (umn_region_start(r) > (uintptr_t)at(first) ||
		    umn_region_end(r) < (uintptr_t)at(first + len))
			atomic_fetch_add(&uncovered, 1);
		check_fresh(r);
		if (held[slot])
			assert_int_equal(umn_rcache_put(g->rc, held[slot]), 0);
		held[slot] = r;
		if (rnd(&g->seed) % 64 == 0)
			assert_int_equal(umn_rcache_flush(g->rc), 0);
	}
	for (int i = 0; i < HOLD; i++)
		if (held[i])
			assert_int_equal(umn_rcache_put(g->rc, held[i]), 0);
	return NULL;
}

struct invalidator {
	pthread_t thread;
	struct umn_mm *mm;
	uint64_t seed;
};

static void *invalidator_main(void *arg)
{
	struct invalidator *v = arg;

	while (!atomic_load(&stop)) {
		long len = 1 + (long)(rnd(&v->seed) % 3);
		long first = (long)(rnd(&v->seed) % (uint64_t)(pages - len + 1));
		struct umn_range range = {
			.mm = v->mm, .start = (uintptr_t)at(first),
			.end = (uintptr_t)at(first + len),
			.event = (enum umn_event)(rnd(&v->seed) % 4),
			.flags = UMN_RANGE_BLOCKABLE,
		};

		t_in_walk = 1;
		assert_int_equal(umn_invalidate_range_start(&range), 0);
		for (long i = first; i < first + len; i++)
			atomic_fetch_add(&gen[i], 1);
		umn_invalidate_range_end(&range);
		t_in_walk = 0;
		atomic_fetch_add(&invalidations, 1);
		if (rnd(&v->seed) % 4 == 0)
			sched_yield();
	}
	return NULL;
}

static void run(struct umn_rcache_config *cfg)
{
	struct umn_mm *mm = umn_mm_new();
	struct umn_rcache *rc;
	struct getter g[2];
	struct invalidator v = { .seed = 0x1234567 };

	assert_non_null(mm);
	cfg->mm = mm;
	cfg->ops = &snap_ops;
	cfg->region_data_size = sizeof(struct snap_data);
	assert_int_equal(umn_rcache_new(cfg, &rc), 0);
	atomic_store(&stop, 0);
	atomic_store(&gets, 0);
	atomic_store(&invalidations, 0);
	atomic_store(&snap_regs, 0);
	atomic_store(&snap_deregs, 0);
	v.mm = mm;
	for (int i = 0; i < 2; i++) {
		g[i].rc = rc;
		g[i].seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
		assert_int_equal(pthread_create(&g[i].thread, NULL,
						getter_main, &g[i]), 0);
	}
	assert_int_equal(pthread_create(&v.thread, NULL, invalidator_main, &v),
			 0);
	sleep_ms((long)(test_stress_seconds() * 1000 / 3));
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(g[i].thread, NULL), 0);
	assert_int_equal(pthread_join(v.thread, NULL), 0);

	assert_int_equal(umn_rcache_free(rc), 0);
	assert_int_equal(umn_mm_free(mm), 0);
	print_message("%d gets, %d invalidations, %d registrations\n",
		      atomic_load(&gets), atomic_load(&invalidations),
		      atomic_load(&snap_regs));
	assert_int_equal(atomic_load(&stale), 0);
	assert_int_equal(atomic_load(&uncovered), 0);
	assert_int_equal(atomic_load(&snap_bad), 0);
	assert_int_equal(atomic_load(&snap_in_walk), 0);
	assert_int_equal(atomic_load(&snap_regs), atomic_load(&snap_deregs));
	assert_true(atomic_load(&gets) > 0);
	assert_true(atomic_load(&invalidations) > 0);
}

static void test_stress(void **state)
{
	struct umn_rcache_config cfg = {0};

	pages = 64;
	run(&cfg);
}

static void test_stress_wide(void **state)
{
	struct umn_rcache_config cfg = {0};

	pages = MAXPAGES;
	run(&cfg);
}

static void test_stress_with_limits(void **state)
{
	struct umn_rcache_config cfg = { .max_regions = 4,
					 .max_bytes = 16 * pg() };

	pages = 64;
	run(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stress),
		cmocka_unit_test(test_stress_with_limits),
		cmocka_unit_test(test_stress_wide),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
