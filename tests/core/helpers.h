/* SPDX-License-Identifier: MIT */
/* What every core test includes: cmocka, the public API, and small helpers. */
#ifndef UMN_TESTS_HELPERS_H
#define UMN_TESTS_HELPERS_H

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include <umn/umn.h>

/*
 * Which sanitizer a test is built under: ThreadSanitizer cannot run the
 * process monitor, and both bring allocators of their own (so glibc's
 * malloc paths cannot be tested under them).
 */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif
#define UNDER_SANITIZER (UNDER_TSAN || UNDER_ASAN)

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

/* Seconds a stress test runs; UMN_STRESS_SECONDS overrides (default 2). */
static inline double test_stress_seconds(void)
{
	const char *s = getenv("UMN_STRESS_SECONDS");
	double v = s ? atof(s) : 2.0;
	return v > 0 ? v : 2.0;
}

/* How long a test waits for another thread before it fails, in seconds. */
#define WAIT_S 5.0

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Poll until *v >= want or @secs pass; true if reached. */
static inline bool wait_for(atomic_int *v, int want, double secs)
{
	double deadline = now_s() + secs;

	while (atomic_load(v) < want) {
		if (now_s() > deadline)
			return false;
		sleep_ms(1);
	}
	return true;
}

/* A subscription's ->invalidate() that does nothing but take the sequence. */
static inline bool plain_invalidate(struct umn_interval *sub,
				    const struct umn_range *range,
				    unsigned long cur_seq)
{
	umn_set_seq(sub, cur_seq);
	return true;
}

static const struct umn_interval_ops plain_ops = {
	.invalidate = plain_invalidate,
};

/*
 * A subscription that counts the walks that reach it, those that reach it
 * after its release() began, and its releases; @last and @last_seq are what
 * the last walk passed (plain fields: read them only where one thread at a
 * time invalidates it).
 */
struct counter {
	struct umn_interval sub;
	atomic_int calls;
	atomic_int released;     /* may run on another thread */
	atomic_int calls_after_release;
	struct umn_range last;
	unsigned long last_seq;
};

static inline bool counter_invalidate(struct umn_interval *sub,
				      const struct umn_range *range,
				      unsigned long cur_seq)
{
	struct counter *c = container_of(sub, struct counter, sub);

	if (atomic_load(&c->released))
		atomic_fetch_add(&c->calls_after_release, 1);
	atomic_fetch_add(&c->calls, 1);
	c->last = *range;
	c->last_seq = cur_seq;
	umn_set_seq(sub, cur_seq);
	return true;
}

static inline void counter_release(struct umn_interval *sub)
{
	atomic_fetch_add(&container_of(sub, struct counter, sub)->released, 1);
}

static const struct umn_interval_ops counter_ops = {
	.invalidate = counter_invalidate,
	.release = counter_release,
};

/* Without ->release(): umn_interval_put() refuses it. */
static const struct umn_interval_ops counter_norelease_ops = {
	.invalidate = counter_invalidate,
};

/* Calls counted in *calls made by one invalidation of [start, end). */
static inline int hits(struct umn_mm *mm, atomic_int *calls, uintptr_t start,
		       uintptr_t end)
{
	int before = atomic_load(calls);

	assert_int_equal(umn_invalidate(mm, start, end, UMN_EVENT_UNMAP), 0);
	return atomic_load(calls) - before;
}

/* A thread that removes @sub, and says when umn_interval_remove() returned. */
struct remover {
	pthread_t thread;
	struct umn_interval *sub;
	int ret;
	atomic_int done;
};

static inline void *remover_main(void *arg)
{
	struct remover *r = arg;

	r->ret = umn_interval_remove(r->sub);
	atomic_store(&r->done, 1);
	return NULL;
}

/*
 * A subscription whose ->invalidate() blocks until the test opens it (or
 * WAIT_S passes).  If @first is set, the callback calls it first thing
 * after taking the sequence, before it counts itself entered.
 */
struct blocker {
	struct umn_interval sub;
	void (*first)(struct blocker *b);
	atomic_int entered, open, returned;
};

static inline bool blocker_invalidate(struct umn_interval *sub,
				      const struct umn_range *range,
				      unsigned long cur_seq)
{
	struct blocker *b = container_of(sub, struct blocker, sub);

	umn_set_seq(sub, cur_seq);
	if (b->first)
		b->first(b);
	atomic_fetch_add(&b->entered, 1);
	wait_for(&b->open, 1, WAIT_S);
	atomic_fetch_add(&b->returned, 1);
	return true;
}

static const struct umn_interval_ops blocker_ops = {
	.invalidate = blocker_invalidate,
};

/* A thread running umn_invalidate() of [start, end) in @mm. */
struct walker {
	pthread_t thread;
	struct umn_mm *mm;
	uintptr_t start, end;
	atomic_int ret, done;
};

static inline void *walker_main(void *arg)
{
	struct walker *w = arg;

	atomic_store(&w->ret, umn_invalidate(w->mm, w->start, w->end,
					     UMN_EVENT_UNMAP));
	atomic_store(&w->done, 1);
	return NULL;
}

/* Set @w up to walk [start, end) of @mm, before its thread starts. */
static inline void walker_init(struct walker *w, struct umn_mm *mm,
			       uintptr_t start, uintptr_t end)
{
	w->mm = mm;
	w->start = start;
	w->end = end;
	atomic_init(&w->ret, -1);
	atomic_init(&w->done, 0);
}

static inline void walker_start(struct walker *w, struct umn_mm *mm,
				uintptr_t start, uintptr_t end)
{
	walker_init(w, mm, start, end);
	assert_int_equal(pthread_create(&w->thread, NULL, walker_main, w), 0);
}

/* Join @w, failing (not hanging) if it does not finish in time. */
static inline void walker_join(struct walker *w)
{
	assert_true(wait_for(&w->done, 1, WAIT_S));
	assert_int_equal(pthread_join(w->thread, NULL), 0);
	assert_int_equal(atomic_load(&w->ret), 0);
}

#define BLOCKER_START 0x100000
#define BLOCKER_END   0x110000

/*
 * Insert @b into @mm at [BLOCKER_START, BLOCKER_END) and start walker @w
 * over that range; return once @w is blocked inside @b's callback.
 */
static inline void block_walk(struct walker *w, struct blocker *b,
			      struct umn_mm *mm)
{
	assert_int_equal(umn_interval_insert(&b->sub, mm, BLOCKER_START,
					     BLOCKER_END - BLOCKER_START,
					     &blocker_ops), 0);
	walker_start(w, mm, BLOCKER_START, BLOCKER_END);
	assert_true(wait_for(&b->entered, 1, WAIT_S));
}

/* A thread calling umn_read_begin(). */
struct reader {
	pthread_t thread;
	struct umn_interval *sub;
	unsigned long seq;          /* written before done is set */
	atomic_int done;
};

static inline void *reader_thread(void *arg)
{
	struct reader *r = arg;

	r->seq = umn_read_begin(r->sub);
	atomic_store(&r->done, 1);
	return NULL;
}

static inline void reader_start(struct reader *r, struct umn_interval *sub)
{
	r->sub = sub;
	atomic_init(&r->done, 0);
	assert_int_equal(pthread_create(&r->thread, NULL, reader_thread, r), 0);
}

/* Join @r, failing (not hanging) if it does not finish in time. */
static inline void reader_join(struct reader *r)
{
	assert_true(wait_for(&r->done, 1, WAIT_S));
	assert_int_equal(pthread_join(r->thread, NULL), 0);
}

#endif /* UMN_TESTS_HELPERS_H */
