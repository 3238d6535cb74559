// SPDX-License-Identifier: MIT
/*
 * UMN_MIRROR_SIGNAL_SAFE: a signal handler that unmaps mirrored memory,
 * delivered on a thread that holds the mirror lock, runs once the lock is
 * dropped instead of waiting for it in ->invalidate().  The device's
 * ->install() (called under the mirror lock) raises the signal; the
 * handler invalidates the page, as the monitor's munmap wrapper would.
 * Without the flag that handler would wait forever for its own thread.
 */
#include "mirror/helpers.h"

#include <pthread.h>

#define PAGES 4

static struct umn_mm *sig_mm;
static char *sig_p;
static volatile sig_atomic_t in_install, handler_ran, handler_inside;
static int handler_err;

static void on_signal(int sig)
{
	handler_inside = in_install;
	handler_err = umn_invalidate(sig_mm, (uintptr_t)sig_p,
				     (uintptr_t)sig_p + PAGES * PG,
				     UMN_EVENT_UNMAP);
	handler_ran = 1;
}

struct device {
	int installs, zaps;
};

static int dev_install(void *dev, uintptr_t addr, const void *data,
		       unsigned prot)
{
	struct device *d = dev;

	d->installs++;
	in_install = 1;
	raise(SIGUSR1);
	in_install = 0;
	return 0;
}

static void dev_zap(void *dev, uintptr_t start, uintptr_t end)
{
	((struct device *)dev)->zaps++;
}

static const struct umn_mirror_device_ops dev_ops = {
	.install = dev_install,
	.zap = dev_zap,
};

static void handler_waits_for_unlock(void **state)
{
	struct device d = { 0 };
	struct umn_mirror_config cfg = { .ops = &dev_ops, .dev = &d,
					 .flags = UMN_MIRROR_SIGNAL_SAFE };
	struct sigaction sa = { .sa_handler = on_signal }, old;
	struct umn_mirror *m;

	alarm(20); /* without the flag the handler waits forever: fail */
	sig_mm = umn_mm_new();
	assert_non_null(sig_mm);
	sig_p = map_guarded(PAGES, 1);
	m = umn_mirror_new(sig_mm, &cfg);
	assert_non_null(m);
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);

	assert_int_equal(umn_mirror_fault(m, (uintptr_t)sig_p,
					  UMN_MIRROR_READ), 0);
	assert_true(handler_ran);
	assert_false(handler_inside);
	assert_int_equal(handler_err, 0);
	assert_int_equal(d.installs, 1);
	assert_true(d.zaps >= 1);
	/* The handler's unmap put the region the fault had just used. */
	assert_int_equal(umn_mirror_regions(m, NULL, 0), 0);
	assert_int_equal(mirror_stats(m).released, 1);

	assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
	alarm(0);
	user_teardown(sig_mm, m, sig_p, PAGES);
}

/*
 * Each holder gets its own mask back, whatever the others had: two device
 * threads with different masks take the lock in turn (reads, writes and
 * the faults the invalidations of a third thread cause).
 */
#define MASK_ROUNDS 2000

struct masked {
	struct umn_mirror *m;
	char *p;
	int sig;                /* blocked by this thread throughout */
	int bad;
};

static void *masked_main(void *arg)
{
	struct masked *t = arg;
	sigset_t want, now;
	uint64_t v = 0;

	sigemptyset(&want);
	sigaddset(&want, t->sig);
	assert_int_equal(pthread_sigmask(SIG_SETMASK, &want, NULL), 0);
	for (int i = 0; i < MASK_ROUNDS && !t->bad; i++) {
		uintptr_t a = (uintptr_t)t->p + (size_t)(i % PAGES) * PG + 8;

		if (umn_mirror_read(t->m, a, &v, sizeof(v)) ||
		    umn_mirror_write(t->m, a + 8, &v, sizeof(v)))
			t->bad = 1;
		pthread_sigmask(SIG_BLOCK, NULL, &now);
		for (int s = 1; s < SIGRTMIN; s++)
			if (s != SIGKILL && s != SIGSTOP &&
			    sigismember(&now, s) != sigismember(&want, s))
				t->bad = 2;
	}
	return NULL;
}

static void each_holder_gets_its_mask(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct umn_mirror_config cfg = { .flags = UMN_MIRROR_SIGNAL_SAFE };
	struct masked t[2];
	pthread_t th[2];
	struct umn_mirror *m;
	char *p = map_guarded(PAGES, 2);

	assert_non_null(mm);
	m = umn_mirror_new(mm, &cfg);
	assert_non_null(m);
	t[0] = (struct masked){ .m = m, .p = p, .sig = SIGUSR2 };
	t[1] = (struct masked){ .m = m, .p = p, .sig = SIGWINCH };
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, masked_main,
						&t[i]), 0);
	for (int i = 0; i < 200; i++)
		assert_int_equal(umn_invalidate(mm, (uintptr_t)p,
						(uintptr_t)p + PAGES * PG,
						UMN_EVENT_CLEAR), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(t[i].bad, 0);
	}
	user_teardown(mm, m, p, PAGES);
}

static void unknown_flag(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct umn_mirror_config cfg = { .flags = 2 };

	assert_non_null(mm);
	assert_null(umn_mirror_new(mm, &cfg));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(umn_mm_free(mm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(handler_waits_for_unlock),
		cmocka_unit_test(each_holder_gets_its_mask),
		cmocka_unit_test(unknown_flag),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
