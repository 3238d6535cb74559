/* SPDX-License-Identifier: MIT */
/*
 * Every public core function and every error its kernel-doc promises:
 * bad arguments get their errno and change nothing, good ones take effect,
 * zero-filled memory is a subscription that is not inserted, and a removed
 * or released subscription can be inserted again.  Walks are held open with
 * umn_invalidate_range_start(), on the test's thread or, where the caller
 * must not be inside the walk, on a helper thread.
 */
#include "core/helpers.h"

#include <unistd.h>

static const struct umn_interval_ops noinvalidate_ops = {
	.release = counter_release,
};

static void test_mm_new_free(void **state)
{
	struct umn_mm *a = umn_mm_new(), *b = umn_mm_new();

	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	assert_int_equal(umn_mm_free(NULL), -EINVAL);
	assert_int_equal(umn_mm_free(a), 0);
	assert_int_equal(umn_mm_free(b), 0);
}

static void test_mm_free_busy_while_subscribed(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_mm_free(mm), -EBUSY);
	/* The refused free left the space and its subscription working. */
	assert_int_equal(hits(mm, &c.calls, 0x1000, 0x1001), 1);
	assert_int_equal(umn_interval_remove(&c.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_mm_free_busy_while_walking_or_putting(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};
	struct umn_range r = {
		.mm = mm, .start = 0x9000, .end = 0xa000,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	assert_non_null(mm);
	/* A walk on an empty space. */
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	assert_int_equal(umn_mm_free(mm), -EBUSY);
	umn_invalidate_range_end(&r);

	/* A put deferred by a walk: the space is busy until release(). */
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	assert_int_equal(umn_interval_put(&c.sub), 0);
	assert_int_equal(c.released, 0);
	assert_int_equal(umn_mm_free(mm), -EBUSY);
	umn_invalidate_range_end(&r);
	assert_int_equal(c.released, 1);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* Calls umn_mm_free() and umn_read_begin() from inside its callbacks. */
struct prober {
	struct umn_interval sub;
	struct umn_mm *mm;
	int free_in_invalidate, free_in_release;
	bool retry_in_invalidate;
	int calls, released;
};

static bool prober_invalidate(struct umn_interval *sub,
			      const struct umn_range *range,
			      unsigned long cur_seq)
{
	struct prober *p = container_of(sub, struct prober, sub);
	unsigned long seq;

	p->calls++;
	umn_set_seq(sub, cur_seq);
	p->free_in_invalidate = umn_mm_free(p->mm);
	/* Reached by the walk in progress: would wait, so does not, and
	 * returns a sequence that always retries. */
	seq = umn_read_begin(sub);
	p->retry_in_invalidate = umn_read_retry(sub, seq);
	return true;
}

static void prober_release(struct umn_interval *sub)
{
	struct prober *p = container_of(sub, struct prober, sub);

	p->released++;
	p->free_in_release = umn_mm_free(p->mm);
}

static const struct umn_interval_ops prober_ops = {
	.invalidate = prober_invalidate,
	.release = prober_release,
};

static void test_mm_free_busy_inside_callbacks(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct prober p = {0};

	assert_non_null(mm);
	p.mm = mm;
	assert_int_equal(umn_interval_insert(&p.sub, mm, 0x1000, 0x1000,
					     &prober_ops), 0);
	assert_int_equal(umn_invalidate(mm, 0x1000, 0x2000, UMN_EVENT_UNMAP),
			 0);
	assert_int_equal(p.calls, 1);
	assert_int_equal(p.free_in_invalidate, -EBUSY);
	assert_true(p.retry_in_invalidate);

	/* release() run by put itself, with no walk: the space is empty by
	 * then, but a release is running. */
	assert_int_equal(umn_interval_put(&p.sub), 0);
	assert_int_equal(p.released, 1);
	assert_int_equal(p.free_in_release, -EBUSY);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_mm_new_flags(void **state)
{
	struct umn_mm *mm = umn_mm_new_flags(UMN_MM_SIGNAL_SAFE);
	struct counter c = {0};

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 4096, 4096,
					     &counter_ops), 0);
	assert_int_equal(umn_invalidate(mm, 0, 8192, UMN_EVENT_UNMAP), 0);
	assert_int_equal(atomic_load(&c.calls), 1);
	assert_int_equal(umn_interval_remove(&c.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
	errno = 0;
	assert_null(umn_mm_new_flags(2));
	assert_int_equal(errno, EINVAL);
}

static void test_insert_einval(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(NULL, mm, 0x1000, 0x1000,
					     &counter_ops), -EINVAL);
	assert_int_equal(umn_interval_insert(&c.sub, NULL, 0x1000, 0x1000,
					     &counter_ops), -EINVAL);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000, NULL),
			 -EINVAL);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &noinvalidate_ops), -EINVAL);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0,
					     &counter_ops), -EINVAL);

	/* Nothing was inserted by the failures. */
	assert_int_equal(umn_interval_start(&c.sub), 0);
	assert_int_equal(umn_interval_end(&c.sub), 0);
	assert_int_equal(hits(mm, &c.calls, 0, UINTPTR_MAX), 0);
	assert_int_equal(umn_interval_remove(&c.sub), -ENOENT);

	/* And the same memory still inserts fine. */
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(hits(mm, &c.calls, 0x1000, 0x2000), 1);
	assert_int_equal(umn_interval_remove(&c.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_insert_eoverflow(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&c.sub, mm, UINTPTR_MAX - 10, 100,
					     &counter_ops), -EOVERFLOW);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 1, SIZE_MAX,
					     &counter_ops), -EOVERFLOW);
	/* start + length == 2^64 wraps to 0: the end is not representable. */
	assert_int_equal(umn_interval_insert(&c.sub, mm, UINTPTR_MAX, 1,
					     &counter_ops), -EOVERFLOW);
	assert_int_equal(umn_interval_start(&c.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
	mm = umn_mm_new();
	assert_non_null(mm);

	/* The highest range that does not wrap. */
	assert_int_equal(umn_interval_insert(&c.sub, mm, UINTPTR_MAX - 100, 100,
					     &counter_ops), 0);
	assert_true(umn_interval_start(&c.sub) == UINTPTR_MAX - 100);
	assert_true(umn_interval_end(&c.sub) == UINTPTR_MAX);
	assert_int_equal(hits(mm, &c.calls, UINTPTR_MAX - 1, UINTPTR_MAX), 1);
	assert_int_equal(hits(mm, &c.calls, UINTPTR_MAX - 200,
			      UINTPTR_MAX - 100), 0);
	assert_int_equal(umn_interval_remove(&c.sub), 0);

	/* The whole space but its last byte, starting at address 0. */
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0, SIZE_MAX,
					     &counter_ops), 0);
	assert_true(umn_interval_end(&c.sub) == UINTPTR_MAX);
	assert_int_equal(hits(mm, &c.calls, 0, 1), 1);
	assert_int_equal(hits(mm, &c.calls, 5, 6), 1);
	assert_int_equal(umn_interval_remove(&c.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_insert_ebusy(void **state)
{
	struct umn_mm *mm = umn_mm_new(), *other = umn_mm_new();
	struct counter c = {0}, d = {0};
	struct umn_range r = {
		.mm = mm, .start = 0x9000, .end = 0xa000,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	assert_non_null(mm);
	assert_non_null(other);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x5000, 0x1000,
					     &counter_ops), -EBUSY);
	assert_int_equal(umn_interval_insert(&c.sub, other, 0x5000, 0x1000,
					     &counter_ops), -EBUSY);
	/* Unchanged, and nothing went into the other space. */
	assert_true(umn_interval_start(&c.sub) == 0x1000);
	assert_true(umn_interval_end(&c.sub) == 0x2000);
	assert_int_equal(hits(mm, &c.calls, 0x5000, 0x6000), 0);
	assert_int_equal(umn_mm_free(other), 0);

	/* A deferred insert is an insert too. */
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	assert_int_equal(umn_interval_insert(&d.sub, mm, 0x3000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_interval_insert(&d.sub, mm, 0x7000, 0x1000,
					     &counter_ops), -EBUSY);
	umn_invalidate_range_end(&r);
	assert_true(umn_interval_start(&d.sub) == 0x3000);
	assert_int_equal(hits(mm, &d.calls, 0x3000, 0x3001), 1);
	assert_int_equal(hits(mm, &d.calls, 0x7000, 0x8000), 0);

	assert_int_equal(umn_interval_remove(&c.sub), 0);
	assert_int_equal(umn_interval_remove(&d.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_remove_errors(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};

	assert_non_null(mm);
	assert_int_equal(umn_interval_remove(NULL), -EINVAL);
	assert_int_equal(umn_interval_remove(&c.sub), -ENOENT);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_interval_remove(&c.sub), 0);
	assert_int_equal(umn_interval_start(&c.sub), 0);
	assert_int_equal(hits(mm, &c.calls, 0x1000, 0x2000), 0);
	assert_int_equal(umn_interval_remove(&c.sub), -ENOENT);
	assert_int_equal(c.released, 0); /* remove never calls release() */
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_put_errors(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};

	assert_non_null(mm);
	assert_int_equal(umn_interval_put(NULL), -EINVAL);
	assert_int_equal(umn_interval_put(&c.sub), -ENOENT);

	/* Without ->release put is refused and the subscription stays. */
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_norelease_ops), 0);
	assert_int_equal(umn_interval_put(&c.sub), -EINVAL);
	assert_true(umn_interval_start(&c.sub) == 0x1000);
	assert_int_equal(hits(mm, &c.calls, 0x1000, 0x2000), 1);
	assert_int_equal(umn_interval_remove(&c.sub), 0);

	/* With no walk, release() has run when put returns. */
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_interval_put(&c.sub), 0);
	assert_int_equal(c.released, 1);
	assert_int_equal(umn_interval_put(&c.sub), -ENOENT);
	assert_int_equal(umn_interval_remove(&c.sub), -ENOENT);
	assert_int_equal(umn_interval_update(&c.sub, 0x1000, 0x10), -ENOENT);
	assert_int_equal(hits(mm, &c.calls, 0x1000, 0x2000), 0);
	assert_int_equal(c.released, 1);
	assert_int_equal(umn_mm_free(mm), 0);
}

/*
 * A walk held open by another thread, so that this thread is not inside it
 * (remove from inside a walk of its own space is -EDEADLK, not -EALREADY).
 */
struct holder {
	pthread_t thread;
	struct umn_range range;
	atomic_int held, release, done;
};

static void *holder_main(void *arg)
{
	struct holder *h = arg;

	if (umn_invalidate_range_start(&h->range) == 0) {
		atomic_store(&h->held, 1);
		wait_for(&h->release, 1, WAIT_S);
		umn_invalidate_range_end(&h->range);
	}
	atomic_store(&h->done, 1);
	return NULL;
}

static void holder_start(struct holder *h, struct umn_mm *mm)
{
	h->range = (struct umn_range){
		.mm = mm, .start = 0x9000, .end = 0xa000,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};
	atomic_init(&h->held, 0);
	atomic_init(&h->release, 0);
	atomic_init(&h->done, 0);
	assert_int_equal(pthread_create(&h->thread, NULL, holder_main, h), 0);
	assert_true(wait_for(&h->held, 1, WAIT_S));
}

static void holder_stop(struct holder *h)
{
	atomic_store(&h->release, 1);
	assert_true(wait_for(&h->done, 1, WAIT_S));
	assert_int_equal(pthread_join(h->thread, NULL), 0);
}

static void test_put_twice_while_walking_ealready(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};
	struct holder h;

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	holder_start(&h, mm);
	assert_int_equal(umn_interval_put(&c.sub), 0);
	assert_int_equal(atomic_load(&c.released), 0);
	assert_int_equal(umn_interval_put(&c.sub), -EALREADY);
	assert_int_equal(umn_interval_remove(&c.sub), -EALREADY);
	assert_int_equal(umn_interval_update(&c.sub, 0x4000, 0x1000),
			 -EALREADY);
	holder_stop(&h);
	assert_int_equal(atomic_load(&c.released), 1);
	assert_int_equal(umn_interval_put(&c.sub), -ENOENT);
	assert_int_equal(hits(mm, &c.calls, 0x1000, 0x5000), 0);
	assert_int_equal(atomic_load(&c.released), 1);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* Same while this thread holds the walk: only remove differs (-EDEADLK). */
static void test_put_twice_in_own_walk_ealready(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};
	struct umn_range r = {
		.start = 0x9000, .end = 0xa000,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	assert_non_null(mm);
	r.mm = mm;
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	assert_int_equal(umn_interval_put(&c.sub), 0);
	assert_int_equal(atomic_load(&c.released), 0);
	assert_int_equal(umn_interval_put(&c.sub), -EALREADY);
	assert_int_equal(umn_interval_update(&c.sub, 0x4000, 0x1000),
			 -EALREADY);
	/* Put but not yet released: not insertable yet. */
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x4000, 0x1000,
					     &counter_ops), -EBUSY);
	umn_invalidate_range_end(&r);
	assert_int_equal(atomic_load(&c.released), 1);
	assert_int_equal(umn_interval_put(&c.sub), -ENOENT);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* Removed but the remove still waiting for a walk: -EBUSY to insert,
 * -EALREADY to put, update or remove. */
static void test_remove_under_way(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};
	struct holder h;
	struct remover r = { .sub = &c.sub };
	double deadline = now_s() + WAIT_S;
	int err;

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	holder_start(&h, mm);
	atomic_init(&r.done, 0);
	assert_int_equal(pthread_create(&r.thread, NULL, remover_main, &r), 0);
	/* Until the remover has queued its remove, an update just succeeds. */
	while ((err = umn_interval_update(&c.sub, 0x1000, 0x1000)) == 0 &&
	       now_s() < deadline)
		sleep_ms(1);
	assert_int_equal(err, -EALREADY);
	assert_int_equal(atomic_load(&r.done), 0);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x5000, 0x1000,
					     &counter_ops), -EBUSY);
	assert_int_equal(umn_interval_put(&c.sub), -EALREADY);
	holder_stop(&h);
	assert_true(wait_for(&r.done, 1, WAIT_S));
	assert_int_equal(pthread_join(r.thread, NULL), 0);
	assert_int_equal(r.ret, 0);
	assert_int_equal(umn_interval_start(&c.sub), 0);
	assert_int_equal(atomic_load(&c.released), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* read_begin waits while a walk that reached the subscription is in
 * progress, and not for one that did not reach it. */
static void test_read_begin_waits_for_walk_that_reached_it(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter hit = {0}, missed = {0};
	struct reader rh, rm;
	struct umn_range r = {
		.start = 0x1000, .end = 0x2000,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	assert_non_null(mm);
	r.mm = mm;
	assert_int_equal(umn_interval_insert(&hit.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_interval_insert(&missed.sub, mm, 0x8000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	assert_int_equal(hit.calls, 1);

	reader_start(&rm, &missed.sub);
	reader_join(&rm);

	reader_start(&rh, &hit.sub);
	sleep_ms(100);
	int early = atomic_load(&rh.done);
	umn_invalidate_range_end(&r);
	reader_join(&rh);
	assert_int_equal(early, 0);

	assert_false(umn_read_retry(&hit.sub, rh.seq));
	assert_false(umn_read_retry(&missed.sub, rm.seq));
	assert_int_equal(umn_interval_remove(&hit.sub), 0);
	assert_int_equal(umn_interval_remove(&missed.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_update_errors(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};

	assert_non_null(mm);
	assert_int_equal(umn_interval_update(NULL, 0x1000, 0x1000), -EINVAL);
	assert_int_equal(umn_interval_update(&c.sub, 0x1000, 0x1000), -ENOENT);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_interval_update(&c.sub, 0x4000, 0), -EINVAL);
	assert_int_equal(umn_interval_update(&c.sub, UINTPTR_MAX - 10, 100),
			 -EOVERFLOW);
	assert_int_equal(umn_interval_update(&c.sub, UINTPTR_MAX, 1),
			 -EOVERFLOW);
	/* The failures changed nothing. */
	assert_true(umn_interval_start(&c.sub) == 0x1000);
	assert_true(umn_interval_end(&c.sub) == 0x2000);
	assert_int_equal(hits(mm, &c.calls, 0x1000, 0x1001), 1);

	/* With no walk, an update takes effect before it returns. */
	assert_int_equal(umn_interval_update(&c.sub, 0x4000, 0x800), 0);
	assert_true(umn_interval_start(&c.sub) == 0x4000);
	assert_true(umn_interval_end(&c.sub) == 0x4800);
	assert_int_equal(hits(mm, &c.calls, 0x1000, 0x2000), 0);
	assert_int_equal(hits(mm, &c.calls, 0x47ff, 0x4800), 1);
	assert_int_equal(hits(mm, &c.calls, 0x4800, 0x5000), 0);

	assert_int_equal(umn_interval_remove(&c.sub), 0);
	assert_int_equal(umn_interval_update(&c.sub, 0x1000, 0x1000), -ENOENT);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_bounds_end_exclusive(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};

	assert_non_null(mm);
	assert_int_equal(umn_interval_start(&c.sub), 0);
	assert_int_equal(umn_interval_end(&c.sub), 0);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x2000,
					     &counter_ops), 0);
	assert_true(umn_interval_start(&c.sub) == 0x1000);
	assert_true(umn_interval_end(&c.sub) == 0x3000);

	assert_int_equal(hits(mm, &c.calls, 0x3000, 0x4000), 0);
	assert_int_equal(hits(mm, &c.calls, 0x2fff, 0x3000), 1);
	assert_int_equal(hits(mm, &c.calls, 0x0000, 0x1000), 0);
	assert_int_equal(hits(mm, &c.calls, 0x0fff, 0x1001), 1);
	assert_int_equal(hits(mm, &c.calls, 0x1000, 0x1001), 1);
	assert_int_equal(hits(mm, &c.calls, 0x1800, 0x1900), 1);
	assert_int_equal(hits(mm, &c.calls, 0, UINTPTR_MAX), 1);

	assert_int_equal(umn_interval_remove(&c.sub), 0);
	assert_int_equal(umn_interval_start(&c.sub), 0);
	assert_int_equal(umn_interval_end(&c.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_invalidate_errors(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_invalidate(NULL, 0x1000, 0x2000, UMN_EVENT_UNMAP),
			 -EINVAL);
	assert_int_equal(umn_invalidate(mm, 0x1800, 0x1800, UMN_EVENT_UNMAP),
			 -EINVAL);
	assert_int_equal(umn_invalidate(mm, 0x1900, 0x1800, UMN_EVENT_UNMAP),
			 -EINVAL);
	assert_int_equal(umn_invalidate(mm, 0x1000, 0x2000,
					(enum umn_event)4), -EINVAL);
	assert_int_equal(umn_invalidate(mm, 0x1000, 0x2000,
					(enum umn_event)1000), -EINVAL);
	assert_int_equal(c.calls, 0);

	/* Each known event goes through with the caller's range. */
	const enum umn_event events[] = {
		UMN_EVENT_UNMAP, UMN_EVENT_CLEAR, UMN_EVENT_PROTECTION,
		UMN_EVENT_REMAP,
	};
	unsigned long prev_seq = 0;
	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		assert_int_equal(umn_invalidate(mm, 0x1800, 0x2800, events[i]),
				 0);
		assert_int_equal(c.calls, (int)i + 1);
		assert_ptr_equal(c.last.mm, mm);
		assert_true(c.last.start == 0x1800);
		assert_true(c.last.end == 0x2800);
		assert_int_equal(c.last.event, events[i]);
		assert_true(c.last.flags & UMN_RANGE_BLOCKABLE);
		assert_true(c.last_seq != prev_seq);
		prev_seq = c.last_seq;
	}
	assert_int_equal(umn_interval_remove(&c.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_range_start_errors(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};
	struct umn_range r;

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_invalidate_range_start(NULL), -EINVAL);
	r = (struct umn_range){ .mm = NULL, .start = 0x1000, .end = 0x2000,
				.flags = UMN_RANGE_BLOCKABLE };
	assert_int_equal(umn_invalidate_range_start(&r), -EINVAL);
	r = (struct umn_range){ .mm = mm, .start = 0x1800, .end = 0x1800,
				.flags = UMN_RANGE_BLOCKABLE };
	assert_int_equal(umn_invalidate_range_start(&r), -EINVAL);
	r = (struct umn_range){ .mm = mm, .start = 0x1900, .end = 0x1800,
				.flags = UMN_RANGE_BLOCKABLE };
	assert_int_equal(umn_invalidate_range_start(&r), -EINVAL);
	r = (struct umn_range){ .mm = mm, .start = 0x1000, .end = 0x2000,
				.event = (enum umn_event)7,
				.flags = UMN_RANGE_BLOCKABLE };
	assert_int_equal(umn_invalidate_range_start(&r), -EINVAL);
	r = (struct umn_range){ .mm = mm, .start = 0x1000, .end = 0x2000,
				.flags = UMN_RANGE_BLOCKABLE | 2u };
	assert_int_equal(umn_invalidate_range_start(&r), -EINVAL);
	r = (struct umn_range){ .mm = mm, .start = 0x1000, .end = 0x2000,
				.flags = 0x80000000u };
	assert_int_equal(umn_invalidate_range_start(&r), -EINVAL);
	assert_int_equal(c.calls, 0);
	/* None of the failures left a walk behind. */
	assert_int_equal(umn_interval_remove(&c.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* Beginning a range that this thread has begun and not ended is -EBUSY,
 * and does not count as a second walk. */
static void test_range_start_ebusy_when_begun(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};
	struct umn_range r = {
		.start = 0x1000, .end = 0x2000,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	assert_non_null(mm);
	r.mm = mm;
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	assert_int_equal(c.calls, 1);
	assert_int_equal(umn_invalidate_range_start(&r), -EBUSY);
	assert_int_equal(c.calls, 1);
	umn_invalidate_range_end(&r);
	/* One end was enough: the space is idle again. */
	assert_int_equal(umn_interval_put(&c.sub), 0);
	assert_int_equal(atomic_load(&c.released), 1);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_range_start_end(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};
	int cookie;
	struct umn_range r = {
		.mm = mm, .start = 0x1800, .end = 0x1900,
		.event = UMN_EVENT_CLEAR, .flags = 0, .owner = &cookie,
	};

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	assert_int_equal(c.calls, 1);
	assert_ptr_equal(c.last.mm, mm);
	assert_ptr_equal(c.last.owner, &cookie);
	assert_int_equal(c.last.flags, 0);
	assert_int_equal(c.last.event, UMN_EVENT_CLEAR);
	assert_true(c.last.start == 0x1800 && c.last.end == 0x1900);
	/* The walk is open: a put waits for range_end. */
	assert_int_equal(umn_interval_put(&c.sub), 0);
	assert_int_equal(c.released, 0);
	umn_invalidate_range_end(&r);
	assert_int_equal(c.released, 1);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_range_end_ignores_unbegun(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};
	struct umn_range r1 = {
		.mm = mm, .start = 0x9000, .end = 0xa000,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};
	struct umn_range r2 = r1, never = r1;

	assert_non_null(mm);
	r1.mm = r2.mm = never.mm = mm;
	umn_invalidate_range_end(NULL);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_invalidate_range_start(&r1), 0);
	assert_int_equal(umn_invalidate_range_start(&r2), 0);
	umn_invalidate_range_end(&r1);
	/* Neither an ended range nor one never begun ends r2's walk. */
	umn_invalidate_range_end(&r1);
	umn_invalidate_range_end(&never);
	umn_invalidate_range_end(NULL);
	assert_int_equal(umn_interval_put(&c.sub), 0);
	assert_int_equal(c.released, 0);
	assert_int_equal(umn_mm_free(mm), -EBUSY);
	umn_invalidate_range_end(&r2);
	assert_int_equal(c.released, 1);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_synchronize(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};

	assert_non_null(mm);
	assert_int_equal(umn_synchronize(NULL), -EINVAL);
	assert_int_equal(umn_synchronize(mm), 0);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_synchronize(mm), 0);
	assert_int_equal(hits(mm, &c.calls, 0x1000, 0x2000), 1);
	assert_int_equal(umn_synchronize(mm), 0);
	assert_int_equal(umn_interval_remove(&c.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_seq_basics(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0}, z = {0};
	unsigned long seq;

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	seq = umn_read_begin(&c.sub);
	assert_false(umn_read_retry(&c.sub, seq));
	assert_false(umn_check_retry(&c.sub, seq));

	/* A range that does not overlap does not reach it. */
	assert_int_equal(hits(mm, &c.calls, 0x2000, 0x3000), 0);
	assert_false(umn_read_retry(&c.sub, seq));
	assert_false(umn_check_retry(&c.sub, seq));

	/* One that does, and set_seq'd, forces a retry. */
	assert_int_equal(hits(mm, &c.calls, 0x1fff, 0x3000), 1);
	assert_true(umn_read_retry(&c.sub, seq));
	assert_true(umn_check_retry(&c.sub, seq));

	/* A fresh read after it is clean again. */
	seq = umn_read_begin(&c.sub);
	assert_false(umn_read_retry(&c.sub, seq));
	assert_false(umn_check_retry(&c.sub, seq));
	assert_int_equal(hits(mm, &c.calls, 0x1000, 0x1001), 1);
	assert_true(umn_read_retry(&c.sub, seq));

	/* An update makes reads begun before it retry, even with no walk. */
	seq = umn_read_begin(&c.sub);
	assert_false(umn_read_retry(&c.sub, seq));
	assert_int_equal(umn_interval_update(&c.sub, 0x1000, 0x800), 0);
	assert_true(umn_read_retry(&c.sub, seq));
	assert_true(umn_check_retry(&c.sub, seq));
	seq = umn_read_begin(&c.sub);
	assert_false(umn_read_retry(&c.sub, seq));

	/* Not inserted: always retry. */
	seq = umn_read_begin(&z.sub);
	assert_true(umn_read_retry(&z.sub, seq));
	assert_true(umn_check_retry(&z.sub, seq));

	assert_int_equal(umn_interval_remove(&c.sub), 0);
	seq = umn_read_begin(&c.sub);
	assert_true(umn_read_retry(&c.sub, seq));
	assert_true(umn_check_retry(&c.sub, seq));
	assert_int_equal(umn_mm_free(mm), 0);
}

static struct umn_interval static_sub;

/* A zero-filled subscription: not inserted, and insertable. */
static void check_zero_filled(struct umn_mm *mm, struct umn_interval *sub)
{
	unsigned long seq;

	assert_int_equal(umn_interval_start(sub), 0);
	assert_int_equal(umn_interval_end(sub), 0);
	assert_int_equal(umn_interval_remove(sub), -ENOENT);
	assert_int_equal(umn_interval_put(sub), -ENOENT);
	assert_int_equal(umn_interval_update(sub, 0x1000, 0x1000), -ENOENT);
	seq = umn_read_begin(sub);
	assert_true(umn_read_retry(sub, seq));
	assert_int_equal(umn_interval_insert(sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_true(umn_interval_start(sub) == 0x1000);
	assert_int_equal(umn_interval_remove(sub), 0);
}

static void test_zero_filled_is_not_inserted(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct umn_interval on_stack = {0};
	struct umn_interval *on_heap = calloc(1, sizeof(*on_heap));

	assert_non_null(mm);
	assert_non_null(on_heap);
	check_zero_filled(mm, &static_sub);
	check_zero_filled(mm, &on_stack);
	check_zero_filled(mm, on_heap);
	free(on_heap);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_reinsert_after_remove_and_release(void **state)
{
	struct umn_mm *mm = umn_mm_new(), *other = umn_mm_new();
	struct counter c = {0};
	struct umn_range r = {
		.mm = mm, .start = 0x9000, .end = 0xa000,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	assert_non_null(mm);
	assert_non_null(other);
	r.mm = mm;
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_interval_remove(&c.sub), 0);

	/* Removed: in again, elsewhere. */
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x5000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(hits(mm, &c.calls, 0x1000, 0x2000), 0);
	assert_int_equal(hits(mm, &c.calls, 0x5000, 0x6000), 1);

	/* Released by a put outside a walk: in again, another space. */
	assert_int_equal(umn_interval_put(&c.sub), 0);
	assert_int_equal(c.released, 1);
	assert_int_equal(umn_interval_insert(&c.sub, other, 0x7000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(hits(mm, &c.calls, 0x5000, 0x6000), 0);
	assert_int_equal(hits(other, &c.calls, 0x7000, 0x8000), 1);
	assert_int_equal(umn_interval_remove(&c.sub), 0);

	/* Released at the end of a walk: in again. */
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	assert_int_equal(umn_interval_put(&c.sub), 0);
	umn_invalidate_range_end(&r);
	assert_int_equal(c.released, 2);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x3000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(hits(mm, &c.calls, 0x3000, 0x3001), 1);
	assert_int_equal(umn_interval_remove(&c.sub), 0);

	assert_int_equal(umn_mm_free(mm), 0);
	assert_int_equal(umn_mm_free(other), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mm_new_free),
		cmocka_unit_test(test_mm_free_busy_while_subscribed),
		cmocka_unit_test(test_mm_free_busy_while_walking_or_putting),
		cmocka_unit_test(test_mm_free_busy_inside_callbacks),
		cmocka_unit_test(test_mm_new_flags),
		cmocka_unit_test(test_insert_einval),
		cmocka_unit_test(test_insert_eoverflow),
		cmocka_unit_test(test_insert_ebusy),
		cmocka_unit_test(test_remove_errors),
		cmocka_unit_test(test_put_errors),
		cmocka_unit_test(test_put_twice_while_walking_ealready),
		cmocka_unit_test(test_put_twice_in_own_walk_ealready),
		cmocka_unit_test(test_remove_under_way),
		cmocka_unit_test(test_read_begin_waits_for_walk_that_reached_it),
		cmocka_unit_test(test_update_errors),
		cmocka_unit_test(test_bounds_end_exclusive),
		cmocka_unit_test(test_invalidate_errors),
		cmocka_unit_test(test_range_start_errors),
		cmocka_unit_test(test_range_start_ebusy_when_begun),
		cmocka_unit_test(test_range_start_end),
		cmocka_unit_test(test_range_end_ignores_unbegun),
		cmocka_unit_test(test_synchronize),
		cmocka_unit_test(test_seq_basics),
		cmocka_unit_test(test_zero_filled_is_not_inserted),
		cmocka_unit_test(test_reinsert_after_remove_and_release),
	};

	/* Watchdog: a library that hangs fails the binary instead. */
	alarm(60);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
