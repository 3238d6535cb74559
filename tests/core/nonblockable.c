/* SPDX-License-Identifier: MIT */
/*
 * Non-blockable ranges: a callback that returns false on a range without
 * UMN_RANGE_BLOCKABLE makes umn_invalidate_range_start() end its own walk
 * and return -EAGAIN (the caller does not call range_end).  The space stays
 * consistent: operations the walk deferred are applied (by it, or by the
 * last walker if another is still walking), later invalidations work, and
 * remove, synchronize, read_begin and umn_mm_free neither hang nor fail.
 */
#include "core/helpers.h"

#include <unistd.h>

/*
 * A library call run on a helper thread, so that a call that hangs
 * (a walk the -EAGAIN path failed to end) fails the test instead of hanging
 * it.  Heap-allocated: on a timeout it is leaked to the stuck thread.
 */
enum call_kind { CALL_REMOVE, CALL_SYNCHRONIZE, CALL_READ_BEGIN };

struct call {
	pthread_t thread;
	enum call_kind kind;
	struct umn_interval *sub;
	struct umn_mm *mm;
	long ret;
	atomic_int done;
};

static void *call_main(void *arg)
{
	struct call *c = arg;

	switch (c->kind) {
	case CALL_REMOVE:
		c->ret = umn_interval_remove(c->sub);
		break;
	case CALL_SYNCHRONIZE:
		c->ret = umn_synchronize(c->mm);
		break;
	case CALL_READ_BEGIN:
		c->ret = (long)umn_read_begin(c->sub);
		break;
	}
	atomic_store(&c->done, 1);
	return NULL;
}

/* Run the call; fail if it does not return within WAIT_S. */
static long bounded(enum call_kind kind, struct umn_interval *sub,
		    struct umn_mm *mm)
{
	struct call *c = calloc(1, sizeof(*c));
	long ret;

	assert_non_null(c);
	c->kind = kind;
	c->sub = sub;
	c->mm = mm;
	assert_int_equal(pthread_create(&c->thread, NULL, call_main, c), 0);
	assert_true(wait_for(&c->done, 1, WAIT_S));
	assert_int_equal(pthread_join(c->thread, NULL), 0);
	ret = c->ret;
	free(c);
	return ret;
}

/*
 * The subscription that cannot block.  On a non-blockable range it first
 * does its deferred operations (if set), then returns false.
 */
struct refuser {
	struct umn_interval sub;
	atomic_int calls;
	unsigned flags_seen;
	void *owner_seen;
	bool always_false;
	/* done once, on the first non-blockable call */
	struct umn_mm *mm;
	struct umn_interval *to_update, *to_insert, *to_put;
	bool ops_done;
	int update_ret, insert_ret, put_ret, self_update_ret;
};

static bool refuser_invalidate(struct umn_interval *sub,
			       const struct umn_range *range,
			       unsigned long cur_seq);

static const struct umn_interval_ops refuser_ops = {
	.invalidate = refuser_invalidate,
};

static bool refuser_invalidate(struct umn_interval *sub,
			       const struct umn_range *range,
			       unsigned long cur_seq)
{
	struct refuser *r = container_of(sub, struct refuser, sub);

	atomic_fetch_add(&r->calls, 1);
	r->flags_seen = range->flags;
	r->owner_seen = range->owner;
	if (range->flags & UMN_RANGE_BLOCKABLE && !r->always_false) {
		umn_set_seq(sub, cur_seq);
		return true;
	}
	if (r->mm && !r->ops_done) {
		r->ops_done = true;
		r->update_ret = umn_interval_update(r->to_update, 0x60000,
						    0x1000);
		r->insert_ret = umn_interval_insert(r->to_insert, r->mm,
						    0x70000, 0x1000,
						    &counter_ops);
		r->put_ret = umn_interval_put(r->to_put);
		r->self_update_ret = umn_interval_update(sub, 0x80000, 0x1000);
	}
	return false;
}

static void test_false_returns_eagain(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct refuser f = {0};
	int cookie;
	struct umn_range r = {
		.start = 0x10000, .end = 0x11000,
		.event = UMN_EVENT_CLEAR, .flags = 0, .owner = &cookie,
	};
	struct umn_range elsewhere = r;

	assert_non_null(mm);
	r.mm = elsewhere.mm = mm;
	elsewhere.start = 0x40000;
	elsewhere.end = 0x41000;
	assert_int_equal(umn_interval_insert(&f.sub, mm, 0x10000, 0x1000,
					     &refuser_ops), 0);
	assert_int_equal(umn_invalidate_range_start(&r), -EAGAIN);
	assert_int_equal(atomic_load(&f.calls), 1);
	assert_int_equal(f.flags_seen, 0);
	assert_ptr_equal(f.owner_seen, &cookie);
	/* No range_end: the walk is over.  Everything still works. */

	/* A non-blockable range nobody refuses. */
	assert_int_equal(umn_invalidate_range_start(&elsewhere), 0);
	umn_invalidate_range_end(&elsewhere);
	/* A blockable one reaches the refuser, which accepts it. */
	assert_int_equal(hits(mm, &f.calls, 0x10000, 0x11000), 1);
	assert_true(f.flags_seen & UMN_RANGE_BLOCKABLE);
	assert_ptr_equal(f.owner_seen, NULL);
	/* Refused again, and again nothing is left behind. */
	assert_int_equal(umn_invalidate_range_start(&r), -EAGAIN);

	/* read_begin does not wait for a walk that was ended. */
	unsigned long seq = (unsigned long)bounded(CALL_READ_BEGIN, &f.sub,
						   NULL);
	assert_false(umn_read_retry(&f.sub, seq));
	assert_int_equal(bounded(CALL_SYNCHRONIZE, NULL, mm), 0);
	assert_int_equal(bounded(CALL_REMOVE, &f.sub, NULL), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/*
 * The thread whose range was refused is not left "inside" it: remove and
 * synchronize from that same thread are not refused with -EDEADLK (nor
 * left waiting for the walk).  Run on a helper thread, bounded.
 */
struct same_thread {
	pthread_t thread;
	struct umn_mm *mm;
	struct refuser *f;
	int start_ret, sync_ret, remove_ret;
	atomic_int done;
};

static void *same_thread_main(void *arg)
{
	struct same_thread *t = arg;
	struct umn_range r = {
		.mm = t->mm, .start = 0x10000, .end = 0x11000,
		.event = UMN_EVENT_UNMAP, .flags = 0,
	};

	t->start_ret = umn_invalidate_range_start(&r);
	t->sync_ret = umn_synchronize(t->mm);
	t->remove_ret = umn_interval_remove(&t->f->sub);
	atomic_store(&t->done, 1);
	return NULL;
}

static void test_false_leaves_no_walk_on_thread(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct refuser f = {0};
	/* Heap: a stuck thread keeps it if the library hangs. */
	struct same_thread *t = calloc(1, sizeof(*t));

	assert_non_null(mm);
	assert_non_null(t);
	assert_int_equal(umn_interval_insert(&f.sub, mm, 0x10000, 0x1000,
					     &refuser_ops), 0);
	t->mm = mm;
	t->f = &f;
	assert_int_equal(pthread_create(&t->thread, NULL, same_thread_main, t),
			 0);
	assert_true(wait_for(&t->done, 1, WAIT_S));
	assert_int_equal(pthread_join(t->thread, NULL), 0);
	assert_int_equal(t->start_ret, -EAGAIN);
	assert_int_equal(t->sync_ret, 0);
	assert_int_equal(t->remove_ret, 0);
	free(t);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* Operations deferred inside the refusing callback are applied. */
static void test_false_applies_deferred_ops(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct refuser f = {0};
	struct counter u = {0}, n = {0}, p = {0};
	struct umn_range r = {
		.start = 0x10000, .end = 0x11000,
		.event = UMN_EVENT_UNMAP, .flags = 0,
	};

	assert_non_null(mm);
	r.mm = mm;
	f.mm = mm;
	f.to_update = &u.sub;
	f.to_insert = &n.sub;
	f.to_put = &p.sub;
	assert_int_equal(umn_interval_insert(&f.sub, mm, 0x10000, 0x1000,
					     &refuser_ops), 0);
	assert_int_equal(umn_interval_insert(&u.sub, mm, 0x20000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_interval_insert(&p.sub, mm, 0x30000, 0x1000,
					     &counter_ops), 0);

	assert_int_equal(umn_invalidate_range_start(&r), -EAGAIN);
	assert_true(f.ops_done);
	assert_int_equal(f.update_ret, 0);
	assert_int_equal(f.insert_ret, 0);
	assert_int_equal(f.put_ret, 0);
	assert_int_equal(f.self_update_ret, 0);

	/* Applied when the refused walk ended. */
	assert_int_equal(atomic_load(&p.released), 1);
	assert_true(umn_interval_start(&u.sub) == 0x60000);
	assert_true(umn_interval_start(&n.sub) == 0x70000);
	assert_true(umn_interval_start(&f.sub) == 0x80000);
	assert_int_equal(hits(mm, &u.calls, 0x20000, 0x21000), 0);
	assert_int_equal(hits(mm, &u.calls, 0x60000, 0x61000), 1);
	assert_int_equal(hits(mm, &n.calls, 0x70000, 0x71000), 1);
	assert_int_equal(hits(mm, &p.calls, 0x30000, 0x31000), 0);
	assert_int_equal(hits(mm, &f.calls, 0x80000, 0x81000), 1);
	assert_int_equal(atomic_load(&p.calls_after_release), 0);

	assert_int_equal(bounded(CALL_SYNCHRONIZE, NULL, mm), 0);
	assert_int_equal(bounded(CALL_REMOVE, &f.sub, NULL), 0);
	assert_int_equal(bounded(CALL_REMOVE, &u.sub, NULL), 0);
	assert_int_equal(bounded(CALL_REMOVE, &n.sub, NULL), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* A callback that returns false even on a blockable range: umn_invalidate
 * reports -EAGAIN and leaves nothing behind. */
static void test_umn_invalidate_eagain(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct refuser f = {0};

	assert_non_null(mm);
	f.always_false = true;
	assert_int_equal(umn_interval_insert(&f.sub, mm, 0x10000, 0x1000,
					     &refuser_ops), 0);
	assert_int_equal(umn_invalidate(mm, 0x10000, 0x11000, UMN_EVENT_UNMAP),
			 -EAGAIN);
	assert_int_equal(atomic_load(&f.calls), 1);
	(void)bounded(CALL_READ_BEGIN, &f.sub, NULL);
	assert_int_equal(bounded(CALL_SYNCHRONIZE, NULL, mm), 0);
	assert_int_equal(bounded(CALL_REMOVE, &f.sub, NULL), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/*
 * Another walker is still active when the refused walk ends: the refused
 * one must not apply the deferred operations (it is not the last), and
 * must not stop the other from doing so when it ends.
 */
static void test_false_with_concurrent_walker(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct refuser f = {0};
	struct counter u = {0}, n = {0}, p = {0};
	struct blocker b = {0};
	struct walker w;
	struct umn_range r = {
		.start = 0x10000, .end = 0x11000,
		.event = UMN_EVENT_UNMAP, .flags = 0,
	};

	assert_non_null(mm);
	r.mm = mm;
	f.mm = mm;
	f.to_update = &u.sub;
	f.to_insert = &n.sub;
	f.to_put = &p.sub;
	assert_int_equal(umn_interval_insert(&f.sub, mm, 0x10000, 0x1000,
					     &refuser_ops), 0);
	assert_int_equal(umn_interval_insert(&u.sub, mm, 0x20000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_interval_insert(&p.sub, mm, 0x30000, 0x1000,
					     &counter_ops), 0);
	block_walk(&w, &b, mm);

	assert_int_equal(umn_invalidate_range_start(&r), -EAGAIN);
	assert_true(f.ops_done);
	assert_int_equal(f.put_ret, 0);
	/* The other walk is still on: nothing applied yet. */
	assert_int_equal(atomic_load(&p.released), 0);
	assert_true(umn_interval_start(&u.sub) == 0x20000);
	assert_true(umn_interval_start(&f.sub) == 0x10000);

	atomic_store(&b.open, 1);
	walker_join(&w);

	assert_int_equal(atomic_load(&p.released), 1);
	assert_true(umn_interval_start(&u.sub) == 0x60000);
	assert_true(umn_interval_start(&n.sub) == 0x70000);
	assert_true(umn_interval_start(&f.sub) == 0x80000);
	assert_int_equal(hits(mm, &n.calls, 0x70000, 0x71000), 1);
	assert_int_equal(atomic_load(&p.calls_after_release), 0);

	assert_int_equal(bounded(CALL_SYNCHRONIZE, NULL, mm), 0);
	assert_int_equal(bounded(CALL_REMOVE, &f.sub, NULL), 0);
	assert_int_equal(bounded(CALL_REMOVE, &u.sub, NULL), 0);
	assert_int_equal(bounded(CALL_REMOVE, &n.sub, NULL), 0);
	assert_int_equal(bounded(CALL_REMOVE, &b.sub, NULL), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_false_returns_eagain),
		cmocka_unit_test(test_false_leaves_no_walk_on_thread),
		cmocka_unit_test(test_false_applies_deferred_ops),
		cmocka_unit_test(test_umn_invalidate_eagain),
		cmocka_unit_test(test_false_with_concurrent_walker),
	};

	/* Watchdog: a library that hangs fails the binary instead. */
	alarm(60);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
