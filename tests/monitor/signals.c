// SPDX-License-Identifier: MIT
/*
 * munmap from a signal handler that interrupted a thread inside umn: the
 * handler's walk reaches a subscription, so it needs the space's lock,
 * which the interrupted thread takes over and over (inserts, removes, its
 * own walks).  The process space blocks signals while its lock is held, so
 * the handler can never wait for its own thread.  Run in a forked child
 * with an alarm: a deadlock kills the child, and the test fails instead of
 * hanging.
 */
#include "monitor/helpers.h"

#define SIGNALS 3000

static char *region;             /* 64 pages, watched */
static struct watch *watched;
static atomic_int handled, stop;
static atomic_int busy_rounds;

/* Replace a page of the watched region: an UNMAP walk that hits. */
static void on_signal(int sig)
{
	int n = atomic_load(&handled);
	char *page = region + (size_t)(n % 32) * PG;

	if (mmap(page, PG, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != page)
		abort();
	atomic_fetch_add(&handled, 1);
}

/* Inside umn all the time: the space's lock, and walks of its own. */
static void *busy(void *arg)
{
	struct umn_mm *mm = arg;
	struct umn_interval sub;

	while (!atomic_load(&stop)) {
		memset(&sub, 0, sizeof(sub));
		if (umn_interval_insert(&sub, mm, (uintptr_t)region + 40 * PG,
					PG, &plain_ops) ||
		    umn_interval_remove(&sub))
			abort();
		char *page = region + 48 * PG;

		if (mmap(page, PG, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != page)
			abort();
		atomic_fetch_add(&busy_rounds, 1);
	}
	return NULL;
}

static int child(void)
{
	struct umn_mm *mm = umn_mm_process();
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	pthread_t t;

	if (!mm)
		return 2;
	region = mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	watched = &watch_pool[0];
	watched->want = UMN_EVENT_UNMAP;
	if (region == MAP_FAILED ||
	    umn_interval_insert(&watched->sub, mm, (uintptr_t)region, 64 * PG,
				&watch_ops))
		return 3;
	sigaction(SIGUSR1, &sa, NULL);
	pthread_create(&t, NULL, busy, mm);
	for (int i = 0; i < SIGNALS; i++) {
		pthread_kill(t, SIGUSR1);
		double deadline = now_s() + WAIT_S;

		while (atomic_load(&handled) <= i) {
			if (now_s() > deadline)
				return 4; /* the handler never finished */
			sched_yield();
		}
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	/* Every handler's walk and every busy round reached the watch. */
	if (atomic_load(&watched->hits) < SIGNALS + atomic_load(&busy_rounds))
		return 5;
	if (atomic_load(&watched->wrong))
		return 6;
	umn_interval_remove(&watched->sub);
	return 0;
}

static void munmap_in_signal_handler(void **state)
{
	in_child(child, NULL);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(munmap_in_signal_handler),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
