/* SPDX-License-Identifier: MIT */
/*
 * umn_interval_remove() and umn_synchronize() wait for the walks of their
 * space.  Called where that would wait for the caller itself — inside an
 * ->invalidate() or ->release() of the space, or between range_start and
 * range_end on it on the same thread — they return -EDEADLK and change
 * nothing; on another space they work.  Called from outside, they wait for
 * a walk in progress on another thread and return 0 once it has ended.
 */
#include "core/helpers.h"

#include <unistd.h>

/*
 * What a callback tries, once: remove and synchronize on its own space
 * (@self, @sibling, @mm) and on another space (@foreign, @foreign_mm).
 */
struct attempt {
	struct umn_mm *mm, *foreign_mm;
	struct umn_interval *self, *sibling, *foreign;
	bool done;
	int remove_self, remove_sibling, sync_own;
	int remove_foreign, sync_foreign;
};

static void attempt_run(struct attempt *a)
{
	if (a->done)
		return;
	a->done = true;
	a->remove_self = a->self ? umn_interval_remove(a->self) : 0;
	a->remove_sibling = umn_interval_remove(a->sibling);
	a->sync_own = umn_synchronize(a->mm);
	a->remove_foreign = umn_interval_remove(a->foreign);
	a->sync_foreign = umn_synchronize(a->foreign_mm);
}

static void attempt_check(const struct attempt *a)
{
	assert_true(a->done);
	assert_int_equal(a->remove_self, a->self ? -EDEADLK : 0);
	assert_int_equal(a->remove_sibling, -EDEADLK);
	assert_int_equal(a->sync_own, -EDEADLK);
	assert_int_equal(a->remove_foreign, 0);
	assert_int_equal(a->sync_foreign, 0);
}

/* Tries the attempt from its ->invalidate(). */
struct trier {
	struct umn_interval sub;
	struct attempt *a;
	int calls;
};

static bool trier_invalidate(struct umn_interval *sub,
			     const struct umn_range *range,
			     unsigned long cur_seq)
{
	struct trier *t = container_of(sub, struct trier, sub);

	t->calls++;
	umn_set_seq(sub, cur_seq);
	attempt_run(t->a);
	return true;
}

static const struct umn_interval_ops trier_ops = {
	.invalidate = trier_invalidate,
};

/* Tries the attempt from its ->release(). */
struct releaser {
	struct umn_interval sub;
	struct attempt *a;
	int released;
};

static void releaser_release(struct umn_interval *sub)
{
	struct releaser *r = container_of(sub, struct releaser, sub);

	r->released++;
	attempt_run(r->a);
}

static const struct umn_interval_ops releaser_ops = {
	.invalidate = plain_invalidate,
	.release = releaser_release,
};

/*
 * A space with a trier or releaser and a sibling, and a foreign space with
 * one subscription.  Heap-allocated: if the library self-deadlocks, the
 * stuck job keeps it.
 */
struct scene {
	struct umn_mm *mm, *foreign_mm;
	struct umn_interval sibling, foreign;
	struct trier t;
	struct releaser r;
	struct umn_range range;
	struct attempt a;
	int ret[3];
};

static struct scene *scene_new(void)
{
	struct scene *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->mm = umn_mm_new();
	s->foreign_mm = umn_mm_new();
	assert_non_null(s->mm);
	assert_non_null(s->foreign_mm);
	assert_int_equal(umn_interval_insert(&s->sibling, s->mm, 0x50000,
					     0x1000, &plain_ops), 0);
	assert_int_equal(umn_interval_insert(&s->foreign, s->foreign_mm,
					     0x50000, 0x1000, &plain_ops), 0);
	s->a.mm = s->mm;
	s->a.foreign_mm = s->foreign_mm;
	s->a.sibling = &s->sibling;
	s->a.foreign = &s->foreign;
	s->t.a = &s->a;
	s->r.a = &s->a;
	s->range = (struct umn_range){
		.mm = s->mm, .start = 0x10000, .end = 0x11000,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};
	return s;
}

/* After a refused attempt: the own space is intact, the foreign sub gone. */
static void scene_free(struct scene *s)
{
	assert_true(umn_interval_start(&s->sibling) == 0x50000);
	assert_int_equal(umn_interval_start(&s->foreign), 0);
	assert_int_equal(umn_interval_remove(&s->sibling), 0);
	assert_int_equal(umn_synchronize(s->mm), 0);
	assert_int_equal(umn_mm_free(s->mm), 0);
	assert_int_equal(umn_mm_free(s->foreign_mm), 0);
	free(s);
}

/*
 * Run @fn(@s) on a helper thread and wait for it at most WAIT_S: a library
 * that waits for itself instead of returning -EDEADLK fails the test rather
 * than hanging it.
 */
struct job {
	pthread_t thread;
	void (*fn)(struct scene *s);
	struct scene *s;
	atomic_int done;
};

static void *job_main(void *arg)
{
	struct job *j = arg;

	j->fn(j->s);
	atomic_store(&j->done, 1);
	return NULL;
}

static void run_bounded(void (*fn)(struct scene *s), struct scene *s)
{
	struct job *j = calloc(1, sizeof(*j));

	assert_non_null(j);
	j->fn = fn;
	j->s = s;
	assert_int_equal(pthread_create(&j->thread, NULL, job_main, j), 0);
	assert_true(wait_for(&j->done, 1, WAIT_S));
	assert_int_equal(pthread_join(j->thread, NULL), 0);
	free(j);
}

static void invalidate_twice(struct scene *s)
{
	s->ret[0] = umn_invalidate(s->mm, 0x10000, 0x11000, UMN_EVENT_UNMAP);
	s->ret[1] = umn_invalidate(s->mm, 0x10000, 0x11000, UMN_EVENT_UNMAP);
}

static void test_in_invalidate(void **state)
{
	struct scene *s = scene_new();

	s->a.self = &s->t.sub;
	assert_int_equal(umn_interval_insert(&s->t.sub, s->mm, 0x10000, 0x1000,
					     &trier_ops), 0);
	run_bounded(invalidate_twice, s);
	assert_int_equal(s->ret[0], 0);
	attempt_check(&s->a);
	/* Refused: still inserted, reached again by the second walk. */
	assert_int_equal(s->ret[1], 0);
	assert_int_equal(s->t.calls, 2);
	assert_true(umn_interval_start(&s->t.sub) == 0x10000);
	assert_int_equal(umn_interval_remove(&s->t.sub), 0);
	scene_free(s);
}

static void put_in_walk(struct scene *s)
{
	s->ret[0] = umn_invalidate_range_start(&s->range);
	s->ret[1] = umn_interval_put(&s->r.sub);
	s->ret[2] = s->r.released;
	if (!s->ret[0])
		umn_invalidate_range_end(&s->range);
}

/* release() run at the end of a walk (the put was deferred). */
static void test_in_release_after_walk(void **state)
{
	struct scene *s = scene_new();

	assert_int_equal(umn_interval_insert(&s->r.sub, s->mm, 0x10000, 0x1000,
					     &releaser_ops), 0);
	run_bounded(put_in_walk, s);
	assert_int_equal(s->ret[0], 0);
	assert_int_equal(s->ret[1], 0);
	assert_int_equal(s->ret[2], 0);
	assert_int_equal(s->r.released, 1);
	attempt_check(&s->a);
	scene_free(s);
}

static void put_alone(struct scene *s)
{
	s->ret[0] = umn_interval_put(&s->r.sub);
}

/* release() run by put() itself (no walk in progress). */
static void test_in_release_from_put(void **state)
{
	struct scene *s = scene_new();

	assert_int_equal(umn_interval_insert(&s->r.sub, s->mm, 0x10000, 0x1000,
					     &releaser_ops), 0);
	run_bounded(put_alone, s);
	assert_int_equal(s->ret[0], 0);
	assert_int_equal(s->r.released, 1);
	attempt_check(&s->a);
	scene_free(s);
}

static void attempt_in_range(struct scene *s)
{
	s->ret[0] = umn_invalidate_range_start(&s->range);
	attempt_run(&s->a);
	if (!s->ret[0])
		umn_invalidate_range_end(&s->range);
	/* Ended: the same thread may wait on the space again. */
	s->ret[1] = umn_synchronize(s->mm);
}

static void test_between_range_start_and_end(void **state)
{
	struct scene *s = scene_new();

	run_bounded(attempt_in_range, s);
	assert_int_equal(s->ret[0], 0);
	attempt_check(&s->a);
	assert_int_equal(s->ret[1], 0);
	scene_free(s);
}

/*
 * A thread calling remove(@sub) or synchronize(@mm), recording what the
 * blocker, a pending update and a pending put looked like when it returned.
 */
struct waiter {
	pthread_t thread;
	struct umn_interval *sub;       /* remove this, or */
	struct umn_mm *mm;              /* synchronize this */
	struct blocker *b;
	struct umn_interval *updated;
	atomic_int *released;
	int ret;
	int blocker_returned;
	uintptr_t updated_start;
	int released_seen;
	atomic_int done;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->ret = w->sub ? umn_interval_remove(w->sub) : umn_synchronize(w->mm);
	w->blocker_returned = atomic_load(&w->b->returned);
	if (w->updated)
		w->updated_start = umn_interval_start(w->updated);
	if (w->released)
		w->released_seen = atomic_load(w->released);
	atomic_store(&w->done, 1);
	return NULL;
}

static void waiter_start(struct waiter *w)
{
	atomic_init(&w->done, 0);
	assert_int_equal(pthread_create(&w->thread, NULL, waiter_main, w), 0);
}

static void waiter_join(struct waiter *w)
{
	assert_true(wait_for(&w->done, 1, WAIT_S));
	assert_int_equal(pthread_join(w->thread, NULL), 0);
}

/* remove() of the subscription whose callback is running on another
 * thread returns only after that callback has. */
static void test_remove_waits_for_running_callback(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct blocker b = {0};
	struct walker w;
	struct waiter r = {0};

	assert_non_null(mm);
	block_walk(&w, &b, mm);
	r.sub = &b.sub;
	r.b = &b;
	waiter_start(&r);
	sleep_ms(100);
	assert_int_equal(atomic_load(&r.done), 0);

	atomic_store(&b.open, 1);
	waiter_join(&r);
	walker_join(&w);
	assert_int_equal(r.ret, 0);
	assert_int_equal(r.blocker_returned, 1);
	assert_int_equal(umn_interval_start(&b.sub), 0);
	assert_int_equal(umn_invalidate(mm, 0x100000, 0x110000,
					UMN_EVENT_UNMAP), 0);
	assert_int_equal(atomic_load(&b.entered), 1);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* remove() of a subscription the walk has not reached still waits for
 * the walks in progress (its kernel-doc: "Waits for the walks"). */
static void test_remove_other_sub_waits_for_walk(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct blocker b = {0};
	struct umn_interval t = {0};
	struct walker w;
	struct waiter r = {0};

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&t, mm, 0x10000, 0x1000,
					     &plain_ops), 0);
	block_walk(&w, &b, mm);
	r.sub = &t;
	r.b = &b;
	waiter_start(&r);
	sleep_ms(100);
	assert_int_equal(atomic_load(&r.done), 0);

	atomic_store(&b.open, 1);
	waiter_join(&r);
	walker_join(&w);
	assert_int_equal(r.ret, 0);
	assert_int_equal(r.blocker_returned, 1);
	assert_int_equal(umn_interval_start(&t), 0);
	assert_int_equal(umn_interval_remove(&b.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* synchronize() waits for the walk, the update queued before it and the
 * release due before it. */
static void test_synchronize_waits_for_walk(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct blocker b = {0};
	struct umn_interval t = {0};
	struct counter p = {0};
	struct walker w;
	struct waiter s = {0};

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&t, mm, 0x10000, 0x1000,
					     &plain_ops), 0);
	assert_int_equal(umn_interval_insert(&p.sub, mm, 0x20000, 0x1000,
					     &counter_ops), 0);
	block_walk(&w, &b, mm);
	assert_int_equal(umn_interval_update(&t, 0x30000, 0x1000), 0);
	assert_int_equal(umn_interval_put(&p.sub), 0);
	assert_int_equal(atomic_load(&p.released), 0);

	s.mm = mm;
	s.b = &b;
	s.updated = &t;
	s.released = &p.released;
	waiter_start(&s);
	sleep_ms(100);
	assert_int_equal(atomic_load(&s.done), 0);

	atomic_store(&b.open, 1);
	waiter_join(&s);
	walker_join(&w);
	assert_int_equal(s.ret, 0);
	assert_int_equal(s.blocker_returned, 1);
	assert_true(s.updated_start == 0x30000);
	assert_int_equal(s.released_seen, 1);

	assert_int_equal(umn_interval_remove(&t), 0);
	assert_int_equal(umn_interval_remove(&b.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* With nothing in flight, neither waits. */
static void test_outside_idle_space_returns_at_once(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct umn_interval t = {0};
	struct blocker b = {0};
	struct waiter s = {0};

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&t, mm, 0x10000, 0x1000,
					     &plain_ops), 0);
	s.mm = mm;
	s.b = &b;
	waiter_start(&s);
	waiter_join(&s);
	assert_int_equal(s.ret, 0);
	assert_int_equal(umn_interval_remove(&t), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_invalidate),
		cmocka_unit_test(test_in_release_after_walk),
		cmocka_unit_test(test_in_release_from_put),
		cmocka_unit_test(test_between_range_start_and_end),
		cmocka_unit_test(test_remove_waits_for_running_callback),
		cmocka_unit_test(test_remove_other_sub_waits_for_walk),
		cmocka_unit_test(test_synchronize_waits_for_walk),
		cmocka_unit_test(test_outside_idle_space_returns_at_once),
	};

	/* Watchdog: a library that hangs fails the binary instead. */
	alarm(60);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
