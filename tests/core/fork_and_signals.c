// SPDX-License-Identifier: MIT
/*
 * A space across fork(), and a space walked from signal handlers:
 * umn_mm_atfork() leaves the child's copy empty, idle and working, with
 * the parent's subscriptions (live or queued) reading as not inserted,
 * while the parent goes on as before; and with UMN_MM_SIGNAL_SAFE a
 * handler's walk never waits for the lock its own thread holds.
 */
#include "core/helpers.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Exit codes of the child: the line that failed, offset into 1..255. */
#define CHILD_CHECK(cond)                                                    \
	do {                                                                  \
		if (!(cond))                                                  \
			_exit(__LINE__ % 200 + 1);                            \
	} while (0)

static void fork_empties_the_child(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct blocker b = {0};
	struct counter queued = {0}, live = {0};
	struct walker w;
	int status;

	assert_int_equal(umn_interval_insert(&live.sub, mm, 0x10000, 0x1000,
					     &counter_ops), 0);
	block_walk(&w, &b, mm);
	/* A walk is in progress: this insert is queued. */
	assert_int_equal(umn_interval_insert(&queued.sub, mm, 0x20000, 0x1000,
					     &counter_ops), 0);
	umn_mm_atfork(mm, UMN_FORK_PREPARE);
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		umn_mm_atfork(mm, UMN_FORK_CHILD);
		/* A read of an inherited subscription always retries. */
		CHILD_CHECK(umn_read_retry(&live.sub, umn_read_begin(&live.sub)));
		/* The walker thread does not exist here; nothing waits. */
		CHILD_CHECK(umn_interval_remove(&live.sub) == -ENOENT);
		CHILD_CHECK(umn_interval_remove(&queued.sub) == -ENOENT);
		CHILD_CHECK(umn_interval_remove(&b.sub) == -ENOENT);
		CHILD_CHECK(umn_synchronize(mm) == 0);
		int before = atomic_load(&live.calls);

		CHILD_CHECK(umn_interval_insert(&live.sub, mm, 0x10000, 0x1000,
						&counter_ops) == 0);
		CHILD_CHECK(umn_invalidate(mm, 0, 0x100000, UMN_EVENT_UNMAP) == 0);
		CHILD_CHECK(atomic_load(&live.calls) == before + 1);
		CHILD_CHECK(atomic_load(&queued.calls) == 0);
		CHILD_CHECK(umn_interval_remove(&live.sub) == 0);
		CHILD_CHECK(umn_mm_free(mm) == 0);
		_exit(0);
	}
	umn_mm_atfork(mm, UMN_FORK_PARENT);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The parent is untouched: the walk ends, the queued insert lands. */
	atomic_store(&b.open, 1);
	walker_join(&w);
	assert_int_equal(hits(mm, &queued.calls, 0x20000, 0x21000), 1);
	assert_int_equal(umn_interval_remove(&queued.sub), 0);
	assert_int_equal(umn_interval_remove(&live.sub), 0);
	assert_int_equal(umn_interval_remove(&b.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/*
 * A thread inserts and removes in a loop, so it holds the space's lock
 * much of the time; signals sent to it run a handler whose walk hits a
 * subscription and so needs that lock.
 */
static struct umn_mm *sig_mm;
static atomic_int sig_handled, sig_stop;

static void sig_walk(int sig)
{
	if (umn_invalidate(sig_mm, 0x1000, 0x2000, UMN_EVENT_UNMAP) == 0)
		atomic_fetch_add(&sig_handled, 1);
}

static void *sig_busy(void *arg)
{
	struct umn_interval sub;

	while (!atomic_load(&sig_stop)) {
		memset(&sub, 0, sizeof(sub));
		if (umn_interval_insert(&sub, sig_mm, 0x8000, 0x1000,
					&plain_ops) ||
		    umn_interval_remove(&sub))
			abort();
	}
	return NULL;
}

static void signal_handler_walks(void **state)
{
	struct sigaction sa = { .sa_handler = sig_walk, .sa_flags = SA_RESTART };
	struct counter c = {0};
	pthread_t t;

	sig_mm = umn_mm_new_flags(UMN_MM_SIGNAL_SAFE);
	assert_non_null(sig_mm);
	assert_int_equal(umn_interval_insert(&c.sub, sig_mm, 0x1000, 0x1000,
					     &counter_ops), 0);
	sigaction(SIGUSR2, &sa, NULL);
	assert_int_equal(pthread_create(&t, NULL, sig_busy, NULL), 0);
	for (int i = 0; i < 2000; i++) {
		pthread_kill(t, SIGUSR2);
		double deadline = now_s() + WAIT_S;

		while (atomic_load(&sig_handled) <= i) {
			/* A deadlocked thread never joins: leave at once. */
			if (now_s() > deadline) {
				fprintf(stderr, "signal %d: handler stuck\n", i);
				_exit(1);
			}
			sched_yield();
		}
	}
	atomic_store(&sig_stop, 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(atomic_load(&c.calls), 2000);
	signal(SIGUSR2, SIG_DFL);
	assert_int_equal(umn_interval_remove(&c.sub), 0);
	assert_int_equal(umn_mm_free(sig_mm), 0);
}

/*
 * A thread asleep in umn_interval_remove() (a walk still runs the
 * callback) takes the signals sent to it, as a GC's stop-the-world or a
 * signal-based RCU needs, and a cancel does not leave the space's lock or
 * bookkeeping behind.
 */
static atomic_int acked;

static void ack(int sig)
{
	atomic_fetch_add(&acked, 1);
}

struct sig_remover {
	struct blocker *b;
	atomic_int started, done;
	int ret;
};

static void *sig_remover_main(void *arg)
{
	struct sig_remover *r = arg;

	atomic_store(&r->started, 1);
	r->ret = umn_interval_remove(&r->b->sub);
	atomic_store(&r->done, 1);
	pthread_testcancel();
	return NULL;
}

static void waits_take_signals_and_cancels(void **state)
{
	struct sigaction sa = { .sa_handler = ack, .sa_flags = SA_RESTART };
	struct umn_mm *mm = umn_mm_new_flags(UMN_MM_SIGNAL_SAFE);

	sigaction(SIGUSR2, &sa, NULL);
	for (int cancel = 0; cancel < 2; cancel++) {
		struct blocker b = {0};
		struct sig_remover r = { .b = &b };
		struct walker w;
		pthread_t t;
		void *res;

		block_walk(&w, &b, mm);
		assert_int_equal(pthread_create(&t, NULL, sig_remover_main, &r), 0);
		assert_true(wait_for(&r.started, 1, WAIT_S));
		sleep_ms(20); /* asleep in the wait by now */
		if (cancel) {
			pthread_cancel(t);
		} else {
			int before = atomic_load(&acked);

			pthread_kill(t, SIGUSR2);
			assert_true(wait_for(&acked, before + 1, WAIT_S));
			assert_int_equal(atomic_load(&r.done), 0);
		}
		atomic_store(&b.open, 1);
		walker_join(&w);
		assert_int_equal(pthread_join(t, &res), 0);
		/* The remove finished either way; a cancel took effect after. */
		assert_int_equal(atomic_load(&r.done), 1);
		assert_int_equal(r.ret, 0);
		assert_true(cancel ? res == PTHREAD_CANCELED : res == NULL);
	}
	signal(SIGUSR2, SIG_DFL);
	/* Nothing left behind: the lock is free and no one waits. */
	assert_int_equal(umn_invalidate(mm, 0, 1 << 30, UMN_EVENT_UNMAP), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(fork_empties_the_child),
		cmocka_unit_test(signal_handler_walks),
		cmocka_unit_test(waits_take_signals_and_cancels),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
