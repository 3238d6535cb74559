/* SPDX-License-Identifier: MIT */
/*
 * read_fastpath — umn_read_begin() + umn_read_retry() with no invalidation
 * in progress, against a kernel-style baseline built here.
 *
 * The baseline is Linux's mmu_interval_read_begin() as it is written: take
 * the notifier list's spinlock, compare the subscription's seq with the
 * space's, unlock; then the same retry compare.  Its spinlock is a
 * test-and-test-and-set lock on a C11 atomic whose uncontended path is one
 * compare-and-swap, like the kernel's qspinlock fast path.  Both versions are
 * out-of-line calls: umn's live in libumn.a, the baseline's are noinline.
 *
 * Each configuration runs on 1 or 2 threads; with 2, each thread either has
 * its own subscription in one space or both use the same one.  Every thread
 * does the same number of pairs; the time is from the first thread's start
 * to the last one's finish, best of BENCH_RUNS runs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <umn/umn.h>

#include "bench.h"

#define MAX_THREADS    2
#define MAX_ITERS      50000000ull  /* pairs per thread per run */
#define MIN_ITERS      1000000ull
#define CALIB_ITERS    1000000ull
#define TARGET_RUN_NS  400000000ull /* a run lasts about this long */

/* ---- the kernel-style baseline ------------------------------------- */

/* The space: mmu_notifier_subscriptions' lock and invalidate_seq. */
struct kmm {
	_Alignas(BENCH_CACHELINE) atomic_int lock;
	/* Odd while an invalidation is in progress.  Written under @lock. */
	atomic_ulong invalidate_seq;
};

/* The subscription: mmu_interval_notifier's mm and invalidate_seq. */
struct ksub {
	_Alignas(BENCH_CACHELINE) struct kmm *mm;
	atomic_ulong invalidate_seq;
};

static void kspin_lock(atomic_int *lock)
{
	for (;;) {
		int unlocked = 0;

		if (atomic_compare_exchange_strong_explicit(lock, &unlocked, 1,
				memory_order_acquire, memory_order_relaxed))
			return;
		/* Relaxed: only a hint that the CAS may succeed. */
		while (atomic_load_explicit(lock, memory_order_relaxed))
			;
	}
}

static void kspin_unlock(atomic_int *lock)
{
	/* Pairs with the CAS in kspin_lock(). */
	atomic_store_explicit(lock, 0, memory_order_release);
}

static BENCH_NOINLINE unsigned long kmm_read_begin(struct ksub *sub)
{
	struct kmm *mm = sub->mm;
	unsigned long seq;
	bool invalidating;

	kspin_lock(&mm->lock);
	/* Relaxed: both are written under the lock we hold. */
	seq = atomic_load_explicit(&sub->invalidate_seq, memory_order_relaxed);
	invalidating = seq == atomic_load_explicit(&mm->invalidate_seq,
						   memory_order_relaxed);
	kspin_unlock(&mm->lock);
	/* The kernel sleeps on a wait queue here; never taken in this bench. */
	while (invalidating && atomic_load_explicit(&mm->invalidate_seq,
					memory_order_acquire) == seq)
		;
	return seq;
}

static BENCH_NOINLINE bool kmm_read_retry(struct ksub *sub, unsigned long seq)
{
	/* Relaxed: the caller's lock orders it, as in the kernel. */
	return atomic_load_explicit(&sub->invalidate_seq,
				    memory_order_relaxed) != seq;
}

/* ---- the loops ------------------------------------------------------ */

/* Runs @n pairs on @sub; returns how many reported a retry (should be 0). */
typedef uint64_t loop_fn(void *sub, uint64_t n);

static uint64_t loop_umn(void *p, uint64_t n)
{
	struct umn_interval *sub = p;
	uint64_t sum = 0, retries = 0;

	for (uint64_t i = 0; i < n; i++) {
		unsigned long seq = umn_read_begin(sub);

		sum += seq;
		retries += umn_read_retry(sub, seq);
	}
	bench_consume(sum);
	return retries;
}

static uint64_t loop_kmm(void *p, uint64_t n)
{
	struct ksub *sub = p;
	uint64_t sum = 0, retries = 0;

	for (uint64_t i = 0; i < n; i++) {
		unsigned long seq = kmm_read_begin(sub);

		sum += seq;
		retries += kmm_read_retry(sub, seq);
	}
	bench_consume(sum);
	return retries;
}

/* ---- running a configuration on 1 or 2 threads ---------------------- */

struct worker {
	_Alignas(BENCH_CACHELINE) pthread_t thread;
	pthread_barrier_t *start;
	loop_fn *loop;
	void *sub;
	uint64_t iters;
	uint64_t t0, t1, retries;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(w->start);
	w->t0 = bench_now_ns();
	w->retries = w->loop(w->sub, w->iters);
	w->t1 = bench_now_ns();
	return NULL;
}

struct config {
	const char *name;
	const char *subs;         /* "-", "own" or "same" */
	loop_fn *loop;
	void *sub[MAX_THREADS];   /* per thread */
	int threads;
};

/* One run; returns the wall time in ns and adds the retries seen. */
static uint64_t run_once(const struct config *c, uint64_t iters,
			 uint64_t *retries)
{
	struct worker w[MAX_THREADS];
	pthread_barrier_t start;
	uint64_t t0 = UINT64_MAX, t1 = 0;
	int err;

	pthread_barrier_init(&start, NULL, (unsigned)c->threads);
	for (int i = 0; i < c->threads; i++) {
		w[i] = (struct worker){ .start = &start, .loop = c->loop,
					.sub = c->sub[i], .iters = iters };
		err = pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
		if (err) {
			fprintf(stderr, "pthread_create: %s\n", strerror(err));
			exit(1);
		}
	}
	for (int i = 0; i < c->threads; i++) {
		pthread_join(w[i].thread, NULL);
		t0 = w[i].t0 < t0 ? w[i].t0 : t0;
		t1 = w[i].t1 > t1 ? w[i].t1 : t1;
		*retries += w[i].retries;
	}
	pthread_barrier_destroy(&start);
	return t1 - t0;
}

struct result {
	uint64_t iters;     /* pairs per thread per run */
	uint64_t best_ns;   /* wall time of the best run */
	uint64_t retries;   /* over every run; must be 0 */
	double ns_pair;     /* best_ns / iters: one thread's cost of a pair */
	double mpairs;      /* pairs per µs, all threads: millions per second */
};

static struct result measure(const struct config *c)
{
	struct result r = { 0 };
	uint64_t ns = run_once(c, CALIB_ITERS, &r.retries);
	uint64_t iters = ns ? TARGET_RUN_NS * CALIB_ITERS / ns : MAX_ITERS;

	iters = iters > MAX_ITERS ? MAX_ITERS : iters;
	iters = iters < MIN_ITERS ? MIN_ITERS : iters / MIN_ITERS * MIN_ITERS;
	r.iters = iters;
	r.best_ns = UINT64_MAX;
	for (int run = 0; run < BENCH_RUNS; run++) {
		ns = run_once(c, iters, &r.retries);
		r.best_ns = ns < r.best_ns ? ns : r.best_ns;
	}
	r.ns_pair = (double)r.best_ns / (double)iters;
	r.mpairs = (double)iters * c->threads * 1e3 / (double)r.best_ns;
	return r;
}

/* ---- setup and report ----------------------------------------------- */

static bool bench_sub_invalidate(struct umn_interval *sub,
				 const struct umn_range *range,
				 unsigned long cur_seq)
{
	umn_set_seq(sub, cur_seq);
	return true;
}

static const struct umn_interval_ops bench_sub_ops = {
	.invalidate = bench_sub_invalidate,
};

#define NCONFIGS 6

static void print_row(const struct config *c, const struct result *r,
		      const struct result *one, const struct result *kern)
{
	printf("%-10s %7d  %-5s %13llu %9.2f %10.1f %10.2fx %11.2fx\n",
	       c->name, c->threads, c->subs, (unsigned long long)r->iters,
	       r->ns_pair, r->mpairs, r->mpairs / one->mpairs,
	       r->mpairs / kern->mpairs);
}

static const char *verdict(bool met)
{
	return met ? "met" : "MISSED";
}

int main(void)
{
	struct umn_interval *usub[MAX_THREADS];
	struct ksub *ksub[MAX_THREADS];
	struct kmm *kmm = bench_alloc_aligned(sizeof(*kmm));
	struct umn_mm *mm = umn_mm_new();
	struct result res[NCONFIGS];
	uint64_t retries = 0;
	int err;

	if (!mm) {
		perror("umn_mm_new");
		return 1;
	}
	atomic_init(&kmm->lock, 0);
	atomic_init(&kmm->invalidate_seq, 2);
	for (int i = 0; i < MAX_THREADS; i++) {
		usub[i] = bench_alloc_aligned(sizeof(*usub[i]));
		memset(usub[i], 0, sizeof(*usub[i]));
		err = umn_interval_insert(usub[i], mm, 0x100000 + 0x10000 * (uintptr_t)i,
					  0x10000, &bench_sub_ops);
		if (err) {
			fprintf(stderr, "umn_interval_insert: %s\n", strerror(-err));
			return 1;
		}
		ksub[i] = bench_alloc_aligned(sizeof(*ksub[i]));
		ksub[i]->mm = kmm;
		/* Not invalidating: one below the space's, as the kernel inserts. */
		atomic_init(&ksub[i]->invalidate_seq, 1);
	}

	/* The first three are umn's, the last three the baseline's, same order. */
	const struct config cfg[NCONFIGS] = {
		{ "umn",      "-",    loop_umn, { usub[0] },          1 },
		{ "umn",      "own",  loop_umn, { usub[0], usub[1] }, 2 },
		{ "umn",      "same", loop_umn, { usub[0], usub[0] }, 2 },
		{ "spinlock", "-",    loop_kmm, { ksub[0] },          1 },
		{ "spinlock", "own",  loop_kmm, { ksub[0], ksub[1] }, 2 },
		{ "spinlock", "same", loop_kmm, { ksub[0], ksub[0] }, 2 },
	};

	/* Interleave umn and baseline so drift in the machine hits both. */
	for (int i = 0; i < NCONFIGS / 2; i++) {
		res[i] = measure(&cfg[i]);
		res[i + 3] = measure(&cfg[i + 3]);
	}
	for (int i = 0; i < NCONFIGS; i++)
		retries += res[i].retries;

	printf("read_begin + read_retry fast path, no invalidation in progress\n"
	       "target: umn <= 5 ns/pair on 1 thread; 2 threads >= 1.8x the "
	       "pairs/s of 1\n"
	       "baseline: kernel-style read_begin (spinlock, compare seqs, "
	       "unlock) + same retry; best of %d runs\n"
	       "ns/pair: wall time / pairs per thread; Mpairs/s: all threads; "
	       "sub: each thread its own or the same\n\n", BENCH_RUNS);
	printf("%-10s %7s  %-5s %13s %9s %10s %11s %12s\n", "variant",
	       "threads", "sub", "pairs/thread", "ns/pair", "Mpairs/s",
	       "x 1 thread", "x spinlock");
	for (int i = 0; i < NCONFIGS; i++)
		print_row(&cfg[i], &res[i], &res[i < 3 ? 0 : 3],
			  &res[i < 3 ? i + 3 : i]);

	printf("\numn 1 thread: %.2f ns/pair (target <= 5): %s; "
	       "%.1fx faster than the spinlock baseline\n",
	       res[0].ns_pair, verdict(res[0].ns_pair <= 5.0),
	       res[3].ns_pair / res[0].ns_pair);
	printf("umn 2 threads, own subs: %.2fx 1 thread (target >= 1.8): %s\n",
	       res[1].mpairs / res[0].mpairs,
	       verdict(res[1].mpairs / res[0].mpairs >= 1.8));
	printf("umn 2 threads, same sub: %.2fx 1 thread (target >= 1.8): %s\n",
	       res[2].mpairs / res[0].mpairs,
	       verdict(res[2].mpairs / res[0].mpairs >= 1.8));

	for (int i = 0; i < MAX_THREADS; i++) {
		err = umn_interval_remove(usub[i]);
		if (err)
			fprintf(stderr, "umn_interval_remove: %s\n", strerror(-err));
		free(usub[i]);
		free(ksub[i]);
	}
	free(kmm);
	err = umn_mm_free(mm);
	if (err)
		fprintf(stderr, "umn_mm_free: %s\n", strerror(-err));
	if (retries) {
		fprintf(stderr, "BUG: %llu retries with no invalidation\n",
			(unsigned long long)retries);
		return 1;
	}
	return err ? 1 : 0;
}
