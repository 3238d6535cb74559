// SPDX-License-Identifier: MIT
/*
 * fork() against the process space: while another thread frees memory that
 * a subscription covers (its munmap needs the space's lock while glibc
 * holds a malloc arena lock that fork() waits for), and from inside an
 * ->invalidate() (the child's walk ends in a space that started over).
 * Each in a forked child with an alarm, so a deadlock fails the test.
 */
#include "monitor/helpers.h"

#include <malloc.h>

static atomic_int stop;

/* Everything but the first and last page: every munmap hits it. */
static struct umn_interval everything;

/*
 * The main thread frees and trims: malloc_trim holds the main arena's lock
 * while it gives the heap's top back with brk(), whose walk needs the
 * space's lock meanwhile.  Another thread forks, and fork() takes the
 * arena locks.
 */
static atomic_int fork_failed;

static void *fork_loop(void *arg)
{
	for (int i = 0; i < 200 && !atomic_load(&fork_failed); i++) {
		pid_t pid = fork();
		int status;

		if (pid == 0) {
			char *p = map_pages(1, 0);

			/* The child's space is empty and works. */
			_exit(umn_interval_remove(&everything) == -ENOENT &&
					      munmap(p, PG) == 0
				      ? 0
				      : 3);
		}
		if (pid < 0 || waitpid(pid, &status, 0) != pid ||
		    !WIFEXITED(status) || WEXITSTATUS(status))
			atomic_store(&fork_failed, 1);
	}
	atomic_store(&stop, 1);
	return NULL;
}

static int fork_while_freeing(void)
{
	struct umn_mm *mm = umn_mm_process();
	pthread_t t;

	if (!mm || umn_interval_insert(&everything, mm, PG,
				       UINTPTR_MAX - 2 * PG, &plain_ops))
		return 2;
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	pthread_create(&t, NULL, fork_loop, NULL);
	while (!atomic_load(&stop)) {
		char *p = malloc(1 << 20);

		if (!p)
			abort();
		memset(p, 1, 1 << 20);
		free(p);
		malloc_trim(0);
	}
	pthread_join(t, NULL);
	if (atomic_load(&fork_failed))
		return 4;
	return umn_interval_remove(&everything) ? 5 : 0;
}

static void fork_while_another_thread_frees(void **state)
{
	in_child(fork_while_freeing, NULL);
}

/* ->invalidate() that forks; the child unmaps more and exits. */
static atomic_int forked_child_status = -1, in_forked_child;

static bool forking_invalidate(struct umn_interval *sub,
			       const struct umn_range *range,
			       unsigned long cur_seq)
{
	umn_set_seq(sub, cur_seq);
	if (atomic_load(&forked_child_status) != -1 ||
	    atomic_load(&in_forked_child))
		return true;
	pid_t pid = fork();

	if (pid == 0) {
		atomic_store(&in_forked_child, 1);
		return true;
	}
	int status = -2;

	waitpid(pid, &status, 0);
	atomic_store(&forked_child_status, status);
	return true;
}

static const struct umn_interval_ops forking_ops = {
	.invalidate = forking_invalidate,
};

static int fork_in_callback(void)
{
	struct umn_mm *mm = umn_mm_process();
	struct umn_interval sub = { 0 };
	char *p = map_pages(2, 0);

	if (!mm || umn_interval_insert(&sub, mm, (uintptr_t)p, 2 * PG,
				       &forking_ops))
		return 2;
	munmap(p, PG);
	if (atomic_load(&in_forked_child)) {
		/* In the child: the walk fork() interrupted has ended; the
		 * space is empty and works. */
		char *q = map_pages(1, 0);
		struct watch *w = watch_new();

		watch_start(w, q, PG, UMN_EVENT_UNMAP, true);
		munmap(q, PG);
		int hits = atomic_load(&w->hits), rm = umn_interval_remove(&sub);

		if (hits != 1 || rm != -ENOENT)
			fprintf(stderr, "child: hits %d, remove %d\n", hits, rm);
		_exit(hits == 1 && rm == -ENOENT ? 0 : 3);
	}
	int status = atomic_load(&forked_child_status);

	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return 4;
	munmap(p + PG, PG);
	return umn_interval_remove(&sub) ? 5 : 0;
}

static void fork_inside_invalidate(void **state)
{
	in_child(fork_in_callback, NULL);
}

/*
 * fork() while another thread installs: each child either has a working
 * process space or a clear ENOEXEC (the parent was part-way through its
 * entry points); none crashes or hangs.
 */
static atomic_int installing_done;

static int child_after_fork_mid_install(void)
{
	struct umn_mm *mm = umn_mm_process();

	if (!mm)
		return errno == ENOEXEC ? 0 : 10;
	struct watch *w = watch_new();
	char *p = map_pages(1, 0x11);

	watch_start(w, p, PG, UMN_EVENT_UNMAP, true);
	munmap(p, PG);
	return atomic_load(&w->hits) == 1 ? 0 : 11;
}

static void *forker(void *arg)
{
	int *bad = arg;

	while (!atomic_load(&installing_done)) {
		pid_t pid = fork();
		int status;

		if (pid == 0)
			_exit(child_after_fork_mid_install());
		if (pid < 0 || waitpid(pid, &status, 0) != pid ||
		    !WIFEXITED(status) || WEXITSTATUS(status))
			*bad = 1;
	}
	return NULL;
}

static int fork_during_install(void)
{
	int bad = 0;
	pthread_t t;

	pthread_create(&t, NULL, forker, &bad);
	sleep_ms(2);
	struct umn_mm *mm = umn_mm_process();

	sleep_ms(2);
	atomic_store(&installing_done, 1);
	pthread_join(t, NULL);
	return !mm ? 2 : bad ? 3 : 0;
}

static void fork_while_installing(void **state)
{
	/* AddressSanitizer's allocator does not hold its locks across fork:
	 * a child that allocates (the install does) can find one held by
	 * the parent's other thread for good.  glibc's malloc does. */
	if (UNDER_ASAN)
		skip();
	for (int i = 0; i < 10; i++)
		in_child(fork_during_install, NULL);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(fork_while_another_thread_frees),
		cmocka_unit_test(fork_inside_invalidate),
		cmocka_unit_test(fork_while_installing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
