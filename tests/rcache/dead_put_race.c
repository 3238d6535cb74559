/* SPDX-License-Identifier: MIT */
/*
 * The last put of a dead region against a settle of it.  Thread P gets a
 * region, invalidates it while holding it (it goes DEAD, still held) and
 * puts it, which retires it (refs: count 1 -> 0, then P_RETIRED).  Thread
 * S flushes in a loop, so the mutex holder keeps settling that dead, held
 * region: in the drain after the invalidation and in dead_settle_locked().
 *
 * settle used to load refs and then pend: a put landing between the two
 * loads paired the old count with the new P_RETIRED, and settle aborted
 * with "w & (REF_VALID | REF_COUNT)" (src/rcache/region.c).  The window
 * is two adjacent loads with no callback between them, so it cannot be
 * forced; this test only makes it frequent (the old code failed within a
 * second or so here; stress_concurrent hit it in about 1 run in 25).
 */
#include "rcache/helpers.h"

static atomic_int stop, rounds;

struct settler {
	pthread_t thread;
	struct umn_rcache *rc;
};

static void *settler_main(void *arg)
{
	struct settler *s = arg;

	while (!atomic_load(&stop))
		assert_int_equal(umn_rcache_flush(s->rc), 0);
	return NULL;
}

static void test_dead_put_vs_settle(void **state)
{
	struct env e;
	struct settler s;
	double end = now_s() + test_stress_seconds() / 2;

	env_open(&e);
	s.rc = e.rc;
	atomic_store(&stop, 0);
	assert_int_equal(pthread_create(&s.thread, NULL, settler_main, &s), 0);
	while (now_s() < end) {
		struct umn_region *r = get_ok(&e, 0, 1);

		inval(&e, 0, 1, UMN_EVENT_UNMAP);
		assert_false(umn_region_valid(r));
		/* Let S drain it to DEAD, still held, now and then. */
		if (atomic_fetch_add(&rounds, 1) % 2)
			sched_yield();
		put_ok(&e, r);
	}
	atomic_store(&stop, 1);
	assert_int_equal(pthread_join(s.thread, NULL), 0);
	print_message("%d rounds\n", atomic_load(&rounds));
	assert_true(atomic_load(&rounds) > 0);
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dead_put_vs_settle),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
