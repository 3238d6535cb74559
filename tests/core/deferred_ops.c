/* SPDX-License-Identifier: MIT */
/*
 * Deferred operations: while any walk is active, insert and update do not
 * touch the tree; the walk that ends last applies them, in order, and of
 * several updates the last wins.  An insert made inside a callback is not
 * seen by walks already under way, and is seen by the first walk after.
 * umn_read_begin() on a subscription with a deferred insert or update waits
 * until the walks end (it would otherwise read a range a walk in progress
 * could have missed); on one without, it does not.
 */
#include "core/helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#define WAIT_S 5.0

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Poll until *v >= want or @secs pass; true if reached. */
static bool wait_for(atomic_int *v, int want, double secs)
{
	double deadline = now_s() + secs;

	while (atomic_load(v) < want) {
		if (now_s() > deadline)
			return false;
		sleep_ms(1);
	}
	return true;
}

/* A subscription that counts the walks that reach it. */
struct counter {
	struct umn_interval sub;
	atomic_int calls;
};

static bool counter_invalidate(struct umn_interval *sub,
			       const struct umn_range *range,
			       unsigned long cur_seq)
{
	atomic_fetch_add(&container_of(sub, struct counter, sub)->calls, 1);
	umn_set_seq(sub, cur_seq);
	return true;
}

static const struct umn_interval_ops counter_ops = {
	.invalidate = counter_invalidate,
};

/* Calls of @c made by one invalidation of [start, end). */
static int hits(struct umn_mm *mm, struct counter *c, uintptr_t start,
		uintptr_t end)
{
	int before = atomic_load(&c->calls);

	assert_int_equal(umn_invalidate(mm, start, end, UMN_EVENT_UNMAP), 0);
	return atomic_load(&c->calls) - before;
}

static void assert_bounds(struct counter *c, uintptr_t start, uintptr_t end)
{
	assert_true(umn_interval_start(&c->sub) == start);
	assert_true(umn_interval_end(&c->sub) == end);
}

/*
 * A subscription whose ->invalidate() first does one deferred operation
 * (an update of @target, or an insert of @target into @mm), then blocks
 * until the test opens it.
 */
struct blocker {
	struct umn_interval sub;
	struct umn_mm *mm;
	struct counter *target;
	enum { DO_NOTHING, DO_UPDATE, DO_INSERT } action;
	uintptr_t at;
	atomic_int action_ret;
	atomic_int entered, open, returned;
};

static bool blocker_invalidate(struct umn_interval *sub,
			       const struct umn_range *range,
			       unsigned long cur_seq)
{
	struct blocker *b = container_of(sub, struct blocker, sub);

	umn_set_seq(sub, cur_seq);
	if (b->action == DO_UPDATE)
		atomic_store(&b->action_ret,
			     umn_interval_update(&b->target->sub, b->at,
						 0x10000));
	else if (b->action == DO_INSERT)
		atomic_store(&b->action_ret,
			     umn_interval_insert(&b->target->sub, b->mm, b->at,
						 0x10000, &counter_ops));
	atomic_fetch_add(&b->entered, 1);
	wait_for(&b->open, 1, WAIT_S);
	atomic_fetch_add(&b->returned, 1);
	return true;
}

static const struct umn_interval_ops blocker_ops = {
	.invalidate = blocker_invalidate,
};

#define BLOCKER_START 0x100000
#define BLOCKER_END   0x110000

/* Walker B: a thread invalidating the blocker's range. */
struct walker {
	pthread_t thread;
	struct umn_mm *mm;
	atomic_int ret, done;
};

static void *walker_main(void *arg)
{
	struct walker *w = arg;

	atomic_store(&w->ret, umn_invalidate(w->mm, BLOCKER_START, BLOCKER_END,
					     UMN_EVENT_UNMAP));
	atomic_store(&w->done, 1);
	return NULL;
}

/* Insert @b into @mm and start walker @w, blocked inside @b's callback. */
static void block_walk(struct walker *w, struct blocker *b, struct umn_mm *mm)
{
	assert_int_equal(umn_interval_insert(&b->sub, mm, BLOCKER_START,
					     BLOCKER_END - BLOCKER_START,
					     &blocker_ops), 0);
	w->mm = mm;
	atomic_init(&w->ret, -1);
	atomic_init(&w->done, 0);
	assert_int_equal(pthread_create(&w->thread, NULL, walker_main, w), 0);
	assert_true(wait_for(&b->entered, 1, WAIT_S));
}

/* Open @b and join @w (bounded), then remove @b. */
static void unblock_walk(struct walker *w, struct blocker *b)
{
	atomic_store(&b->open, 1);
	assert_true(wait_for(&w->done, 1, WAIT_S));
	assert_int_equal(pthread_join(w->thread, NULL), 0);
	assert_int_equal(atomic_load(&w->ret), 0);
	assert_int_equal(umn_interval_remove(&b->sub), 0);
}

/* A thread calling umn_read_begin(). */
struct reader {
	pthread_t thread;
	struct umn_interval *sub;
	unsigned long seq;          /* written before done is set */
	atomic_int done;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	r->seq = umn_read_begin(r->sub);
	atomic_store(&r->done, 1);
	return NULL;
}

static void reader_start(struct reader *r, struct umn_interval *sub)
{
	r->sub = sub;
	atomic_init(&r->done, 0);
	assert_int_equal(pthread_create(&r->thread, NULL, reader_main, r), 0);
}

static void reader_join(struct reader *r)
{
	assert_true(wait_for(&r->done, 1, WAIT_S));
	assert_int_equal(pthread_join(r->thread, NULL), 0);
}

/*
 * Walker B (thread) and walker A (this thread, held by range_start) are
 * both active.  B's callback updates T to U1; then this thread updates T to
 * U2.  A ends first: nothing changes.  B ends last: T is at U2.
 */
static void test_updates_apply_when_last_walker_ends(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter t = {0};
	struct blocker b = {0};
	struct walker w;
	struct umn_range a = {
		.start = 0x900000, .end = 0x900001,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	assert_non_null(mm);
	a.mm = mm;
	assert_int_equal(umn_interval_insert(&t.sub, mm, 0x10000, 0x10000,
					     &counter_ops), 0);
	b.target = &t;
	b.action = DO_UPDATE;
	b.at = 0x30000;
	block_walk(&w, &b, mm);
	assert_int_equal(atomic_load(&b.action_ret), 0);

	assert_int_equal(umn_invalidate_range_start(&a), 0);
	assert_int_equal(umn_interval_update(&t.sub, 0x50000, 0x10000), 0);
	assert_bounds(&t, 0x10000, 0x20000);
	umn_invalidate_range_end(&a);
	/* B still walks: both updates still pending. */
	assert_bounds(&t, 0x10000, 0x20000);
	assert_int_equal(atomic_load(&w.done), 0);

	unblock_walk(&w, &b);
	assert_bounds(&t, 0x50000, 0x60000);
	assert_int_equal(hits(mm, &t, 0x10000, 0x20000), 0);
	assert_int_equal(hits(mm, &t, 0x30000, 0x40000), 0);
	assert_int_equal(hits(mm, &t, 0x50000, 0x50001), 1);
	assert_int_equal(hits(mm, &t, 0x5ffff, 0x60000), 1);

	assert_int_equal(umn_interval_remove(&t.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* The same with the walks ending in the other order: B first, A last. */
static void test_updates_apply_when_last_walker_ends_reversed(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter t = {0};
	struct blocker b = {0};
	struct walker w;
	struct umn_range a = {
		.start = 0x900000, .end = 0x900001,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	assert_non_null(mm);
	a.mm = mm;
	assert_int_equal(umn_interval_insert(&t.sub, mm, 0x10000, 0x10000,
					     &counter_ops), 0);
	block_walk(&w, &b, mm);
	assert_int_equal(umn_invalidate_range_start(&a), 0);
	assert_int_equal(umn_interval_update(&t.sub, 0x30000, 0x10000), 0);
	assert_int_equal(umn_interval_update(&t.sub, 0x70000, 0x10000), 0);
	assert_int_equal(umn_interval_update(&t.sub, 0x50000, 0x10000), 0);

	atomic_store(&b.open, 1);
	assert_true(wait_for(&w.done, 1, WAIT_S));
	assert_int_equal(pthread_join(w.thread, NULL), 0);
	assert_int_equal(atomic_load(&w.ret), 0);
	/* A still walks. */
	assert_bounds(&t, 0x10000, 0x20000);
	umn_invalidate_range_end(&a);
	assert_bounds(&t, 0x50000, 0x60000);
	assert_int_equal(hits(mm, &t, 0x10000, 0x20000), 0);
	assert_int_equal(hits(mm, &t, 0x30000, 0x40000), 0);
	assert_int_equal(hits(mm, &t, 0x70000, 0x80000), 0);
	assert_int_equal(hits(mm, &t, 0x50000, 0x60000), 1);

	assert_int_equal(umn_interval_remove(&b.sub), 0);
	assert_int_equal(umn_interval_remove(&t.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* A subscription whose callback inserts @n, once, at [0x18000, 0x20000). */
struct inserter {
	struct umn_interval sub;
	struct umn_mm *mm;
	struct counter *n;
	int insert_ret;
	int calls;
};

static bool inserter_invalidate(struct umn_interval *sub,
				const struct umn_range *range,
				unsigned long cur_seq)
{
	struct inserter *in = container_of(sub, struct inserter, sub);

	umn_set_seq(sub, cur_seq);
	if (!in->calls++)
		in->insert_ret = umn_interval_insert(&in->n->sub, in->mm,
						     0x18000, 0x8000,
						     &counter_ops);
	return true;
}

static const struct umn_interval_ops inserter_ops = {
	.invalidate = inserter_invalidate,
};

/* One walker: the walk that inserts N covers N's range but does not
 * reach it; the next walk does. */
static void test_insert_in_callback_visible_after_walk(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter n = {0};
	struct inserter s = {0};

	assert_non_null(mm);
	s.mm = mm;
	s.n = &n;
	assert_int_equal(umn_interval_insert(&s.sub, mm, 0x10000, 0x1000,
					     &inserter_ops), 0);
	assert_int_equal(umn_invalidate(mm, 0x10000, 0x20000, UMN_EVENT_UNMAP),
			 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.insert_ret, 0);
	assert_int_equal(atomic_load(&n.calls), 0);

	assert_bounds(&n, 0x18000, 0x20000);
	assert_int_equal(hits(mm, &n, 0x10000, 0x20000), 1);
	assert_int_equal(hits(mm, &n, 0x1ffff, 0x20001), 1);
	assert_int_equal(hits(mm, &n, 0x17000, 0x18000), 0);

	assert_int_equal(umn_interval_remove(&n.sub), 0);
	assert_int_equal(umn_interval_remove(&s.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* Walker B's callback inserts N and blocks: a concurrent walk over N's
 * range from this thread does not reach it; after B ends one does. */
static void test_insert_in_callback_missed_by_concurrent_walk(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter n = {0};
	struct blocker b = {0};
	struct walker w;

	assert_non_null(mm);
	b.mm = mm;
	b.target = &n;
	b.action = DO_INSERT;
	b.at = 0x18000;
	block_walk(&w, &b, mm);
	assert_int_equal(atomic_load(&b.action_ret), 0);

	assert_int_equal(hits(mm, &n, 0x18000, 0x28000), 0);
	assert_int_equal(hits(mm, &n, 0, BLOCKER_START), 0);

	unblock_walk(&w, &b);
	assert_int_equal(hits(mm, &n, 0x18000, 0x28000), 1);
	assert_int_equal(hits(mm, &n, 0x27fff, 0x28000), 1);

	assert_int_equal(umn_interval_remove(&n.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/*
 * read_begin on a subscription with a deferred insert waits for the walk;
 * on a live one the walk has not reached it does not.
 */
static void test_read_begin_waits_for_deferred_insert(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter n = {0}, live = {0};
	struct blocker b = {0};
	struct walker w;
	struct reader rn, rl;

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&live.sub, mm, 0x10000, 0x1000,
					     &counter_ops), 0);
	block_walk(&w, &b, mm);
	assert_int_equal(umn_interval_insert(&n.sub, mm, 0x20000, 0x1000,
					     &counter_ops), 0);

	reader_start(&rl, &live.sub);
	reader_join(&rl);
	assert_false(umn_read_retry(&live.sub, rl.seq));

	reader_start(&rn, &n.sub);
	sleep_ms(100);
	assert_int_equal(atomic_load(&rn.done), 0);

	unblock_walk(&w, &b);
	reader_join(&rn);
	assert_false(umn_read_retry(&n.sub, rn.seq));
	assert_int_equal(hits(mm, &n, 0x20000, 0x21000), 1);
	assert_true(umn_read_retry(&n.sub, rn.seq));

	assert_int_equal(umn_interval_remove(&n.sub), 0);
	assert_int_equal(umn_interval_remove(&live.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* The same for a deferred update of a live subscription. */
static void test_read_begin_waits_for_deferred_update(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter t = {0}, live = {0};
	struct blocker b = {0};
	struct walker w;
	struct reader rt, rl;

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&t.sub, mm, 0x10000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_interval_insert(&live.sub, mm, 0x30000, 0x1000,
					     &counter_ops), 0);
	block_walk(&w, &b, mm);
	assert_int_equal(umn_interval_update(&t.sub, 0x20000, 0x1000), 0);

	reader_start(&rl, &live.sub);
	reader_join(&rl);

	reader_start(&rt, &t.sub);
	sleep_ms(100);
	assert_int_equal(atomic_load(&rt.done), 0);

	unblock_walk(&w, &b);
	reader_join(&rt);
	assert_bounds(&t, 0x20000, 0x21000);
	assert_false(umn_read_retry(&t.sub, rt.seq));
	assert_int_equal(hits(mm, &t, 0x20000, 0x21000), 1);
	assert_true(umn_read_retry(&t.sub, rt.seq));

	assert_int_equal(umn_interval_remove(&t.sub), 0);
	assert_int_equal(umn_interval_remove(&live.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* Several operations on one subscription in one walk apply in order. */
static void test_insert_then_update_in_one_walk(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter n = {0};
	struct umn_range a = {
		.start = 0x900000, .end = 0x900001,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	assert_non_null(mm);
	a.mm = mm;
	assert_int_equal(umn_invalidate_range_start(&a), 0);
	assert_int_equal(umn_interval_insert(&n.sub, mm, 0x10000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_interval_update(&n.sub, 0x20000, 0x1000), 0);
	umn_invalidate_range_end(&a);
	assert_bounds(&n, 0x20000, 0x21000);
	assert_int_equal(hits(mm, &n, 0x10000, 0x11000), 0);
	assert_int_equal(hits(mm, &n, 0x20000, 0x21000), 1);
	assert_int_equal(umn_interval_remove(&n.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

struct released {
	struct counter c;
	atomic_int released;
};

static void released_release(struct umn_interval *sub)
{
	struct counter *c = container_of(sub, struct counter, sub);

	atomic_fetch_add(&container_of(c, struct released, c)->released, 1);
}

static const struct umn_interval_ops released_ops = {
	.invalidate = counter_invalidate,
	.release = released_release,
};

static void test_update_then_put_in_one_walk(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct released p = {0}, q = {0};
	struct umn_range a = {
		.start = 0x900000, .end = 0x900001,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	assert_non_null(mm);
	a.mm = mm;
	assert_int_equal(umn_interval_insert(&p.c.sub, mm, 0x10000, 0x1000,
					     &released_ops), 0);
	assert_int_equal(umn_invalidate_range_start(&a), 0);
	assert_int_equal(umn_interval_update(&p.c.sub, 0x20000, 0x1000), 0);
	assert_int_equal(umn_interval_put(&p.c.sub), 0);
	/* And a subscription inserted then put within the walk. */
	assert_int_equal(umn_interval_insert(&q.c.sub, mm, 0x30000, 0x1000,
					     &released_ops), 0);
	assert_int_equal(umn_interval_put(&q.c.sub), 0);
	assert_int_equal(atomic_load(&p.released), 0);
	assert_int_equal(atomic_load(&q.released), 0);
	umn_invalidate_range_end(&a);
	assert_int_equal(atomic_load(&p.released), 1);
	assert_int_equal(atomic_load(&q.released), 1);
	assert_int_equal(hits(mm, &p.c, 0, UINTPTR_MAX), 0);
	assert_int_equal(atomic_load(&q.c.calls), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_updates_apply_when_last_walker_ends),
		cmocka_unit_test(
			test_updates_apply_when_last_walker_ends_reversed),
		cmocka_unit_test(test_insert_in_callback_visible_after_walk),
		cmocka_unit_test(
			test_insert_in_callback_missed_by_concurrent_walk),
		cmocka_unit_test(test_read_begin_waits_for_deferred_insert),
		cmocka_unit_test(test_read_begin_waits_for_deferred_update),
		cmocka_unit_test(test_insert_then_update_in_one_walk),
		cmocka_unit_test(test_update_then_put_in_one_walk),
	};

	/* Watchdog: a library that hangs fails the binary instead. */
	alarm(60);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
