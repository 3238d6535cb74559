/* SPDX-License-Identifier: MIT */
/*
 * The seed's third scenario: a subscription whose ->invalidate() put()s it
 * when all of it is invalidated.  release() runs exactly once, only after
 * the walk has ended — when umn_invalidate() returns for a single walker,
 * and only when the last walker ends (on that walker's thread) when another
 * thread is still walking — and no ->invalidate() of it runs after
 * release() has started.
 */
#include "core/helpers.h"

#include <unistd.h>

static _Thread_local int tl_tid;

/* A subscription that puts itself when all of it is invalidated. */
struct putter {
	struct umn_interval sub;
	atomic_int calls;
	atomic_int running;              /* ->invalidate() in progress */
	atomic_int release_started;
	atomic_int released;             /* release() returned */
	atomic_int calls_after_release;
	atomic_int release_while_running;
	atomic_int released_at_put;      /* release_started, just after put() */
	atomic_int put_ok, put_ealready, put_other;
	atomic_int release_tid;          /* tl_tid of the thread releasing */
	/* release() inserts it again into @mm at @reinsert_at, if non-zero */
	uintptr_t reinsert_at;
	struct umn_mm *mm;
	atomic_int reinsert_ret;
};

static const struct umn_interval_ops putter_ops;

static bool putter_invalidate(struct umn_interval *sub,
			      const struct umn_range *range,
			      unsigned long cur_seq)
{
	struct putter *p = container_of(sub, struct putter, sub);
	uintptr_t s = umn_interval_start(sub), e = umn_interval_end(sub);

	atomic_fetch_add(&p->running, 1);
	atomic_fetch_add(&p->calls, 1);
	if (atomic_load(&p->release_started))
		atomic_fetch_add(&p->calls_after_release, 1);
	umn_set_seq(sub, cur_seq);
	if (range->start <= s && range->end >= e) {
		int r = umn_interval_put(sub);

		if (r == 0) {
			atomic_fetch_add(&p->put_ok, 1);
			atomic_store(&p->released_at_put,
				     atomic_load(&p->release_started));
		} else if (r == -EALREADY) {
			atomic_fetch_add(&p->put_ealready, 1);
		} else {
			atomic_fetch_add(&p->put_other, 1);
		}
	}
	atomic_fetch_sub(&p->running, 1);
	return true;
}

static void putter_release(struct umn_interval *sub)
{
	struct putter *p = container_of(sub, struct putter, sub);

	atomic_fetch_add(&p->release_started, 1);
	if (atomic_load(&p->running))
		atomic_fetch_add(&p->release_while_running, 1);
	atomic_store(&p->release_tid, tl_tid);
	if (p->reinsert_at) {
		uintptr_t at = p->reinsert_at;

		p->reinsert_at = 0;
		atomic_store(&p->reinsert_ret,
			     umn_interval_insert(sub, p->mm, at, 0x1000,
						 &putter_ops));
	}
	if (atomic_load(&p->running))
		atomic_fetch_add(&p->release_while_running, 1);
	atomic_fetch_add(&p->released, 1);
}

static const struct umn_interval_ops putter_ops = {
	.invalidate = putter_invalidate,
	.release = putter_release,
};

static void putter_check_clean(struct putter *p)
{
	assert_int_equal(atomic_load(&p->release_started), 1);
	assert_int_equal(atomic_load(&p->released), 1);
	assert_int_equal(atomic_load(&p->put_ok), 1);
	assert_int_equal(atomic_load(&p->put_other), 0);
	assert_int_equal(atomic_load(&p->calls_after_release), 0);
	assert_int_equal(atomic_load(&p->release_while_running), 0);
	assert_int_equal(atomic_load(&p->released_at_put), 0);
}

/* A walker that runs as thread @tid (tl_tid) of the test. */
struct tid_walker {
	struct walker w;
	int tid;
};

static void *tid_walker_main(void *arg)
{
	struct tid_walker *t = arg;

	tl_tid = t->tid;
	return walker_main(&t->w);
}

static void tid_walker_start(struct tid_walker *t, int tid, struct umn_mm *mm,
			     uintptr_t start, uintptr_t end)
{
	t->tid = tid;
	walker_init(&t->w, mm, start, end);
	assert_int_equal(pthread_create(&t->w.thread, NULL, tid_walker_main, t),
			 0);
}

static void test_put_outside_walk_releases_before_return(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct putter p = {0};

	assert_non_null(mm);
	tl_tid = 1;
	assert_int_equal(umn_interval_insert(&p.sub, mm, 0x10000, 0x10000,
					     &putter_ops), 0);
	assert_int_equal(umn_interval_put(&p.sub), 0);
	assert_int_equal(atomic_load(&p.released), 1);
	assert_int_equal(atomic_load(&p.release_tid), 1);
	assert_int_equal(umn_interval_start(&p.sub), 0);
	assert_int_equal(umn_invalidate(mm, 0x10000, 0x20000, UMN_EVENT_UNMAP),
			 0);
	assert_int_equal(atomic_load(&p.calls), 0);
	assert_int_equal(umn_interval_put(&p.sub), -ENOENT);
	assert_int_equal(atomic_load(&p.released), 1);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_put_in_callback_single_walker(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct putter p = {0};

	assert_non_null(mm);
	tl_tid = 1;
	assert_int_equal(umn_interval_insert(&p.sub, mm, 0x10000, 0x10000,
					     &putter_ops), 0);
	/* Part of it: no put. */
	assert_int_equal(umn_invalidate(mm, 0x10000, 0x18000, UMN_EVENT_UNMAP),
			 0);
	assert_int_equal(atomic_load(&p.calls), 1);
	assert_int_equal(atomic_load(&p.put_ok), 0);
	assert_int_equal(atomic_load(&p.released), 0);

	/* All of it: put inside the callback, release by umn_invalidate's
	 * end, on this thread, after the callback returned. */
	assert_int_equal(umn_invalidate(mm, 0x0f000, 0x21000, UMN_EVENT_UNMAP),
			 0);
	assert_int_equal(atomic_load(&p.calls), 2);
	putter_check_clean(&p);
	assert_int_equal(atomic_load(&p.release_tid), 1);

	/* Gone: nothing reaches it, the space is empty. */
	assert_int_equal(umn_invalidate(mm, 0x10000, 0x20000, UMN_EVENT_UNMAP),
			 0);
	assert_int_equal(atomic_load(&p.calls), 2);
	assert_int_equal(umn_interval_start(&p.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
	assert_int_equal(atomic_load(&p.released), 1);
}

/* With the walk held open by range_start, release waits for range_end. */
static void test_put_released_at_range_end(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct putter p = {0};
	struct umn_range r = {
		.start = 0x10000, .end = 0x20000,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	assert_non_null(mm);
	r.mm = mm;
	assert_int_equal(umn_interval_insert(&p.sub, mm, 0x10000, 0x10000,
					     &putter_ops), 0);
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	assert_int_equal(atomic_load(&p.put_ok), 1);
	assert_int_equal(atomic_load(&p.released), 0);
	/* Until release, a put is under way. */
	assert_int_equal(umn_interval_put(&p.sub), -EALREADY);
	umn_invalidate_range_end(&r);
	putter_check_clean(&p);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* release() may insert the subscription again; it is then a normal one. */
static void test_release_may_reinsert(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct putter p = {0};

	assert_non_null(mm);
	p.mm = mm;
	p.reinsert_at = 0x30000;
	assert_int_equal(umn_interval_insert(&p.sub, mm, 0x10000, 0x10000,
					     &putter_ops), 0);
	assert_int_equal(umn_invalidate(mm, 0x10000, 0x20000, UMN_EVENT_UNMAP),
			 0);
	putter_check_clean(&p);
	assert_int_equal(atomic_load(&p.reinsert_ret), 0);
	assert_true(umn_interval_start(&p.sub) == 0x30000);
	assert_true(umn_interval_end(&p.sub) == 0x31000);
	assert_int_equal(umn_invalidate(mm, 0x10000, 0x20000, UMN_EVENT_UNMAP),
			 0);
	assert_int_equal(atomic_load(&p.calls), 1);
	assert_int_equal(umn_invalidate(mm, 0x30800, 0x30801, UMN_EVENT_UNMAP),
			 0);
	assert_int_equal(atomic_load(&p.calls), 2);
	assert_int_equal(umn_interval_remove(&p.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/*
 * Walker B (another thread) is blocked inside the blocker's callback.
 * Walker A (this thread) invalidates all of P, whose callback puts it.
 * A's walk ends first: release must wait for B, and run on B's thread.
 */
static void test_put_waits_for_second_walker(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct putter p = {0};
	struct blocker b = {0};
	struct tid_walker wb;

	assert_non_null(mm);
	tl_tid = 1;
	assert_int_equal(umn_interval_insert(&p.sub, mm, 0x10000, 0x10000,
					     &putter_ops), 0);
	assert_int_equal(umn_interval_insert(&b.sub, mm, 0x100000, 0x10000,
					     &blocker_ops), 0);
	tid_walker_start(&wb, 2, mm, 0x100000, 0x110000);
	assert_true(wait_for(&b.entered, 1, WAIT_S));

	assert_int_equal(umn_invalidate(mm, 0x10000, 0x20000, UMN_EVENT_UNMAP),
			 0);
	assert_int_equal(atomic_load(&p.put_ok), 1);
	sleep_ms(50);
	assert_int_equal(atomic_load(&p.released), 0);
	assert_int_equal(atomic_load(&wb.w.done), 0);

	atomic_store(&b.open, 1);
	walker_join(&wb.w);
	putter_check_clean(&p);
	assert_int_equal(atomic_load(&p.release_tid), 2);
	assert_int_equal(atomic_load(&b.returned), 1);

	assert_int_equal(umn_invalidate(mm, 0, UINTPTR_MAX, UMN_EVENT_UNMAP),
			 0);
	assert_int_equal(atomic_load(&p.calls), 1);
	assert_int_equal(umn_interval_remove(&b.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/*
 * As above, but B's walk also covers P (above the blocker): after A's put,
 * B may still call P's ->invalidate() — never after release() — and its put
 * is refused with -EALREADY.  release() runs once, on B, after B's walk.
 */
static void test_put_second_walker_also_covers_it(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct putter p = {0};
	struct blocker b = {0};
	struct tid_walker wb;

	assert_non_null(mm);
	tl_tid = 1;
	assert_int_equal(umn_interval_insert(&b.sub, mm, 0x100000, 0x10000,
					     &blocker_ops), 0);
	assert_int_equal(umn_interval_insert(&p.sub, mm, 0x200000, 0x10000,
					     &putter_ops), 0);
	tid_walker_start(&wb, 2, mm, 0x100000, 0x210000);
	assert_true(wait_for(&b.entered, 1, WAIT_S));

	assert_int_equal(umn_invalidate(mm, 0x200000, 0x210000,
					UMN_EVENT_UNMAP), 0);
	assert_int_equal(atomic_load(&p.put_ok), 1);
	sleep_ms(50);
	assert_int_equal(atomic_load(&p.released), 0);

	atomic_store(&b.open, 1);
	walker_join(&wb.w);
	putter_check_clean(&p);
	assert_int_equal(atomic_load(&p.release_tid), 2);
	assert_true(atomic_load(&p.calls) >= 1);
	assert_int_equal(atomic_load(&p.calls),
			 1 + atomic_load(&p.put_ealready));

	assert_int_equal(umn_interval_remove(&b.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* Many walkers race to put the same subscription, round after round. */
#define RACE_THREADS 4
#define RACE_ROUNDS 60
#define RACE_WALKS 8

struct racer {
	pthread_t thread;
	struct umn_mm *mm;
	pthread_barrier_t *barrier;
	int tid;
	atomic_int errors;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;

	tl_tid = r->tid;
	pthread_barrier_wait(r->barrier);
	for (int i = 0; i < RACE_WALKS; i++) {
		/* Alternate whole and partial ranges. */
		uintptr_t end = (i & 1) ? 0x18000 : 0x20000;

		if (umn_invalidate(r->mm, 0x10000, end, UMN_EVENT_UNMAP))
			atomic_fetch_add(&r->errors, 1);
	}
	return NULL;
}

static void test_put_race_many_walkers(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct racer r[RACE_THREADS];
	pthread_barrier_t barrier;
	struct putter *p = calloc(1, sizeof(*p));

	assert_non_null(mm);
	assert_non_null(p);
	for (int round = 0; round < RACE_ROUNDS; round++) {
		*p = (struct putter){0};
		assert_int_equal(umn_interval_insert(&p->sub, mm, 0x10000,
						     0x10000, &putter_ops), 0);
		assert_int_equal(pthread_barrier_init(&barrier, NULL,
						      RACE_THREADS), 0);
		for (int i = 0; i < RACE_THREADS; i++) {
			r[i].mm = mm;
			r[i].barrier = &barrier;
			r[i].tid = 10 + i;
			atomic_init(&r[i].errors, 0);
			assert_int_equal(pthread_create(&r[i].thread, NULL,
							racer_main, &r[i]), 0);
		}
		for (int i = 0; i < RACE_THREADS; i++)
			assert_int_equal(pthread_join(r[i].thread, NULL), 0);
		pthread_barrier_destroy(&barrier);
		for (int i = 0; i < RACE_THREADS; i++)
			assert_int_equal(atomic_load(&r[i].errors), 0);
		putter_check_clean(p);
		assert_true(atomic_load(&p->release_tid) >= 10);
		assert_int_equal(umn_interval_start(&p->sub), 0);
	}
	free(p);
	assert_int_equal(umn_mm_free(mm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_outside_walk_releases_before_return),
		cmocka_unit_test(test_put_in_callback_single_walker),
		cmocka_unit_test(test_put_released_at_range_end),
		cmocka_unit_test(test_release_may_reinsert),
		cmocka_unit_test(test_put_waits_for_second_walker),
		cmocka_unit_test(test_put_second_walker_also_covers_it),
		cmocka_unit_test(test_put_race_many_walkers),
	};

	/* Watchdog: a library that hangs fails the binary instead. */
	alarm(60);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
