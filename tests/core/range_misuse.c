// SPDX-License-Identifier: MIT
/*
 * Misuse of ranges that has no error to return: umn_invalidate_range_end()
 * on a thread other than the one that began the range, or from inside the
 * range's own ->invalidate(), would leave the space walking for good or
 * change the tree under the walk.  The library says so and aborts; each case
 * runs in a forked child whose death by SIGABRT, and message, are checked.
 * Misuse that can be refused is: beginning a range twice gives -EBUSY.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/helpers.h"

/* The child's range, as its caller knows it (the callback gets it const). */
static struct umn_range *child_range;

static bool end_inside(struct umn_interval *sub, const struct umn_range *range,
		       unsigned long cur_seq)
{
	umn_set_seq(sub, cur_seq);
	umn_invalidate_range_end(child_range);
	return true;
}

static const struct umn_interval_ops end_inside_ops = {
	.invalidate = end_inside,
};

static void *end_range(void *range)
{
	umn_invalidate_range_end(range);
	return NULL;
}

/* In the child: begin a range, then end it the wrong way. */
static void child_misuse(bool other_thread)
{
	struct umn_interval sub = {0};
	struct umn_mm *mm = umn_mm_new();
	struct umn_range r = {
		.mm = mm, .start = 0x1000, .end = 0x2000,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};
	pthread_t t;

	child_range = &r;
	umn_interval_insert(&sub, mm, 0x1000, 0x1000,
			    other_thread ? &plain_ops : &end_inside_ops);
	if (umn_invalidate_range_start(&r))
		_exit(3);
	if (other_thread) {
		pthread_create(&t, NULL, end_range, &r);
		pthread_join(t, NULL);
	}
	_exit(0); /* not reached when the library catches the misuse */
}

/* Fork, run the misuse, and return what the child wrote on stderr. */
static void expect_abort(bool other_thread, const char *message)
{
	char buf[512] = {0};
	int fds[2], status;

	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		signal(SIGABRT, SIG_DFL);
		child_misuse(other_thread);
	}
	close(fds[1]);
	ssize_t n, got = 0;

	while ((n = read(fds[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += n;
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
	assert_non_null(strstr(buf, "umn: fatal misuse"));
	assert_non_null(strstr(buf, message));
}

static void test_end_on_another_thread_aborts(void **state)
{
	expect_abort(true, "other than the one that began the range");
}

static void test_end_inside_own_walk_aborts(void **state)
{
	expect_abort(false, "inside the range's own ->invalidate()");
}

static void test_begin_twice_is_ebusy(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct umn_range r = {
		.mm = mm, .start = 0x1000, .end = 0x2000,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	assert_non_null(mm);
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	assert_int_equal(umn_invalidate_range_start(&r), -EBUSY);
	umn_invalidate_range_end(&r);
	/* Ended once: the space is idle again and can be freed. */
	assert_int_equal(umn_mm_free(mm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_end_on_another_thread_aborts),
		cmocka_unit_test(test_end_inside_own_walk_aborts),
		cmocka_unit_test(test_begin_twice_is_ebusy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
