/* SPDX-License-Identifier: MIT */
/*
 * dispatch — the cost of umn_invalidate() of a range that overlaps exactly
 * one subscription, as the number of subscriptions in the space grows.
 *
 * For n = 10^2 .. 10^6, n subscriptions of 4 KiB each, side by side, are
 * inserted in a shuffled order into a umn_mm_new() space.  Each timed call
 * invalidates the whole range of one subscription picked at random; its
 * ->invalidate() only calls umn_set_seq() and returns true.  The baseline,
 * in the same run, is umn_invalidate() on an empty space with the same
 * random ranges: the fixed cost of range_start + range_end.  The walk's
 * own cost ("walk ns") is the difference, and its growth against n = 100
 * is printed next to log2(n) / log2(100), the growth a balanced tree's
 * comparisons would show.
 *
 * Two more columns say where the time goes.  "hot ns" invalidates the same
 * subscription every call, so the walk's path stays in the caches: the cost
 * of the comparisons alone.  "load ns" is a chain of dependent loads in a
 * random cycle through the same n x sizeof(struct umn_interval) bytes the
 * tree lived in: the price of one cache and TLB miss in that working set.
 * "walk/load" is then how many such misses a random walk is worth; a walk
 * down a tree of height h makes at most h of them.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <umn/umn.h>

#include "bench.h"

#define SUB_SIZE       4096u
#define BASE_ADDR      ((uintptr_t)1 << 32)
#define MAX_N          1000000u
#define NSIZES         5
#define CALIB_CALLS    20000u
#define MIN_CALLS      100000u
#define MAX_CALLS      5000000u
#define TARGET_RUN_NS  150000000ull
#define PROBE_LOADS    2000000u
#define RANDOM         SIZE_MAX     /* run_once(): a random range each call */

static unsigned long callbacks;

/* log2(n) / log2(100) for a power of ten n, without libm: log10(n) / 2. */
static double log_ratio(size_t n)
{
	int decades = 0;

	for (; n >= 10; n /= 10)
		decades++;
	return decades / 2.0;
}

static bool dispatch_invalidate(struct umn_interval *sub,
				const struct umn_range *range,
				unsigned long cur_seq)
{
	umn_set_seq(sub, cur_seq);
	callbacks++;
	return true;
}

static const struct umn_interval_ops dispatch_ops = {
	.invalidate = dispatch_invalidate,
};

/*
 * @calls invalidations of subscription-sized ranges: the @fixed-th, or with
 * RANDOM a random one among the first @n.  Returns the time taken in ns.
 */
static uint64_t run_once(struct umn_mm *mm, size_t n, size_t fixed,
			 uint64_t calls, uint64_t *rng)
{
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < calls; i++) {
		/* Drawn in both modes, so that both pay for it. */
		size_t k = bench_rand_below(rng, n);
		uintptr_t start = BASE_ADDR +
				  (fixed == RANDOM ? k : fixed) * (uintptr_t)SUB_SIZE;
		int err = umn_invalidate(mm, start, start + SUB_SIZE,
					 UMN_EVENT_UNMAP);

		if (err) {
			fprintf(stderr, "umn_invalidate: %s\n", strerror(-err));
			exit(1);
		}
	}
	return bench_now_ns() - t0;
}

struct result {
	size_t n;           /* subscriptions in the space */
	uint64_t calls;     /* per run */
	double ns_call;     /* best run, a random subscription each call */
	double hot_ns;      /* best run, the same subscription every call */
	double load_ns;     /* one dependent load in the tree's memory */
	double cb_call;     /* ->invalidate() calls per umn_invalidate() */
};

/* Best of BENCH_RUNS, ranges drawn among @pick (see run_once()). */
static double best_ns_call(struct umn_mm *mm, size_t pick, size_t fixed,
			   uint64_t calls, uint64_t *rng)
{
	uint64_t best = UINT64_MAX;

	for (int run = 0; run < BENCH_RUNS; run++) {
		uint64_t ns = run_once(mm, pick, fixed, calls, rng);

		best = ns < best ? ns : best;
	}
	return (double)best / (double)calls;
}

static struct result measure(struct umn_mm *mm, size_t n, size_t pick)
{
	struct result r = { .n = n };
	uint64_t rng = 0x9e3779b97f4a7c15ull ^ n;
	uint64_t ns = run_once(mm, pick, RANDOM, CALIB_CALLS, &rng);
	uint64_t calls = ns ? TARGET_RUN_NS * CALIB_CALLS / ns : MAX_CALLS;

	calls = calls > MAX_CALLS ? MAX_CALLS : calls;
	calls = calls < MIN_CALLS ? MIN_CALLS : calls / MIN_CALLS * MIN_CALLS;
	r.calls = calls;
	callbacks = 0;
	r.ns_call = best_ns_call(mm, pick, RANDOM, calls, &rng);
	r.cb_call = (double)callbacks / (double)(calls * BENCH_RUNS);
	r.hot_ns = best_ns_call(mm, pick, bench_rand_below(&rng, pick), calls,
				&rng);
	return r;
}

/*
 * ns per load of a chain of dependent loads through the n slots of @subs,
 * in the random cycle @order: the cost of a miss in the memory the tree
 * used.  @subs must not be inserted; it is zero-filled again on return.
 */
static double load_probe(struct umn_interval *subs, const uint32_t *order,
			 size_t n)
{
	uint64_t best = UINT64_MAX;
	uintptr_t p;

	for (size_t i = 0; i < n; i++)
		*(uintptr_t *)&subs[order[i]] =
			(uintptr_t)&subs[order[(i + 1) % n]];
	p = (uintptr_t)&subs[order[0]];
	for (int run = 0; run < BENCH_RUNS; run++) {
		uint64_t t0 = bench_now_ns(), ns;

		for (uint32_t i = 0; i < PROBE_LOADS; i++)
			p = *(const uintptr_t *)p;
		ns = bench_now_ns() - t0;
		best = ns < best ? ns : best;
	}
	bench_consume(p);
	memset(subs, 0, n * sizeof(*subs));
	return (double)best / PROBE_LOADS;
}

/* Inserts @n subscriptions from @subs in a shuffled order. */
static void insert_shuffled(struct umn_mm *mm, struct umn_interval *subs,
			    uint32_t *order, size_t n, uint64_t *rng)
{
	for (size_t i = 0; i < n; i++)
		order[i] = (uint32_t)i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = bench_rand_below(rng, i + 1);
		uint32_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < n; i++) {
		size_t k = order[i];
		int err = umn_interval_insert(&subs[k], mm,
					      BASE_ADDR + k * (uintptr_t)SUB_SIZE,
					      SUB_SIZE, &dispatch_ops);

		if (err) {
			fprintf(stderr, "umn_interval_insert: %s\n",
				strerror(-err));
			exit(1);
		}
	}
}

static void remove_all(struct umn_interval *subs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int err = umn_interval_remove(&subs[i]);

		if (err) {
			fprintf(stderr, "umn_interval_remove: %s\n",
				strerror(-err));
			exit(1);
		}
	}
}

static struct umn_mm *mm_new_or_die(void)
{
	struct umn_mm *mm = umn_mm_new();

	if (!mm) {
		perror("umn_mm_new");
		exit(1);
	}
	return mm;
}

static void mm_free_or_die(struct umn_mm *mm)
{
	int err = umn_mm_free(mm);

	if (err) {
		fprintf(stderr, "umn_mm_free: %s\n", strerror(-err));
		exit(1);
	}
}

/* The baseline: the same calls on an empty space. */
static struct result measure_empty(void)
{
	struct umn_mm *mm = mm_new_or_die();
	struct result r = measure(mm, 0, MAX_N);

	mm_free_or_die(mm);
	return r;
}

int main(void)
{
	static const size_t sizes[NSIZES] = { 100, 1000, 10000, 100000,
					      MAX_N };
	struct umn_interval *subs = calloc(MAX_N, sizeof(*subs));
	uint32_t *order = malloc(MAX_N * sizeof(*order));
	struct result empty, last, res[NSIZES];
	uint64_t rng = 0x2545f4914f6cdd1dull;
	struct umn_mm *mm;

	if (!subs || !order) {
		perror("calloc");
		return 1;
	}

	empty = measure_empty();
	for (int i = 0; i < NSIZES; i++) {
		size_t n = sizes[i];

		mm = mm_new_or_die();
		insert_shuffled(mm, subs, order, n, &rng);
		res[i] = measure(mm, n, n);
		remove_all(subs, n);
		mm_free_or_die(mm);
		res[i].load_ns = load_probe(subs, order, n);
	}
	/* Once more at the end: the better of the two is the baseline. */
	last = measure_empty();
	empty.ns_call = last.ns_call < empty.ns_call ? last.ns_call
						     : empty.ns_call;
	empty.hot_ns = last.hot_ns < empty.hot_ns ? last.hot_ns : empty.hot_ns;

	printf("invalidation dispatch: umn_invalidate() of a range overlapping "
	       "exactly one subscription\n"
	       "target: < 1000 ns/call at n = 10^6, growing as log n\n"
	       "n subscriptions of 4 KiB inserted shuffled; a random one per "
	       "call; ->invalidate() = umn_set_seq + return true\n"
	       "baseline: the same calls on an empty space (range_start + "
	       "range_end), measured first and last, the better kept;\n"
	       "          walk ns = ns/call - empty; best of %d runs\n"
	       "hot ns: the same subscription every call (caches warm); "
	       "load ns: one dependent random load in the tree's memory\n\n",
	       BENCH_RUNS);
	printf("%-13s %9s %8s %8s %8s %8s %9s %9s %7s %7s %9s\n",
	       "subscriptions", "calls/run", "ns/call", "x empty", "x n=100",
	       "walk ns", "walk x100", "log ratio", "hot ns", "load ns",
	       "walk/load");
	printf("%-13s %9llu %8.1f %7.2fx %8s %8s %9s %9s %7.1f %7s %9s\n",
	       "0 (empty)", (unsigned long long)empty.calls, empty.ns_call,
	       1.0, "-", "-", "-", "-", empty.hot_ns, "-", "-");
	for (int i = 0; i < NSIZES; i++) {
		const struct result *r = &res[i];
		double walk = r->ns_call - empty.ns_call;
		double walk100 = res[0].ns_call - empty.ns_call;

		printf("%-13zu %9llu %8.1f %7.2fx %7.2fx %8.1f %8.2fx %8.2fx "
		       "%7.1f %7.1f %9.1f\n", r->n,
		       (unsigned long long)r->calls, r->ns_call,
		       r->ns_call / empty.ns_call, r->ns_call / res[0].ns_call,
		       walk, walk / walk100, log_ratio(r->n), r->hot_ns,
		       r->load_ns, walk / r->load_ns);
	}
	printf("\numn at n = 10^6: %.1f ns/call (target < 1000): %s\n",
	       res[NSIZES - 1].ns_call,
	       res[NSIZES - 1].ns_call < 1000.0 ? "met" : "MISSED");

	free(order);
	free(subs);
	for (int i = 0; i < NSIZES; i++) {
		if (res[i].cb_call != 1.0) {
			fprintf(stderr, "BUG: n = %zu: %.3f callbacks per call, "
				"expected exactly 1\n", res[i].n, res[i].cb_call);
			return 1;
		}
	}
	return 0;
}
