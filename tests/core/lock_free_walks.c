// SPDX-License-Identifier: MIT
/*
 * Walks that overlap no subscription take no lock (src/core/defer.c), yet
 * they are walks: while one is in progress the tree does not change, and
 * inserts, puts, removes and updates wait for it to end (SPEC §3).  This
 * proves that, and that lock-free and locked walks racing with writers on
 * heap subscriptions freed right after their remove or release never read a
 * freed node (AddressSanitizer) or race (ThreadSanitizer).
 */
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "core/core.h"
#include "core/helpers.h"

#define FAR_START 0x900000 /* where the lock-free walks go: no subscription */
#define FAR_END   0x910000

/* A thread that begins a lock-free walk and ends it when told. */
struct holder {
	pthread_t thread;
	struct umn_mm *mm;
	atomic_int begun, stop, ended;
};

static void *holder_main(void *arg)
{
	struct holder *h = arg;
	struct umn_range r = {
		.mm = h->mm, .start = FAR_START, .end = FAR_END,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	if (umn_invalidate_range_start(&r) == 0) {
		atomic_store(&h->begun, 1);
		wait_for(&h->stop, 1, WAIT_S);
		umn_invalidate_range_end(&r);
	}
	atomic_store(&h->ended, 1);
	return NULL;
}

static void holder_start(struct holder *h, struct umn_mm *mm)
{
	h->mm = mm;
	atomic_init(&h->begun, 0);
	atomic_init(&h->stop, 0);
	atomic_init(&h->ended, 0);
	assert_int_equal(pthread_create(&h->thread, NULL, holder_main, h), 0);
	assert_true(wait_for(&h->begun, 1, WAIT_S));
}

static void holder_stop(struct holder *h)
{
	atomic_store(&h->stop, 1);
	assert_true(wait_for(&h->ended, 1, WAIT_S));
	assert_int_equal(pthread_join(h->thread, NULL), 0);
}

static void test_insert_waits_for_lock_free_walk(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0};
	struct holder h;
	struct reader rd;

	assert_non_null(mm);
	holder_start(&h, mm);
	/* Deferred: the walk in progress holds the tree. */
	assert_int_equal(umn_interval_insert(&c.sub, mm, FAR_START, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_interval_start(&c.sub), 0);
	/* A reader of it waits: that walk may be changing its memory. */
	reader_start(&rd, &c.sub);
	sleep_ms(100);
	assert_int_equal(atomic_load(&rd.done), 0);
	holder_stop(&h);
	reader_join(&rd);
	assert_int_equal(umn_interval_start(&c.sub), FAR_START);
	assert_false(umn_read_retry(&c.sub, rd.seq));
	assert_int_equal(hits(mm, &c.calls, FAR_START, FAR_END), 1);
	assert_true(umn_read_retry(&c.sub, rd.seq));
	assert_int_equal(umn_interval_remove(&c.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* A call that may wait, made on a thread of its own: remove or synchronize. */
struct job {
	struct umn_mm *mm;         /* for synchronize */
	struct umn_interval *sub;  /* for remove */
	atomic_int done;
	int ret;
};

static void *job_finish(struct job *j, int ret)
{
	j->ret = ret;
	atomic_store(&j->done, 1);
	return NULL;
}

static void *remove_main(void *arg)
{
	struct job *j = arg;

	return job_finish(j, umn_interval_remove(j->sub));
}

static void *sync_main(void *arg)
{
	struct job *j = arg;

	return job_finish(j, umn_synchronize(j->mm));
}

static void test_remove_and_put_wait_for_lock_free_walk(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter a = {0}, b = {0};
	struct job j = { .sub = &a.sub };
	struct holder h;
	pthread_t t;

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&a.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_interval_insert(&b.sub, mm, 0x3000, 0x1000,
					     &counter_ops), 0);
	holder_start(&h, mm);
	/* The space is busy while the walk is in progress. */
	assert_int_equal(umn_mm_free(mm), -EBUSY);
	atomic_init(&j.done, 0);
	assert_int_equal(pthread_create(&t, NULL, remove_main, &j), 0);
	assert_int_equal(umn_interval_put(&b.sub), 0);
	sleep_ms(100);
	assert_int_equal(atomic_load(&j.done), 0);
	assert_int_equal(atomic_load(&b.released), 0);
	/* Walks that overlap the deferred subscriptions still reach them. */
	assert_int_equal(hits(mm, &b.calls, 0x3000, 0x4000), 1);
	holder_stop(&h); /* its end applies the list and releases b */
	assert_true(wait_for(&j.done, 1, WAIT_S));
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(j.ret, 0);
	assert_int_equal(atomic_load(&b.released), 1);
	assert_int_equal(hits(mm, &a.calls, 0x1000, 0x4000), 0);
	assert_int_equal(atomic_load(&b.calls_after_release), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* A lock-free walk that finds an overlap becomes a locked walk at once. */
static void test_overlap_makes_a_period(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct counter c = {0}, d = {0};
	struct umn_range r = {
		.mm = mm, .start = 0x1000, .end = 0x2000,
		.event = UMN_EVENT_CLEAR, .flags = UMN_RANGE_BLOCKABLE,
	};
	struct reader rd;

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_interval_insert(&d.sub, mm, 0x5000, 0x1000,
					     &counter_ops), 0);
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	assert_int_equal(atomic_load(&c.calls), 1);
	assert_int_equal(c.last.event, UMN_EVENT_CLEAR);
	assert_true(c.last_seq & 1); /* a period's odd sequence */
	/* Its reader waits for the period; the other's does not. */
	reader_start(&rd, &c.sub);
	assert_int_equal(umn_read_begin(&d.sub) & 1, 1);
	sleep_ms(50);
	assert_int_equal(atomic_load(&rd.done), 0);
	umn_invalidate_range_end(&r);
	reader_join(&rd);
	assert_int_equal(rd.seq, c.last_seq);
	assert_int_equal(umn_interval_remove(&c.sub), 0);
	assert_int_equal(umn_interval_remove(&d.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/*
 * A deferral made while only a lock-free walk holds the tree must be applied
 * when that walk ends, with no other walk to help.  The walk's end and the
 * writer's claim race closely here, round after round; a gap between
 * "the writer saw the walk" and "the walk will settle" strands the insert.
 */
#define ANCHOR 0x800000 /* a subscription whose walks are locked */

struct rounds {
	struct umn_mm *mm;
	atomic_long round, walked; /* round -1: stop */
};

/* Spin (the race wants both threads running), yielding if it drags on:
 * on a loaded machine, two spinning threads would starve each other.
 * Returns the value that ended the wait. */
static long spin_until(atomic_long *v, long want)
{
	long x;

	for (unsigned n = 0; (x = atomic_load(v)) >= 0 && x < want; n++)
		if (n > 1000)
			sched_yield();
	return x;
}

static void *rounds_walker(void *arg)
{
	struct rounds *r = arg;

	for (long i = 1; spin_until(&r->round, i) >= 0; i++) {
		umn_invalidate(r->mm, FAR_START, FAR_END, UMN_EVENT_UNMAP);
		atomic_store(&r->walked, i);
	}
	return NULL;
}

static void test_no_stranded_deferral(void **state)
{
	struct umn_interval sub = {0}, anchor = {0};
	double end = now_s() + test_stress_seconds() / 2;
	struct rounds r;
	long i, stranded = 0;
	pthread_t t;

	r.mm = umn_mm_new();
	assert_non_null(r.mm);
	assert_int_equal(umn_interval_insert(&anchor, r.mm, ANCHOR, 0x1000,
					     &plain_ops), 0);
	atomic_init(&r.round, 0);
	atomic_init(&r.walked, 0);
	assert_int_equal(pthread_create(&t, NULL, rounds_walker, &r), 0);
	for (i = 1; i <= 20000 && (i < 2000 || now_s() < end); i++) {
		atomic_store(&r.round, i);
		assert_int_equal(umn_interval_insert(&sub, r.mm, 0x1000, 0x1000,
						     &plain_ops), 0);
		spin_until(&r.walked, i);
		/* No walk is in progress: the insert must be applied. */
		if (umn_interval_start(&sub) != 0x1000) {
			stranded++;
			/* A locked walk's end settles: unstick it, so that a
			 * regression fails here rather than hangs in remove. */
			umn_invalidate(r.mm, ANCHOR, ANCHOR + 1, UMN_EVENT_UNMAP);
		}
		assert_int_equal(umn_interval_remove(&sub), 0);
	}
	atomic_store(&r.round, -1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(stranded, 0);
	assert_int_equal(umn_interval_remove(&anchor), 0);
	assert_int_equal(umn_mm_free(r.mm), 0);
}

/* synchronize waits for every walk in flight, lock-free ones included;
 * once it returns, the space may be freed. */
static void test_synchronize_waits_for_lock_free_walk(void **state)
{
	struct job j = { .mm = umn_mm_new() };
	struct holder h;
	pthread_t t;

	assert_non_null(j.mm);
	atomic_init(&j.done, 0);
	holder_start(&h, j.mm);
	assert_int_equal(pthread_create(&t, NULL, sync_main, &j), 0);
	sleep_ms(100);
	assert_int_equal(atomic_load(&j.done), 0);
	holder_stop(&h);
	assert_true(wait_for(&j.done, 1, WAIT_S));
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(j.ret, 0);
	assert_int_equal(umn_mm_free(j.mm), 0);
}

/*
 * Two synchronizes: S1 waits for a release batch, S2 for a lock-free walk it
 * marked.  Whichever ends first must not leave the other asleep once the
 * walk is gone (a synchronize that cleared the marks without a wake did).
 */
struct two_sync {
	struct umn_mm *mm;
	struct umn_interval sub;
	atomic_int rel_in, rel_go;
};

static struct two_sync *two_sync_cur;

static void two_sync_release(struct umn_interval *sub)
{
	atomic_store(&two_sync_cur->rel_in, 1);
	wait_for(&two_sync_cur->rel_go, 1, WAIT_S);
}

static const struct umn_interval_ops two_sync_ops = {
	.invalidate = plain_invalidate,
	.release = two_sync_release,
};

static void *two_sync_put(void *arg)
{
	umn_interval_put(&((struct two_sync *)arg)->sub);
	return NULL;
}

static unsigned waiters_of(struct umn_mm *mm)
{
	umn__mm_lock(mm);
	unsigned n = mm->waiters;

	umn__mm_unlock(mm);
	return n;
}

static void wait_waiters(struct umn_mm *mm, unsigned n)
{
	double end = now_s() + WAIT_S;

	while (waiters_of(mm) < n && now_s() < end)
		sleep_ms(1);
	assert_true(waiters_of(mm) >= n);
}

static void test_two_synchronizes(void **state)
{
	struct two_sync ts = { .mm = umn_mm_new() };

	assert_non_null(ts.mm);
	two_sync_cur = &ts;
	for (int round = 0; round < 60; round++) {
		struct job s1 = { .mm = ts.mm }, s2 = { .mm = ts.mm };
		pthread_t tp, t1, t2;
		struct holder h;

		atomic_init(&ts.rel_in, 0);
		atomic_init(&ts.rel_go, 0);
		atomic_init(&s1.done, 0);
		atomic_init(&s2.done, 0);
		assert_int_equal(umn_interval_insert(&ts.sub, ts.mm, 0x1000,
						     0x1000, &two_sync_ops), 0);
		assert_int_equal(pthread_create(&tp, NULL, two_sync_put, &ts), 0);
		assert_true(wait_for(&ts.rel_in, 1, WAIT_S)); /* batch in flight */
		assert_int_equal(pthread_create(&t1, NULL, sync_main, &s1), 0);
		wait_waiters(ts.mm, 1);
		holder_start(&h, ts.mm);                      /* lock-free walk */
		assert_int_equal(pthread_create(&t2, NULL, sync_main, &s2), 0);
		wait_waiters(ts.mm, 2);
		atomic_store(&ts.rel_go, 1);                  /* the batch ends */
		assert_true(wait_for(&s1.done, 1, WAIT_S));
		holder_stop(&h);                              /* the walk ends */
		assert_true(wait_for(&s2.done, 1, 1.0));
		assert_int_equal(pthread_join(tp, NULL), 0);
		assert_int_equal(pthread_join(t1, NULL), 0);
		assert_int_equal(pthread_join(t2, NULL), 0);
	}
	assert_int_equal(umn_mm_free(ts.mm), 0);
}

/* synchronize, then free at once, while lock-free walks are ending: the
 * walks must be done with the space (ASan reports it otherwise). */
static void test_synchronize_then_free(void **state)
{
	for (int round = 0; round < 200; round++) {
		struct umn_mm *mm = umn_mm_new();
		struct holder h[2];

		assert_non_null(mm);
		holder_start(&h[0], mm);
		holder_start(&h[1], mm);
		atomic_store(&h[0].stop, 1); /* they end while we synchronize */
		atomic_store(&h[1].stop, 1);
		assert_int_equal(umn_synchronize(mm), 0);
		assert_int_equal(umn_mm_free(mm), 0);
		for (int i = 0; i < 2; i++) {
			assert_true(wait_for(&h[i].ended, 1, WAIT_S));
			assert_int_equal(pthread_join(h[i].thread, NULL), 0);
		}
	}
}

/* Two threads put one subscription with no walk in progress: one succeeds,
 * the other gets an error, release runs once, nothing is erased twice. */
struct put_race {
	struct counter *c;
	pthread_barrier_t *go;
	int ret;
};

static void *put_main(void *arg)
{
	struct put_race *p = arg;

	pthread_barrier_wait(p->go);
	p->ret = umn_interval_put(&p->c->sub);
	return NULL;
}

static void test_concurrent_puts(void **state)
{
	struct umn_mm *mm = umn_mm_new();

	assert_non_null(mm);
	for (int round = 0; round < 300; round++) {
		struct counter c = {0};
		pthread_barrier_t go;
		struct put_race p[2] = { { &c, &go, 1 }, { &c, &go, 1 } };
		pthread_t t[2];

		assert_int_equal(umn_interval_insert(&c.sub, mm, 0x1000, 0x1000,
						     &counter_ops), 0);
		pthread_barrier_init(&go, NULL, 2);
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&t[i], NULL, put_main,
							&p[i]), 0);
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_join(t[i], NULL), 0);
		pthread_barrier_destroy(&go);
		assert_int_equal((p[0].ret == 0) + (p[1].ret == 0), 1);
		int err = p[0].ret ? p[0].ret : p[1].ret;

		assert_true(err == -EALREADY || err == -ENOENT);
		assert_int_equal(umn_synchronize(mm), 0);
		assert_int_equal(atomic_load(&c.released), 1);
	}
	assert_int_equal(umn_mm_free(mm), 0);
}

/*
 * The stress: heap subscriptions, freed as soon as they are ours again.
 * Threads other than the test's own count failures instead of asserting.
 */
static atomic_int stress_bad;

struct hsub {
	struct umn_interval sub;
	atomic_int released;
};

#define STRESS_SUBS 64
#define STRESS_SPAN 0x400000ul /* walks and subscriptions share this */

struct stress {
	struct umn_mm *mm;
	atomic_int stop;
	atomic_long walks;
	struct hsub *live[STRESS_SUBS]; /* the churn thread's own */
	unsigned seed;
};

static unsigned rnd(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static bool hsub_invalidate(struct umn_interval *sub,
			    const struct umn_range *range,
			    unsigned long cur_seq)
{
	struct hsub *h = container_of(sub, struct hsub, sub);

	/* Reading the node proves it is not freed (ASan). */
	if (atomic_load(&h->released))
		atomic_fetch_add(&stress_bad, 1);
	umn_set_seq(sub, cur_seq);
	return true;
}

static void hsub_release(struct umn_interval *sub)
{
	struct hsub *h = container_of(sub, struct hsub, sub);

	atomic_store(&h->released, 1);
	free(h);
}

static const struct umn_interval_ops hsub_ops = {
	.invalidate = hsub_invalidate,
	.release = hsub_release,
};

static void *stress_walker(void *arg)
{
	struct stress *st = arg;
	unsigned seed = (unsigned)(uintptr_t)&seed;

	while (!atomic_load(&st->stop)) {
		uintptr_t start = (rnd(&seed) % (STRESS_SPAN >> 12)) << 12;
		size_t len = ((rnd(&seed) % 4) + 1) << 12;

		if (umn_invalidate(st->mm, start, start + len, UMN_EVENT_UNMAP))
			atomic_fetch_add(&stress_bad, 1);
		atomic_fetch_add(&st->walks, 1);
	}
	return NULL;
}

static void churn_one(struct stress *st, unsigned *seed)
{
	unsigned i = rnd(seed) % STRESS_SUBS;
	struct hsub *h = st->live[i];
	uintptr_t start = (rnd(seed) % (STRESS_SPAN >> 12)) << 12;

	if (!h) {
		h = calloc(1, sizeof(*h));
		assert_non_null(h);
		assert_int_equal(umn_interval_insert(&h->sub, st->mm, start,
						     0x1000, &hsub_ops), 0);
		st->live[i] = h;
		return;
	}
	switch (rnd(seed) % 3) {
	case 0:
		assert_int_equal(umn_interval_remove(&h->sub), 0);
		free(h);
		st->live[i] = NULL;
		break;
	case 1:
		assert_int_equal(umn_interval_put(&h->sub), 0); /* frees */
		st->live[i] = NULL;
		break;
	default:
		assert_int_equal(umn_interval_update(&h->sub, start, 0x2000), 0);
		break;
	}
}

static void test_stress_walks_against_writers(void **state)
{
	struct stress st = { .seed = 1 };
	pthread_t w[2];
	double end;

	st.mm = umn_mm_new();
	assert_non_null(st.mm);
	atomic_init(&st.stop, 0);
	atomic_init(&st.walks, 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&w[i], NULL, stress_walker,
						&st), 0);
	end = now_s() + test_stress_seconds() / 2;
	while (now_s() < end)
		churn_one(&st, &st.seed);
	atomic_store(&st.stop, 1);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(w[i], NULL), 0);
	assert_true(atomic_load(&st.walks) > 0);
	assert_int_equal(atomic_load(&stress_bad), 0);
	/* Quiet now: the tree holds exactly the live subscriptions. */
	long live = 0;

	for (int i = 0; i < STRESS_SUBS; i++)
		live += st.live[i] != NULL;
	assert_int_equal(umn__itree_check(st.mm->root), live);
	for (int i = 0; i < STRESS_SUBS; i++)
		if (st.live[i])
			assert_int_equal(umn_interval_put(&st.live[i]->sub), 0);
	assert_int_equal(umn_synchronize(st.mm), 0);
	assert_int_equal(umn_mm_free(st.mm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_insert_waits_for_lock_free_walk),
		cmocka_unit_test(test_remove_and_put_wait_for_lock_free_walk),
		cmocka_unit_test(test_overlap_makes_a_period),
		cmocka_unit_test(test_no_stranded_deferral),
		cmocka_unit_test(test_synchronize_waits_for_lock_free_walk),
		cmocka_unit_test(test_concurrent_puts),
		cmocka_unit_test(test_two_synchronizes),
		cmocka_unit_test(test_synchronize_then_free),
		cmocka_unit_test(test_stress_walks_against_writers),
	};

	alarm(60);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
