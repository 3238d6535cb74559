/* SPDX-License-Identifier: MIT */
/*
 * Inside a walk of the cache's space (a callback of another subscription),
 * a miss, a flush and stats return -EDEADLK at once instead of taking the
 * cache's mutex; a hit and a put still work, and leave due deregs for
 * later.  With two threads this is a deadlock otherwise: a miss on thread
 * A holds the mutex while it waits for B's walk, and B's callback waits
 * for the mutex.
 */
#include <signal.h>

#include "rcache/helpers.h"

static struct env e;
static struct umn_interval watcher;     /* the test's own subscription */
static struct umn_region *held;         /* cached over page 0 */
static atomic_int entered, go;
static int cb_miss, cb_hit, cb_put, cb_flush, cb_stats;

static bool watcher_invalidate(struct umn_interval *sub,
			       const struct umn_range *range,
			       unsigned long cur_seq)
{
	struct umn_region *r = NULL;
	struct umn_rcache_stats st;

	umn_set_seq(sub, cur_seq);
	atomic_store(&entered, 1);
	while (!atomic_load(&go))
		sleep_ms(1);
	cb_miss = umn_rcache_get(e.rc, at(50), pg(), &r);
	cb_hit = umn_rcache_get(e.rc, at(0), pg(), &r);
	cb_put = r ? umn_rcache_put(e.rc, r) : -1;
	cb_flush = umn_rcache_flush(e.rc);
	cb_stats = umn_rcache_stats(e.rc, &st);
	return true;
}

static const struct umn_interval_ops watcher_ops = {
	.invalidate = watcher_invalidate,
};

static void setup_env(void)
{
	env_open(&e);
	atomic_store(&entered, 0);
	atomic_store(&go, 0);
	cb_miss = cb_hit = cb_put = cb_flush = cb_stats = 1;
	held = get_ok(&e, 0, 1);
	put_ok(&e, held);
	assert_int_equal(umn_interval_insert(&watcher, e.mm, (uintptr_t)at(100),
					     pg(), &watcher_ops), 0);
}

/* @regs: registrations the test made besides the miss refused. */
static void check_and_close(int regs)
{
	assert_int_equal(cb_miss, -EDEADLK);
	assert_int_equal(cb_hit, 0);
	assert_int_equal(cb_put, 0);
	assert_int_equal(cb_flush, -EDEADLK);
	assert_int_equal(cb_stats, -EDEADLK);
	assert_int_equal(atomic_load(&e.f.regs), regs);
	assert_true(umn_region_valid(held));          /* nothing flushed */
	assert_int_equal(umn_interval_remove(&watcher), 0);
	env_close(&e);
}

/* One thread: before, the miss waited in vain and gave up with -EAGAIN. */
static void test_inside_own_walk(void **state)
{
	setup_env();
	atomic_store(&go, 1);
	inval(&e, 100, 1, UMN_EVENT_UNMAP);
	check_and_close(1);
}

static void *walker(void *arg)
{
	inval(&e, 100, 1, UMN_EVENT_UNMAP);
	return NULL;
}

static void *getter(void *arg)
{
	struct umn_region *r = NULL;

	/* Over page 100: waits in read_begin for the walk, mutex held. */
	assert_int_equal(umn_rcache_get(e.rc, at(100), pg(), &r), 0);
	put_ok(&e, r);
	return NULL;
}

static void on_alarm(int sig)
{
	static const char msg[] = "callback_edeadlk: deadlock (20 s)\n";

	(void)sig;
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(1);
}

/* Two threads: the getter holds the mutex while it waits for our walk. */
static void test_against_waiting_miss(void **state)
{
	pthread_t w, g;

	setup_env();
	assert_int_equal(pthread_create(&w, NULL, walker, NULL), 0);
	assert_true(wait_for(&entered, 1, WAIT_S));
	assert_int_equal(pthread_create(&g, NULL, getter, NULL), 0);
	sleep_ms(100); /* let it reach read_begin */
	signal(SIGALRM, on_alarm);
	alarm(20);
	atomic_store(&go, 1);
	assert_int_equal(pthread_join(w, NULL), 0);
	assert_int_equal(pthread_join(g, NULL), 0);
	alarm(0);
	check_and_close(2);             /* page 0, and the getter's */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inside_own_walk),
		cmocka_unit_test(test_against_waiting_miss),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
