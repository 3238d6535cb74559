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

#include <unistd.h>

static void assert_bounds(struct counter *c, uintptr_t start, uintptr_t end)
{
	assert_true(umn_interval_start(&c->sub) == start);
	assert_true(umn_interval_end(&c->sub) == end);
}

/*
 * A blocker whose ->invalidate() first does one deferred operation (an
 * update of @target, or an insert of @target into @mm), then blocks until
 * the test opens it.
 */
struct doer {
	struct blocker b;
	struct umn_mm *mm;
	struct counter *target;
	enum { DO_UPDATE, DO_INSERT } action;
	uintptr_t at;
	atomic_int action_ret;
};

static void doer_act(struct blocker *b)
{
	struct doer *d = container_of(b, struct doer, b);

	if (d->action == DO_UPDATE)
		atomic_store(&d->action_ret,
			     umn_interval_update(&d->target->sub, d->at,
						 0x10000));
	else
		atomic_store(&d->action_ret,
			     umn_interval_insert(&d->target->sub, d->mm, d->at,
						 0x10000,
						 &counter_norelease_ops));
}

/* Open @b and join walker @w (bounded), then remove @b. */
static void unblock_walk(struct walker *w, struct blocker *b)
{
	atomic_store(&b->open, 1);
	walker_join(w);
	assert_int_equal(umn_interval_remove(&b->sub), 0);
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
	struct doer d = {0};
	struct walker w;
	struct umn_range a = {
		.start = 0x900000, .end = 0x900001,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	assert_non_null(mm);
	a.mm = mm;
	assert_int_equal(umn_interval_insert(&t.sub, mm, 0x10000, 0x10000,
					     &counter_norelease_ops), 0);
	d.b.first = doer_act;
	d.target = &t;
	d.action = DO_UPDATE;
	d.at = 0x30000;
	block_walk(&w, &d.b, mm);
	assert_int_equal(atomic_load(&d.action_ret), 0);

	assert_int_equal(umn_invalidate_range_start(&a), 0);
	assert_int_equal(umn_interval_update(&t.sub, 0x50000, 0x10000), 0);
	assert_bounds(&t, 0x10000, 0x20000);
	umn_invalidate_range_end(&a);
	/* B still walks: both updates still pending. */
	assert_bounds(&t, 0x10000, 0x20000);
	assert_int_equal(atomic_load(&w.done), 0);

	unblock_walk(&w, &d.b);
	assert_bounds(&t, 0x50000, 0x60000);
	assert_int_equal(hits(mm, &t.calls, 0x10000, 0x20000), 0);
	assert_int_equal(hits(mm, &t.calls, 0x30000, 0x40000), 0);
	assert_int_equal(hits(mm, &t.calls, 0x50000, 0x50001), 1);
	assert_int_equal(hits(mm, &t.calls, 0x5ffff, 0x60000), 1);

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
					     &counter_norelease_ops), 0);
	block_walk(&w, &b, mm);
	assert_int_equal(umn_invalidate_range_start(&a), 0);
	assert_int_equal(umn_interval_update(&t.sub, 0x30000, 0x10000), 0);
	assert_int_equal(umn_interval_update(&t.sub, 0x70000, 0x10000), 0);
	assert_int_equal(umn_interval_update(&t.sub, 0x50000, 0x10000), 0);

	atomic_store(&b.open, 1);
	walker_join(&w);
	/* A still walks. */
	assert_bounds(&t, 0x10000, 0x20000);
	umn_invalidate_range_end(&a);
	assert_bounds(&t, 0x50000, 0x60000);
	assert_int_equal(hits(mm, &t.calls, 0x10000, 0x20000), 0);
	assert_int_equal(hits(mm, &t.calls, 0x30000, 0x40000), 0);
	assert_int_equal(hits(mm, &t.calls, 0x70000, 0x80000), 0);
	assert_int_equal(hits(mm, &t.calls, 0x50000, 0x60000), 1);

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
						     &counter_norelease_ops);
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
	assert_int_equal(hits(mm, &n.calls, 0x10000, 0x20000), 1);
	assert_int_equal(hits(mm, &n.calls, 0x1ffff, 0x20001), 1);
	assert_int_equal(hits(mm, &n.calls, 0x17000, 0x18000), 0);

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
	struct doer d = {0};
	struct walker w;

	assert_non_null(mm);
	d.b.first = doer_act;
	d.mm = mm;
	d.target = &n;
	d.action = DO_INSERT;
	d.at = 0x18000;
	block_walk(&w, &d.b, mm);
	assert_int_equal(atomic_load(&d.action_ret), 0);

	assert_int_equal(hits(mm, &n.calls, 0x18000, 0x28000), 0);
	assert_int_equal(hits(mm, &n.calls, 0, BLOCKER_START), 0);

	unblock_walk(&w, &d.b);
	assert_int_equal(hits(mm, &n.calls, 0x18000, 0x28000), 1);
	assert_int_equal(hits(mm, &n.calls, 0x27fff, 0x28000), 1);

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
					     &counter_norelease_ops), 0);
	block_walk(&w, &b, mm);
	assert_int_equal(umn_interval_insert(&n.sub, mm, 0x20000, 0x1000,
					     &counter_norelease_ops), 0);

	reader_start(&rl, &live.sub);
	reader_join(&rl);
	assert_false(umn_read_retry(&live.sub, rl.seq));

	reader_start(&rn, &n.sub);
	sleep_ms(100);
	assert_int_equal(atomic_load(&rn.done), 0);

	unblock_walk(&w, &b);
	reader_join(&rn);
	assert_false(umn_read_retry(&n.sub, rn.seq));
	assert_int_equal(hits(mm, &n.calls, 0x20000, 0x21000), 1);
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
					     &counter_norelease_ops), 0);
	assert_int_equal(umn_interval_insert(&live.sub, mm, 0x30000, 0x1000,
					     &counter_norelease_ops), 0);
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
	assert_int_equal(hits(mm, &t.calls, 0x20000, 0x21000), 1);
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
					     &counter_norelease_ops), 0);
	assert_int_equal(umn_interval_update(&n.sub, 0x20000, 0x1000), 0);
	umn_invalidate_range_end(&a);
	assert_bounds(&n, 0x20000, 0x21000);
	assert_int_equal(hits(mm, &n.calls, 0x10000, 0x11000), 0);
	assert_int_equal(hits(mm, &n.calls, 0x20000, 0x21000), 1);
	assert_int_equal(umn_interval_remove(&n.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/*
 * Insert @p over [0x10000, 0x11000) in a new space, begin walk @a over
 * [@walk, @walk + 1) and, while it is active, update @p to
 * [0x20000, 0x21000): the update is deferred.  Returns the space.
 */
static struct umn_mm *walk_with_deferred_update(struct umn_range *a,
						uintptr_t walk,
						struct counter *p)
{
	struct umn_mm *mm = umn_mm_new();

	assert_non_null(mm);
	*a = (struct umn_range){
		.mm = mm, .start = walk, .end = walk + 1,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};
	assert_int_equal(umn_interval_insert(&p->sub, mm, 0x10000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_invalidate_range_start(a), 0);
	assert_int_equal(umn_interval_update(&p->sub, 0x20000, 0x1000), 0);
	return mm;
}

static void test_update_then_put_in_one_walk(void **state)
{
	struct counter p = {0}, q = {0};
	struct umn_range a;
	struct umn_mm *mm = walk_with_deferred_update(&a, 0x900000, &p);

	assert_int_equal(umn_interval_put(&p.sub), 0);
	/* And a subscription inserted then put within the walk. */
	assert_int_equal(umn_interval_insert(&q.sub, mm, 0x30000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_interval_put(&q.sub), 0);
	assert_int_equal(atomic_load(&p.released), 0);
	assert_int_equal(atomic_load(&q.released), 0);
	umn_invalidate_range_end(&a);
	assert_int_equal(atomic_load(&p.released), 1);
	assert_int_equal(atomic_load(&q.released), 1);
	assert_int_equal(hits(mm, &p.calls, 0, UINTPTR_MAX), 0);
	assert_int_equal(atomic_load(&q.calls), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/*
 * A remove() made while an update of the same subscription is deferred
 * drops the update: the walk that ends must not put the subscription back
 * in the tree at the new range (the kernel series' KUnit case
 * mni_remove_drops_queued_update is the same scenario).
 */
static void test_remove_drops_deferred_update(void **state)
{
	struct counter p = {0};
	struct remover r = { .sub = &p.sub };
	struct umn_range a;
	struct umn_mm *mm = walk_with_deferred_update(&a, 0x10000, &p);

	assert_int_equal(pthread_create(&r.thread, NULL, remover_main, &r), 0);
	/* remove() waits for the walk that reached @p. */
	sleep_ms(50);
	assert_int_equal(atomic_load(&r.done), 0);
	umn_invalidate_range_end(&a);
	assert_int_equal(pthread_join(r.thread, NULL), 0);
	assert_int_equal(r.ret, 0);
	assert_int_equal(hits(mm, &p.calls, 0, UINTPTR_MAX), 0);
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
		cmocka_unit_test(test_remove_drops_deferred_update),
	};

	/* Watchdog: a library that hangs fails the binary instead. */
	alarm(60);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
