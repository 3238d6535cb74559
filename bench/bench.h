/* SPDX-License-Identifier: MIT */
/*
 * bench.h — what the benchmarks share: a monotonic clock, a small PRNG, a
 * sink that keeps results alive, and a "not inlined" marker for the
 * baselines written in the bench, so that they pay for a call as the
 * library's functions (external calls into libumn.a) do.
 *
 * Every benchmark measures its baseline in the same run and prints ratios
 * against it next to the raw nanoseconds.  Targets are reported, never
 * asserted: a benchmark exits 0 unless something is broken.
 */
#ifndef UMN_BENCH_H
#define UMN_BENCH_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <umn/umn.h>

#if defined(__GNUC__) || defined(__clang__)
#define BENCH_NOINLINE __attribute__((noinline))
#else
#define BENCH_NOINLINE
#endif

/* A cache line; shared data touched by different threads is kept apart. */
#define BENCH_CACHELINE 64

/* Best-of-N: the least disturbed run is the closest to the code's cost. */
#define BENCH_RUNS 5

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		perror("clock_gettime");
		exit(1);
	}
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: a few cycles, good enough to pick subscriptions. */
/* A subscription's ->invalidate() that only takes the sequence. */
static inline bool bench_plain_invalidate(struct umn_interval *sub,
					  const struct umn_range *range,
					  unsigned long cur_seq)
{
	umn_set_seq(sub, cur_seq);
	return true;
}

static const struct umn_interval_ops bench_plain_ops = {
	.invalidate = bench_plain_invalidate,
};

/* CPU time of the calling thread, ns: how much of a run it really ran. */
static inline uint64_t bench_thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t bench_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* Uniform enough in [0, n) for n far below 2^32. */
static inline size_t bench_rand_below(uint64_t *state, size_t n)
{
	return (size_t)((bench_rand(state) >> 32) * n >> 32);
}

/*
 * Results end here so that the compiler cannot drop the work.  Atomic
 * because benchmark threads call it concurrently; relaxed because nobody
 * reads it.
 */
static _Atomic uint64_t bench_sink;

static inline void bench_consume(uint64_t v)
{
	atomic_fetch_add_explicit(&bench_sink, v, memory_order_relaxed);
}

static inline void *bench_alloc_aligned(size_t size)
{
	size_t rounded = (size + BENCH_CACHELINE - 1) / BENCH_CACHELINE *
			 BENCH_CACHELINE;
	void *p = aligned_alloc(BENCH_CACHELINE, rounded);

	if (!p) {
		perror("aligned_alloc");
		exit(1);
	}
	return p;
}

#endif /* UMN_BENCH_H */
