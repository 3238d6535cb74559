/* SPDX-License-Identifier: MIT */
/*
 * read_fastpath — umn_read_begin() + umn_read_retry() with no invalidation
 * in progress, against a kernel-style baseline built here.
 *
 * The baseline is Linux's mmu_interval_read_begin() as it is written: take
 * the notifier list's spinlock, compare the subscription's seq with the
 * space's, unlock; then the same retry compare.  Its spinlock is a C11
 * ticket lock: one atomic RMW when free, fair when contended, like the
 * kernel's qspinlock.  Both versions are out-of-line calls: umn's live in
 * libumn.a, the baseline's are noinline.
 *
 * A third version, "private", is the machine's own ceiling: the same two
 * acquire loads and compare as umn's fast path, out of line, on data no
 * other thread touches.  Its 2-thread/1-thread ratio is the best any
 * lock-free read side can show on this machine (a vCPU that shares its
 * core, or time stolen by the host, shows up here first).
 *
 * Each configuration runs on 1 or 2 threads; with 2, each thread either has
 * its own subscription in one space or both use the same one.  Every thread
 * does the same number of pairs; the time is from the first thread's start
 * to the last one's finish, best of BENCH_RUNS runs.  cpu% is the threads'
 * CPU time over threads x wall time in that run: below ~95% a thread was
 * not running for part of it.  Runs below CONCURRENT_PCT lose to any run
 * above it, whatever their time.
 */
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
#define CONCURRENT_PCT 90.0         /* cpu% of a run whose threads all ran */

/* ---- the kernel-style baseline ------------------------------------- */

/*
 * A ticket lock: one atomic RMW when free, first come first served when
 * contended, as the kernel's qspinlock is.  A test-and-set lock would let
 * one thread keep the lock for long bursts while the other waits, and a
 * best-of-N run would then measure one thread at a time.
 */
struct kspin {
	atomic_uint next;   /* the ticket the next locker takes */
	atomic_uint owner;  /* the ticket that holds the lock */
};

/* The space: mmu_notifier_subscriptions' lock and invalidate_seq. */
struct kmm {
	_Alignas(BENCH_CACHELINE) struct kspin lock;
	/* Odd while an invalidation is in progress.  Written under @lock. */
	atomic_ulong invalidate_seq;
};

/* The subscription: mmu_interval_notifier's mm and invalidate_seq. */
struct ksub {
	_Alignas(BENCH_CACHELINE) struct kmm *mm;
	atomic_ulong invalidate_seq;
};

static void kspin_lock(struct kspin *lock)
{
	/* Relaxed: the ticket only names our turn; the acquire is below. */
	unsigned ticket = atomic_fetch_add_explicit(&lock->next, 1,
						    memory_order_relaxed);

	/* Pairs with the release store in kspin_unlock(). */
	while (atomic_load_explicit(&lock->owner, memory_order_acquire) !=
	       ticket)
		;
}

static void kspin_unlock(struct kspin *lock)
{
	/* Relaxed load: only the holder writes owner. */
	unsigned next = atomic_load_explicit(&lock->owner,
					     memory_order_relaxed) + 1;

	/* Pairs with the acquire load in kspin_lock(). */
	atomic_store_explicit(&lock->owner, next, memory_order_release);
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

/* ---- the ceiling: umn's fast-path shape on unshared data ------------ */

struct psub {
	_Alignas(BENCH_CACHELINE) atomic_ulong seq;
	atomic_ulong mm_seq;  /* the space's seq, here private to the thread */
};

static BENCH_NOINLINE unsigned long priv_read_begin(struct psub *sub)
{
	/* Acquire, as umn's are; no other thread stores to @sub. */
	unsigned long w = atomic_load_explicit(&sub->seq, memory_order_acquire);
	unsigned long s = atomic_load_explicit(&sub->mm_seq,
					       memory_order_acquire);

	return w != s ? w : 0;
}

static BENCH_NOINLINE bool priv_read_retry(struct psub *sub, unsigned long seq)
{
	return atomic_load_explicit(&sub->seq, memory_order_relaxed) != seq;
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

static uint64_t loop_priv(void *p, uint64_t n)
{
	struct psub *sub = p;
	uint64_t sum = 0, retries = 0;

	for (uint64_t i = 0; i < n; i++) {
		unsigned long seq = priv_read_begin(sub);

		sum += seq;
		retries += priv_read_retry(sub, seq);
	}
	bench_consume(sum);
	return retries;
}

/* ---- running a configuration on 1 or 2 threads ---------------------- */

struct worker {
	_Alignas(BENCH_CACHELINE) pthread_t thread;
	atomic_int *arrived;  /* threads at the start line */
	int threads;
	loop_fn *loop;
	void *sub;
	uint64_t iters;
	uint64_t t0, t1, cpu_ns, retries;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t cpu0;

	/*
	 * A spinning start line, not a pthread barrier: a thread woken from
	 * a barrier can start milliseconds after the others on a VM.
	 */
	atomic_fetch_add_explicit(w->arrived, 1, memory_order_relaxed);
	while (atomic_load_explicit(w->arrived, memory_order_relaxed) <
	       w->threads)
		;
	cpu0 = bench_thread_cpu_ns();
	w->t0 = bench_now_ns();
	w->retries = w->loop(w->sub, w->iters);
	w->t1 = bench_now_ns();
	w->cpu_ns = bench_thread_cpu_ns() - cpu0;
	return NULL;
}

struct config {
	const char *name;
	const char *subs;         /* "-", "own" or "same" */
	loop_fn *loop;
	void *sub[MAX_THREADS];   /* per thread */
	int threads;
};

/*
 * One run; returns the wall time in ns, stores the threads' CPU time in
 * *@cpu_ns and adds the retries seen.
 */
static uint64_t run_once(const struct config *c, uint64_t iters,
			 uint64_t *cpu_ns, uint64_t *retries)
{
	struct worker w[MAX_THREADS];
	atomic_int arrived = 0;
	uint64_t t0 = UINT64_MAX, t1 = 0;
	int err;

	*cpu_ns = 0;
	for (int i = 0; i < c->threads; i++) {
		w[i] = (struct worker){ .arrived = &arrived,
					.threads = c->threads, .loop = c->loop,
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
		*cpu_ns += w[i].cpu_ns;
		*retries += w[i].retries;
	}
	return t1 - t0;
}

struct result {
	uint64_t iters;     /* pairs per thread per run */
	uint64_t best_ns;   /* wall time of the best run */
	uint64_t retries;   /* over every run; must be 0 */
	double ns_pair;     /* best_ns / iters: one thread's cost of a pair */
	double mpairs;      /* pairs per µs, all threads: millions per second */
	double cpu_pct;     /* CPU time / (threads x wall) in the best run */
};

/* A short run sizes the real ones so that each lasts about TARGET_RUN_NS. */
static void calibrate(const struct config *c, struct result *r)
{
	uint64_t cpu;
	uint64_t ns = run_once(c, CALIB_ITERS, &cpu, &r->retries);
	uint64_t iters = ns ? TARGET_RUN_NS * CALIB_ITERS / ns : MAX_ITERS;

	iters = iters > MAX_ITERS ? MAX_ITERS : iters;
	iters = iters < MIN_ITERS ? MIN_ITERS : iters / MIN_ITERS * MIN_ITERS;
	r->iters = iters;
	r->best_ns = UINT64_MAX;
}

/*
 * One more run; keeps it if it is the best so far.  A run in which a thread
 * was off its CPU (cpu% below CONCURRENT_PCT) did not measure threads
 * running together, and for a contended lock it even looks faster: it is
 * kept only until a run that did comes along.
 */
static void run_and_keep_best(const struct config *c, struct result *r)
{
	uint64_t cpu;
	uint64_t ns = run_once(c, r->iters, &cpu, &r->retries);
	double pct = 100.0 * (double)cpu / ((double)ns * c->threads);
	bool ok = pct >= CONCURRENT_PCT;
	bool kept_ok = r->best_ns != UINT64_MAX && r->cpu_pct >= CONCURRENT_PCT;

	if (ok != kept_ok ? !ok : ns >= r->best_ns)
		return;
	r->best_ns = ns;
	r->ns_pair = (double)ns / (double)r->iters;
	r->mpairs = (double)r->iters * c->threads * 1e3 / (double)ns;
	r->cpu_pct = pct;
}

/* ---- setup and report ----------------------------------------------- */

/*
 * Rows in the order measured: each shape (threads, sub) for every variant
 * in turn, so that drift in the machine hits them alike.
 */
enum { UMN_1, KMM_1, PRIV_1, UMN_OWN, KMM_OWN, PRIV_OWN, UMN_SAME, KMM_SAME,
       NCONFIGS };

/* The same variant's 1-thread row, and the spinlock's row of this shape. */
static const int one_thread_row[NCONFIGS] = { UMN_1, KMM_1, PRIV_1, UMN_1,
					      KMM_1, PRIV_1, UMN_1, KMM_1 };
static const int spinlock_row[NCONFIGS] = { KMM_1, KMM_1, KMM_1, KMM_OWN,
					    KMM_OWN, KMM_OWN, KMM_SAME,
					    KMM_SAME };

static void print_table(const struct config *cfg, const struct result *res)
{
	printf("%-9s %7s  %-4s %12s %8s %9s %8s %10s %10s\n", "variant",
	       "threads", "sub", "pairs/thread", "ns/pair", "Mpairs/s", "cpu%",
	       "x 1thread", "x spinlock");
	for (int i = 0; i < NCONFIGS; i++) {
		const struct config *c = &cfg[i];
		const struct result *r = &res[i];

		if (i == UMN_OWN || i == UMN_SAME)
			printf("\n");
		printf("%-9s %7d  %-4s %12llu %8.2f %9.1f %7.0f%% %9.2fx "
		       "%9.2fx\n", c->name, c->threads, c->subs,
		       (unsigned long long)r->iters, r->ns_pair, r->mpairs,
		       r->cpu_pct, r->mpairs / res[one_thread_row[i]].mpairs,
		       r->mpairs / res[spinlock_row[i]].mpairs);
	}
}

static const char *verdict(bool met)
{
	return met ? "met" : "MISSED";
}

static void print_verdicts(const struct result *res)
{
	double own = res[UMN_OWN].mpairs / res[UMN_1].mpairs;
	double same = res[UMN_SAME].mpairs / res[UMN_1].mpairs;
	double ceiling = res[PRIV_OWN].mpairs / res[PRIV_1].mpairs;

	printf("\numn 1 thread: %.2f ns/pair (target <= 5): %s; "
	       "%.1fx the spinlock baseline's pairs/s\n",
	       res[UMN_1].ns_pair, verdict(res[UMN_1].ns_pair <= 5.0),
	       res[UMN_1].mpairs / res[KMM_1].mpairs);
	printf("umn 2 threads, own subs: %.2fx 1 thread (target >= 1.8): %s\n",
	       own, verdict(own >= 1.8));
	printf("umn 2 threads, same sub: %.2fx 1 thread (target >= 1.8): %s\n",
	       same, verdict(same >= 1.8));
	printf("this machine's ceiling (private data, 2 threads): %.2fx 1 "
	       "thread; umn reaches %.0f%% (own) and %.0f%% (same) of it\n",
	       ceiling, 100.0 * own / ceiling, 100.0 * same / ceiling);
	for (int i = 0; i < NCONFIGS; i++) {
		if (res[i].cpu_pct < CONCURRENT_PCT) {
			printf("note: no run of row %d kept its threads on their "
			       "CPUs: the machine was busy; run again\n", i + 1);
			break;
		}
	}
}

int main(void)
{
	struct umn_interval *usub[MAX_THREADS];
	struct ksub *ksub[MAX_THREADS];
	struct psub *psub[MAX_THREADS];
	struct kmm *kmm = bench_alloc_aligned(sizeof(*kmm));
	struct umn_mm *mm = umn_mm_new();
	struct result res[NCONFIGS] = { { 0 } };
	uint64_t retries = 0;
	int err;

	if (!mm) {
		perror("umn_mm_new");
		return 1;
	}
	atomic_init(&kmm->lock.next, 0);
	atomic_init(&kmm->lock.owner, 0);
	atomic_init(&kmm->invalidate_seq, 2);
	for (int i = 0; i < MAX_THREADS; i++) {
		usub[i] = bench_alloc_aligned(sizeof(*usub[i]));
		memset(usub[i], 0, sizeof(*usub[i]));
		err = umn_interval_insert(usub[i], mm,
					  0x100000 + 0x10000 * (uintptr_t)i,
					  0x10000, &bench_plain_ops);
		if (err) {
			fprintf(stderr, "umn_interval_insert: %s\n",
				strerror(-err));
			return 1;
		}
		ksub[i] = bench_alloc_aligned(sizeof(*ksub[i]));
		ksub[i]->mm = kmm;
		/* Not invalidating: one below the space's, as the kernel inserts. */
		atomic_init(&ksub[i]->invalidate_seq, 1);
		psub[i] = bench_alloc_aligned(sizeof(*psub[i]));
		atomic_init(&psub[i]->seq, 1);
		atomic_init(&psub[i]->mm_seq, 2);
	}

	const struct config cfg[NCONFIGS] = {
		[UMN_1]    = { "umn",      "-",    loop_umn,  { usub[0] }, 1 },
		[KMM_1]    = { "spinlock", "-",    loop_kmm,  { ksub[0] }, 1 },
		[PRIV_1]   = { "private",  "-",    loop_priv, { psub[0] }, 1 },
		[UMN_OWN]  = { "umn",      "own",  loop_umn,
			       { usub[0], usub[1] }, 2 },
		[KMM_OWN]  = { "spinlock", "own",  loop_kmm,
			       { ksub[0], ksub[1] }, 2 },
		[PRIV_OWN] = { "private",  "own",  loop_priv,
			       { psub[0], psub[1] }, 2 },
		[UMN_SAME] = { "umn",      "same", loop_umn,
			       { usub[0], usub[0] }, 2 },
		[KMM_SAME] = { "spinlock", "same", loop_kmm,
			       { ksub[0], ksub[0] }, 2 },
	};

	/*
	 * Round robin: a burst of other work on the machine spoils one run of
	 * each configuration rather than every run of one of them.
	 */
	for (int i = 0; i < NCONFIGS; i++)
		calibrate(&cfg[i], &res[i]);
	for (int run = 0; run < BENCH_RUNS; run++)
		for (int i = 0; i < NCONFIGS; i++)
			run_and_keep_best(&cfg[i], &res[i]);
	for (int i = 0; i < NCONFIGS; i++)
		retries += res[i].retries;

	printf("read_begin + read_retry fast path, no invalidation in progress\n"
	       "target: umn <= 5 ns/pair on 1 thread; 2 threads >= 1.8x the "
	       "pairs/s of 1\n"
	       "baseline: spinlock = kernel-style read_begin (lock, compare "
	       "seqs, unlock) + the same retry;\n"
	       "          private = umn's fast-path loads on unshared data "
	       "(the machine's ceiling)\n"
	       "best of %d runs, round robin; a run with a thread off its CPU "
	       "(cpu%% < %.0f) counts only if no other does\n"
	       "ns/pair: wall / pairs per thread; Mpairs/s: all threads; "
	       "sub: each thread its own or the same\n\n", BENCH_RUNS,
	       CONCURRENT_PCT);
	print_table(cfg, res);
	print_verdicts(res);

	for (int i = 0; i < MAX_THREADS; i++) {
		err = umn_interval_remove(usub[i]);
		if (err)
			fprintf(stderr, "umn_interval_remove: %s\n",
				strerror(-err));
		free(usub[i]);
		free(ksub[i]);
		free(psub[i]);
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
