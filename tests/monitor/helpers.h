/* SPDX-License-Identifier: MIT */
/*
 * What the monitor tests share: a subscription over some memory of the
 * process that records what reached it, and checks on it.
 */
#ifndef UMN_TESTS_MONITOR_HELPERS_H
#define UMN_TESTS_MONITOR_HELPERS_H

#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/helpers.h"

#include <umn/monitor.h>

#define PG 4096ul


/*
 * A subscription that records every walk that reached it: how many, how
 * many had another event than @want, the union of their ranges, the call
 * the first came from, and, if @probe is set, whether *@probe still read
 * @probe_want inside the callback (the memory was still there).
 */
struct watch {
	struct umn_interval sub;
	enum umn_event want;
	atomic_int hits, wrong, readable;
	uintptr_t lo, hi;
	const volatile char *probe;
	char probe_want;
	char call[32];
};

static inline bool watch_invalidate(struct umn_interval *sub,
				    const struct umn_range *range,
				    unsigned long cur_seq)
{
	struct watch *w = container_of(sub, struct watch, sub);
	const char *call = umn_monitor_call_name(range);

	umn_set_seq(sub, cur_seq);
	if (atomic_fetch_add(&w->hits, 1) == 0) {
		w->lo = range->start;
		w->hi = range->end;
		snprintf(w->call, sizeof(w->call), "%s", call ? call : "?");
	} else {
		w->lo = range->start < w->lo ? range->start : w->lo;
		w->hi = range->end > w->hi ? range->end : w->hi;
	}
	if (range->event != w->want)
		atomic_fetch_add(&w->wrong, 1);
	if (w->probe && *w->probe == w->probe_want)
		atomic_fetch_add(&w->readable, 1);
	return true;
}

static const struct umn_interval_ops watch_ops = {
	.invalidate = watch_invalidate,
};

static inline struct umn_mm *process_space(void)
{
	struct umn_mm *mm = umn_mm_process();

	if (!mm) {
		struct umn_monitor_info info;

		umn_monitor_query(&info);
		fail_msg("umn_mm_process: %s\n%s", strerror(errno), info.reason);
	}
	return mm;
}

/*
 * Watches live in static storage, and watch_teardown() removes whatever a
 * failed test left inserted: cmocka leaves a failed test by longjmp, and a
 * subscription left in the tree on a dead stack frame would corrupt it for
 * every later test.
 */
#define WATCHES 8
static struct watch watch_pool[WATCHES];
static int watch_used;

static inline struct watch *watch_new(void)
{
	assert_true(watch_used < WATCHES);
	return &watch_pool[watch_used++];
}

static inline int watch_teardown(void **state)
{
	for (int i = 0; i < watch_used; i++)
		umn_interval_remove(&watch_pool[i].sub); /* -ENOENT if done */
	watch_used = 0;
	return 0;
}

/* Watch [start, start + len) for @want; probe its first byte if @probe. */
static inline void watch_start(struct watch *w, const void *start, size_t len,
			       enum umn_event want, bool probe)
{
	memset(w, 0, sizeof(*w));
	w->want = want;
	if (probe) {
		w->probe = start;
		w->probe_want = *(const volatile char *)start;
	}
	assert_int_equal(umn_interval_insert(&w->sub, process_space(),
					     (uintptr_t)start, len, &watch_ops),
			 0);
}

/*
 * Exactly the event wanted, over a range covering [start, end), from
 * @call (NULL: any), and for UNMAP and CLEAR while the memory was there.
 */
static inline void watch_check(struct watch *w, const void *start,
			       const void *end, const char *call)
{
	int hits = atomic_load(&w->hits);

	assert_true(hits >= 1);
	assert_int_equal(atomic_load(&w->wrong), 0);
	assert_true(w->lo <= (uintptr_t)start);
	assert_true(w->hi >= (uintptr_t)end);
	if (call)
		assert_string_equal(w->call, call);
	if (w->probe)
		assert_int_equal(atomic_load(&w->readable), hits);
}

static inline void watch_stop(struct watch *w)
{
	assert_int_equal(umn_interval_remove(&w->sub), 0);
}

/*
 * Run @fn in a forked child, with UMN_MONITOR set to @source (NULL: unset):
 * a process installs the monitor once, so each install scenario needs a
 * process of its own.  A child stuck for 60 s is killed with SIGKILL (a
 * deadlocked one may hold every signal blocked) and the test fails.
 * Fails unless the child returns 0.
 */
static inline void in_child(int (*fn)(void), const char *source)
{
	pid_t pid = fork();
	double deadline = now_s() + 60;
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		if (source)
			setenv("UMN_MONITOR", source, 1);
		else
			unsetenv("UMN_MONITOR");
		_exit(fn());
	}
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_s() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fail_msg("child stuck for 60 s: killed");
		}
		sleep_ms(5);
	}
	if (WIFSIGNALED(status))
		fail_msg("child killed by signal %d", WTERMSIG(status));
	if (WEXITSTATUS(status))
		fail_msg("child failed with status %d", WEXITSTATUS(status));
}

/* Fresh anonymous pages filled with @fill. */
static inline char *map_pages(size_t pages, char fill)
{
	char *p = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	memset(p, fill, pages * PG);
	return p;
}

#endif /* UMN_TESTS_MONITOR_HELPERS_H */
