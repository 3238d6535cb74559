// SPDX-License-Identifier: MIT
/*
 * quiet_walks — the walk a munmap of memory nobody watches costs.
 *
 * Most unmaps in a process overlap no subscription; the process monitor
 * brackets each with a walk.  Such a walk takes no lock and writes no cache
 * line another thread writes (src/core/defer.c).  Measured: ns per
 * umn_invalidate() of a range that overlaps none of 10,000 subscriptions, on
 * 1 and 2 threads, beside the same walk serialized by one process-wide mutex
 * (what UCX's ucm does in every hook), in the same run.
 */
#include <pthread.h>

#include <umn/umn.h>

#include "bench.h"

#define SUBS 10000
#define SPACING 0x10000ul /* a 4 KiB subscription every 64 KiB */
#define CALLS 4000000

static pthread_mutex_t process_lock = PTHREAD_MUTEX_INITIALIZER;

struct run {
	struct umn_mm *mm;
	int locked;        /* baseline: one mutex around every walk */
	unsigned id;
	pthread_barrier_t *start;
	uint64_t ns;
};

static void *run_main(void *arg)
{
	struct run *r = arg;
	uint64_t seed = 0x9e3779b97f4a7c15ull * (r->id + 1), t0;

	pthread_barrier_wait(r->start);
	t0 = bench_now_ns();
	for (long i = 0; i < CALLS; i++) {
		/* The gap between two subscriptions: overlaps none. */
		uintptr_t a = bench_rand_below(&seed, SUBS) * SPACING + 0x4000;

		if (r->locked)
			pthread_mutex_lock(&process_lock);
		bench_consume((uint64_t)umn_invalidate(r->mm, a, a + 0x4000,
						       UMN_EVENT_UNMAP));
		if (r->locked)
			pthread_mutex_unlock(&process_lock);
	}
	r->ns = bench_now_ns() - t0;
	return NULL;
}

/* Best of BENCH_RUNS: ns per call seen by each of @threads threads. */
static double measure(struct umn_mm *mm, int locked, unsigned threads)
{
	double best = 1e30;

	for (int run = 0; run < BENCH_RUNS; run++) {
		pthread_barrier_t start;
		pthread_t t[2];
		struct run r[2];
		uint64_t worst = 0;

		pthread_barrier_init(&start, NULL, threads);
		for (unsigned i = 0; i < threads; i++) {
			r[i] = (struct run){ mm, locked, i, &start, 0 };
			pthread_create(&t[i], NULL, run_main, &r[i]);
		}
		for (unsigned i = 0; i < threads; i++) {
			pthread_join(t[i], NULL);
			if (r[i].ns > worst)
				worst = r[i].ns;
		}
		pthread_barrier_destroy(&start);
		if ((double)worst / CALLS < best)
			best = (double)worst / CALLS;
	}
	return best;
}

int main(void)
{
	struct umn_interval *subs = calloc(SUBS, sizeof(*subs));
	struct umn_mm *mm = umn_mm_new();
	double ns[2][2];

	if (!subs || !mm) {
		perror("setup");
		return 1;
	}
	for (size_t i = 0; i < SUBS; i++)
		if (umn_interval_insert(&subs[i], mm, i * SPACING, 0x1000,
					&bench_plain_ops)) {
			fprintf(stderr, "insert failed\n");
			return 1;
		}
	for (int locked = 0; locked < 2; locked++)
		for (unsigned th = 1; th <= 2; th++)
			ns[locked][th - 1] = measure(mm, locked, th);

	printf("quiet walks: umn_invalidate() of a range overlapping none of %d "
	       "subscriptions\n", SUBS);
	printf("target: no lock shared between threads, so 2 threads keep the "
	       "1-thread cost per call\n");
	printf("baseline: the same walk inside one process-wide mutex "
	       "(ucm-style), same run; best of %d\n", BENCH_RUNS);
	printf("%-22s %8s %14s %14s %12s\n", "variant", "threads", "ns/call",
	       "Mcalls/s", "x 1 thread");
	for (int locked = 0; locked < 2; locked++)
		for (unsigned th = 1; th <= 2; th++) {
			double n = ns[locked][th - 1];

			printf("%-22s %8u %14.1f %14.1f %11.2fx\n",
			       locked ? "process-wide mutex" : "umn", th, n,
			       th * 1e3 / n, th * ns[locked][0] / n);
		}
	printf("umn 2 threads: %.2fx the calls/s of 1 (no shared lock: ~2x); "
	       "mutex baseline: %.2fx\n", 2 * ns[0][0] / ns[0][1],
	       2 * ns[1][0] / ns[1][1]);
	for (size_t i = 0; i < SUBS; i++)
		umn_interval_remove(&subs[i]);
	umn_mm_free(mm);
	free(subs);
	return 0;
}
