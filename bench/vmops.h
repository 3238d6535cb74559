/* SPDX-License-Identifier: MIT */
/*
 * vmops.h — what the process-monitor benchmarks share: the memory
 * operations they time, the raw-syscall control, and the phased runner.
 *
 * A benchmark is a list of phases measured one after the other in one
 * process (the first without any hook, later ones with hooks installed,
 * which cannot be undone).  In every phase each operation is timed through
 * libc, which the hooks see, and through raw system calls, which no
 * patcher sees.  The raw figures are the control: they move only if the
 * machine drifts between phases, and libc minus raw in one phase is the
 * hook's cost measured side by side, free of that drift.
 *
 * Addresses: each thread maps at fixed hints inside holes of one big
 * PROT_NONE reservation, so every phase maps the same addresses, and a
 * benchmark may subscribe to the rest of the reservation (the
 * subscriptions then sit on both sides of the mapped addresses and the
 * walk for each munmap goes down the whole tree) without ever overlapping
 * a mapped address.
 *
 * Timing: thread t is pinned to the t-th CPU the process may use; each
 * figure is the interquartile mean of blocks of VM_BLOCK calls (so that a
 * hypervisor's preemption does not weigh on it), and a benchmark reports
 * the median of VM_REPEATS such figures.
 *
 * The including file defines _GNU_SOURCE before any include (MAP_ANONYMOUS,
 * MADV_DONTNEED).
 */
#ifndef UMN_BENCH_VMOPS_H
#define UMN_BENCH_VMOPS_H

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

#define VM_PAGE     0x1000ul
#define VM_2M       0x200000ul
#define VM_DN_LEN   0x10000ul   /* the madvise(MADV_DONTNEED) region */
#define VM_SLOT     0x800000ul  /* one thread's window: 2 MiB aligned */
#define VM_THREADS  2
#define VM_REPEATS  7           /* each figure is the median of these */
#define VM_MAXPH    3

/*
 * A raw system call: the same kernel work as libc's wrapper, on a path no
 * patcher sees (the monitors hook libc's entry points).
 */
#include "sys/raw_syscall.h"

/* The generic header goes through libc's syscall(), which a hook sees. */
#if defined(__x86_64__) || defined(__aarch64__)
#define VM_HAVE_RAW 1
#else
#define VM_HAVE_RAW 0
#endif
#define vm_raw_syscall umn__sys6

static inline void *vm_mmap(bool raw, void *hint, size_t len)
{
	const int prot = PROT_READ | PROT_WRITE;
	const int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	long r;

	if (!raw)
		return mmap(hint, len, prot, flags, -1, 0);
	r = vm_raw_syscall(SYS_mmap, (long)hint, (long)len, prot, flags, -1, 0);
	return r < 0 && r > -4096 ? MAP_FAILED : (void *)r;
}

static inline int vm_munmap(bool raw, void *p, size_t len)
{
	if (!raw)
		return munmap(p, len);
	return vm_raw_syscall(SYS_munmap, (long)p, (long)len, 0, 0, 0, 0) ? -1 : 0;
}

static inline int vm_madvise(bool raw, void *p, size_t len, int advice)
{
	if (!raw)
		return madvise(p, len, advice);
	return vm_raw_syscall(SYS_madvise, (long)p, (long)len, advice, 0, 0,
			      0) ? -1 : 0;
}

/* One thread's addresses: holes in the reservation, and a mapped region. */
struct vm_slot {
	char *hole_2m;     /* VM_2M free bytes, 2 MiB aligned */
	char *hole_4k;     /* VM_PAGE free bytes */
	char *dontneed;    /* VM_DN_LEN bytes mapped read-write */
	long misplaced;    /* mmaps the kernel did not put at the hint */
};

static inline void vm_die(const char *what)
{
	perror(what);
	exit(1);
}

static inline void *vm_map_checked(bool raw, void *hint, size_t len,
				   struct vm_slot *s)
{
	void *p = vm_mmap(raw, hint, len);

	if (p == MAP_FAILED)
		vm_die("mmap");
	if (p != hint)
		s->misplaced++;
	return p;
}

/*
 * mmap + munmap of @len at @hint; with @touch, one byte is written in
 * between, so that munmap frees a page (and flushes its TLB entry).
 */
static inline uint64_t vm_pairs(struct vm_slot *s, char *hint, size_t len,
				bool touch, bool raw, long iters)
{
	uint64_t t0 = bench_now_ns();

	for (long i = 0; i < iters; i++) {
		char *p = vm_map_checked(raw, hint, len, s);

		if (touch)
			*(volatile char *)p = (char)i;
		if (vm_munmap(raw, p, len))
			vm_die("munmap");
	}
	return bench_now_ns() - t0;
}

static uint64_t vm_op_map4k(struct vm_slot *s, bool raw, long iters)
{
	return vm_pairs(s, s->hole_4k, VM_PAGE, false, raw, iters);
}

static uint64_t vm_op_map4k_touch(struct vm_slot *s, bool raw, long iters)
{
	return vm_pairs(s, s->hole_4k, VM_PAGE, true, raw, iters);
}

static uint64_t vm_op_map2m(struct vm_slot *s, bool raw, long iters)
{
	return vm_pairs(s, s->hole_2m, VM_2M, false, raw, iters);
}

/*
 * madvise(MADV_DONTNEED) of 64 KiB whose 16 pages were all written just
 * before, so that each call frees real pages.  Only the madvise is timed
 * (the two clock reads around it, ~20 ns, are in every phase alike).
 */
static uint64_t vm_op_dontneed(struct vm_slot *s, bool raw, long iters)
{
	uint64_t ns = 0;

	for (long i = 0; i < iters; i++) {
		uint64_t t0;

		for (size_t off = 0; off < VM_DN_LEN; off += VM_PAGE)
			((volatile char *)s->dontneed)[off] = (char)i;
		t0 = bench_now_ns();
		if (vm_madvise(raw, s->dontneed, VM_DN_LEN, MADV_DONTNEED))
			vm_die("madvise");
		ns += bench_now_ns() - t0;
	}
	return ns;
}

/*
 * madvise(MADV_DONTNEED) from one byte into the region: the kernel refuses
 * it at once (EINVAL, the start is not page aligned) and touches nothing
 * shared, while the monitor, which rounds the range out to pages, walks it
 * as for any other.  What is left is the system call's entry and exit and
 * the hook: the op where a lock or a cache line shared between threads in
 * the hook would show on 2 threads.  (A real DONTNEED, even of pages not
 * present, can flush the other CPU's TLB when both threads run one.)
 */
static uint64_t vm_op_rejected(struct vm_slot *s, bool raw, long iters)
{
	uint64_t t0 = bench_now_ns();

	for (long i = 0; i < iters; i++)
		if (vm_madvise(raw, s->dontneed + 1, VM_DN_LEN - VM_PAGE,
			       MADV_DONTNEED) == 0) {
			fprintf(stderr, "madvise of an unaligned start "
					"succeeded\n");
			exit(1);
		}
	return bench_now_ns() - t0;
}

struct vm_op {
	const char *name;
	uint64_t (*run)(struct vm_slot *s, bool raw, long iters);
	long iters;
};

/* Indices into vm_ops[]. */
enum {
	VM_OP_MAP4K, VM_OP_MAP4K_TOUCH, VM_OP_MAP2M, VM_OP_DONTNEED, VM_OP_HOOK
};

static const struct vm_op vm_ops[] = {
	{ "mmap+munmap 4 KiB", vm_op_map4k, 4000 },
	{ "mmap+write+munmap 4 KiB", vm_op_map4k_touch, 1500 },
	{ "mmap+munmap 2 MiB", vm_op_map2m, 3000 },
	{ "madvise DONTNEED 64 KiB", vm_op_dontneed, 600 },
	{ "bad madvise (hook only)", vm_op_rejected, 4000 },
};
#define VM_NOPS (sizeof(vm_ops) / sizeof(vm_ops[0]))

/*
 * The reservation: [base, window) and [window + VM_THREADS * VM_SLOT, end)
 * are for the benchmark's subscriptions (@sub_bytes on each side), the
 * window in between holds one VM_SLOT per thread:
 *
 *   slot + 2 MiB        2 MiB hole (mmap+munmap 2 MiB)
 *   slot + 4 MiB + 64K  4 KiB hole (mmap+munmap 4 KiB)
 *   slot + 4 MiB + 128K 64 KiB mapped read-write (madvise)
 *
 * Everything else stays PROT_NONE, so every hole is walled in and no
 * bigger mapping (a thread stack) can take it; only a mapping of at most a
 * hole's size, made by someone else while the hole is free, could.  The
 * benchmarks count the mmaps that did not land at their hint.
 */
struct vm_layout {
	char *base;
	size_t len;
	char *window;        /* VM_2M aligned */
	size_t sub_bytes;    /* below the window, and again above it */
	struct vm_slot slot[VM_THREADS];
	int cpu[VM_THREADS]; /* thread t runs on cpu[t]; -1: not pinned */
};

/*
 * Thread t is pinned to the t-th CPU the process may use, so that 2
 * threads run at the same time (unpinned, the scheduler sometimes keeps
 * both on one CPU, and they take turns instead of contending).
 */
static inline void vm_pick_cpus(struct vm_layout *l)
{
	cpu_set_t set;
	int t = 0;

	for (int i = 0; i < VM_THREADS; i++)
		l->cpu[i] = -1;
	if (sched_getaffinity(0, sizeof(set), &set))
		return;
	for (int c = 0; c < CPU_SETSIZE && t < VM_THREADS; c++)
		if (CPU_ISSET(c, &set))
			l->cpu[t++] = c;
	if (t < VM_THREADS)
		for (int i = 0; i < VM_THREADS; i++)
			l->cpu[i] = -1;
}

static inline void vm_layout_init(struct vm_layout *l, size_t sub_bytes)
{
	size_t win = VM_THREADS * VM_SLOT;
	uintptr_t w;

	l->sub_bytes = (sub_bytes + VM_2M - 1) & ~(VM_2M - 1);
	l->len = 2 * l->sub_bytes + win + VM_2M;
	l->base = mmap(NULL, l->len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (l->base == MAP_FAILED)
		vm_die("mmap reservation");
	w = ((uintptr_t)l->base + l->sub_bytes + VM_2M - 1) & ~(VM_2M - 1);
	l->window = (char *)w;
	vm_pick_cpus(l);
	for (int t = 0; t < VM_THREADS; t++) {
		struct vm_slot *s = &l->slot[t];
		char *slot = l->window + t * VM_SLOT;

		s->hole_2m = slot + VM_2M;
		s->hole_4k = slot + 2 * VM_2M + 0x10000;
		s->dontneed = slot + 2 * VM_2M + 0x20000;
		s->misplaced = 0;
		if (munmap(s->hole_2m, VM_2M) || munmap(s->hole_4k, VM_PAGE))
			vm_die("munmap hole");
		if (mmap(s->dontneed, VM_DN_LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
			 0) != s->dontneed)
			vm_die("mmap madvise region");
	}
}

/*
 * Fill the holes with PROT_NONE while something else maps memory (loading
 * a library, installing hooks): the holes are the highest free gaps, where
 * the kernel would put it, and the benchmark's mmaps would then land
 * elsewhere (or unmap it).
 */
static inline void vm_layout_plug(struct vm_layout *l, bool plug)
{
	for (int t = 0; t < VM_THREADS; t++) {
		struct vm_slot *s = &l->slot[t];
		char *hole[2] = { s->hole_2m, s->hole_4k };
		size_t len[2] = { VM_2M, VM_PAGE };

		for (int i = 0; i < 2; i++) {
			if (!plug) {
				if (munmap(hole[i], len[i]))
					vm_die("munmap plug");
			} else if (mmap(hole[i], len[i], PROT_NONE,
					MAP_PRIVATE | MAP_ANONYMOUS |
						MAP_FIXED | MAP_NORESERVE,
					-1, 0) != hole[i]) {
				vm_die("mmap plug");
			}
		}
	}
}

/* Where subscription @i of @n goes: half below the window, half above. */
static inline uintptr_t vm_layout_sub_addr(const struct vm_layout *l,
					   size_t i, size_t n, size_t spacing)
{
	size_t half = n / 2;

	if (i < half)
		return (uintptr_t)l->window - (half - i) * spacing;
	return (uintptr_t)l->window + VM_THREADS * VM_SLOT + (i - half) * spacing;
}

static inline void vm_layout_free(struct vm_layout *l)
{
	if (munmap(l->base, l->len))
		vm_die("munmap reservation");
}

/*
 * A thread runs blocks of VM_BLOCK iterations, alternating libc and raw
 * and which of them goes first, so that both see the same moments of the
 * machine (and, on 2 threads, the same mix of what the other thread does).
 * Its figure for each is the mean of its middle half of blocks (the
 * interquartile mean): a block the hypervisor preempted (milliseconds, on
 * a shared VM) would otherwise weigh on a few thousand calls of
 * microseconds each, and on 2 threads the blocks are of two kinds (the
 * other thread in the kernel at the same time or not), where a median
 * would jump between the two.  One block of each goes first,
 * untimed (first touches of the stack and of the pages).
 */
#define VM_BLOCK     20
#define VM_MAXBLOCKS 256

struct vm_job {
	const struct vm_op *op;
	struct vm_slot *slot;
	pthread_barrier_t *start;
	int cpu;
	long blocks;
	uint64_t ns[2][VM_MAXBLOCKS];   /* [raw][block] */
};

static int vm_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static void *vm_job_main(void *arg)
{
	struct vm_job *j = arg;

	if (j->cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(j->cpu, &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
			vm_die("pthread_setaffinity_np");
	}
	pthread_barrier_wait(j->start);
	for (int raw = 0; raw < 1 + VM_HAVE_RAW; raw++)
		j->op->run(j->slot, raw, VM_BLOCK);
	for (long b = 0; b < j->blocks; b++)
		for (int k = 0; k < 1 + VM_HAVE_RAW; k++) {
			bool raw = VM_HAVE_RAW && (k ^ (b & 1));

			j->ns[raw][b] = j->op->run(j->slot, raw, VM_BLOCK);
		}
	for (int raw = 0; raw < 1 + VM_HAVE_RAW; raw++)
		qsort(j->ns[raw], (size_t)j->blocks, sizeof(uint64_t),
		      vm_cmp_u64);
	return NULL;
}

/*
 * ns per operation through libc (@ns[0]) and raw (@ns[1]): each thread's
 * interquartile mean block, averaged over @threads threads each running
 * its own loop.
 */
static inline double vm_iqm(const uint64_t *sorted, long n)
{
	double sum = 0;

	for (long i = n / 4; i < n - n / 4; i++)
		sum += (double)sorted[i];
	return sum / (double)(n - 2 * (n / 4));
}

static inline void vm_measure(struct vm_layout *l, const struct vm_op *op,
			      unsigned threads, double ns[2])
{
	static struct vm_job job[VM_THREADS];
	pthread_barrier_t start;
	pthread_t tid[VM_THREADS];
	long blocks = op->iters / VM_BLOCK;

	if (blocks > VM_MAXBLOCKS)
		blocks = VM_MAXBLOCKS;
	ns[0] = ns[1] = 0;
	pthread_barrier_init(&start, NULL, threads);
	for (unsigned t = 0; t < threads; t++) {
		job[t].op = op;
		job[t].slot = &l->slot[t];
		job[t].start = &start;
		job[t].cpu = l->cpu[t];
		job[t].blocks = blocks;
		if (pthread_create(&tid[t], NULL, vm_job_main, &job[t]))
			vm_die("pthread_create");
	}
	for (unsigned t = 0; t < threads; t++) {
		pthread_join(tid[t], NULL);
		for (int raw = 0; raw < 2; raw++)
			ns[raw] += vm_iqm(job[t].ns[raw], blocks) /
				   VM_BLOCK / threads;
	}
	pthread_barrier_destroy(&start);
}

/* Every figure of a run: [phase][op][threads - 1][raw][repeat]. */
struct vm_results {
	unsigned phases;
	const char *phase_name[VM_MAXPH];
	double ns[VM_MAXPH][VM_NOPS][VM_THREADS][2][VM_REPEATS];
};

/* Time every operation on 1 and 2 threads, VM_REPEATS times. */
static inline void vm_run_phase(struct vm_layout *l, struct vm_results *r,
				unsigned ph, const char *name)
{
	r->phase_name[ph] = name;
	if (ph + 1 > r->phases)
		r->phases = ph + 1;
	for (int rep = 0; rep < VM_REPEATS; rep++)
		for (size_t op = 0; op < VM_NOPS; op++)
			for (unsigned th = 1; th <= VM_THREADS; th++) {
				double ns[2];

				vm_measure(l, &vm_ops[op], th, ns);
				r->ns[ph][op][th - 1][0][rep] = ns[0];
				r->ns[ph][op][th - 1][1][rep] = ns[1];
			}
}

static int vm_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static inline double vm_median(const double *v)
{
	double s[VM_REPEATS];

	memcpy(s, v, sizeof(s));
	qsort(s, VM_REPEATS, sizeof(s[0]), vm_cmp_double);
	return s[VM_REPEATS / 2];
}

/* Median over repeats of libc minus raw (@ratio: libc over raw). */
static inline double vm_median_pair(const struct vm_results *r, unsigned ph,
				    size_t op, unsigned th, bool ratio)
{
	const double *libc = r->ns[ph][op][th - 1][0];
	const double *raw = r->ns[ph][op][th - 1][1];
	double d[VM_REPEATS];

	for (int rep = 0; rep < VM_REPEATS; rep++)
		d[rep] = ratio ? libc[rep] / raw[rep] : libc[rep] - raw[rep];
	return vm_median(d);
}

/*
 * What the hooks add in phase @ph, paired with the raw control: libc minus
 * raw there, less libc minus raw in phase 0 (the wrapper and PLT cost libc
 * has anyway).  Free of the machine's drift between phases.
 */
static inline double vm_paired_added(const struct vm_results *r, unsigned ph,
				     size_t op, unsigned th)
{
	return vm_median_pair(r, ph, op, th, false) -
	       vm_median_pair(r, 0, op, th, false);
}

static inline double vm_paired_ratio(const struct vm_results *r, unsigned ph,
				     size_t op, unsigned th)
{
	return vm_median_pair(r, ph, op, th, true) /
	       vm_median_pair(r, 0, op, th, true);
}

/* ns added by the hooks in phase @ph: paired when there is a control. */
static inline double vm_added(const struct vm_results *r, unsigned ph,
			      size_t op, unsigned th)
{
	if (VM_HAVE_RAW)
		return vm_paired_added(r, ph, op, th);
	return vm_median(r->ns[ph][op][th - 1][0]) -
	       vm_median(r->ns[0][op][th - 1][0]);
}

static inline void vm_print_head(const struct vm_results *r,
				 const char *first, const char *cols)
{
	printf("%-24s %3s %9.9s", "op", "thr", r->phase_name[0]);
	for (unsigned ph = 1; ph < r->phases; ph++)
		printf(" | %-24.24s", r->phase_name[ph]);
	printf("\n%-28s %9s", "", first);
	for (unsigned ph = 1; ph < r->phases; ph++)
		printf(" | %s", cols);
	printf("\n");
}

/*
 * Two tables.  The first: ns per operation per thread in each phase, and
 * for later phases the ns added to phase 0 and the ratio to it (the same
 * thread count).  The second: the same +ns and ratio paired with the raw
 * control, and how far the control itself moved from phase 0 (drift): when
 * drift is far from 1, the machine changed between phases and the first
 * table's +ns says more about the machine than about the hooks.
 */
static inline void vm_print(const struct vm_results *r)
{
	printf("ns per op per thread, median of %d; +ns and ratio against %s "
	       "with the same thread count\n", VM_REPEATS, r->phase_name[0]);
	vm_print_head(r, "ns/op", "    ns/op     +ns  ratio");
	for (size_t op = 0; op < VM_NOPS; op++)
		for (unsigned th = 1; th <= VM_THREADS; th++) {
			double base = vm_median(r->ns[0][op][th - 1][0]);

			printf("%-24s %3u %9.1f", vm_ops[op].name, th, base);
			for (unsigned ph = 1; ph < r->phases; ph++) {
				double n = vm_median(r->ns[ph][op][th - 1][0]);

				printf(" | %9.1f %+7.1f %6.3f", n, n - base,
				       n / base);
			}
			printf("\n");
		}
	if (!VM_HAVE_RAW)
		return;
	printf("\npaired with raw syscalls (not hooked) timed beside them in "
	       "each phase: +ns = (libc - raw) - (libc - raw in %s),\n"
	       "ratio = (libc / raw) / (libc / raw in %s), drift = raw / raw "
	       "in %s\n", r->phase_name[0], r->phase_name[0],
	       r->phase_name[0]);
	vm_print_head(r, "libc-raw", "      +ns  ratio  drift ");
	for (size_t op = 0; op < VM_NOPS; op++)
		for (unsigned th = 1; th <= VM_THREADS; th++) {
			double raw0 = vm_median(r->ns[0][op][th - 1][1]);

			printf("%-24s %3u %+9.1f", vm_ops[op].name, th,
			       vm_median_pair(r, 0, op, th, false));
			for (unsigned ph = 1; ph < r->phases; ph++)
				printf(" | %+9.1f %6.3f %6.3f ",
				       vm_paired_added(r, ph, op, th),
				       vm_paired_ratio(r, ph, op, th),
				       vm_median(r->ns[ph][op][th - 1][1]) /
					       raw0);
			printf("\n");
		}
}

/*
 * The summary of phase @ph: what the hooks add to a 4 KiB pair on 1 thread
 * against @target_ns, and the hook-only call on 1 and on 2 threads.  A
 * lock or a cache line the hook writes from every thread costs a transfer
 * between CPUs on each call (tens of ns or more); 2 threads paying more
 * than 1 beyond @slack_ns is reported as sharing.
 */
static inline void vm_print_summary(const struct vm_results *r, unsigned ph,
				    double target_ns, double slack_ns)
{
	double pair = vm_added(r, ph, VM_OP_MAP4K, 1);
	double one = vm_added(r, ph, VM_OP_HOOK, 1);
	double two = vm_added(r, ph, VM_OP_HOOK, 2);

	printf("%-16s 4 KiB mmap+munmap, 1 thread: %+6.1f ns (target <= %.0f: "
	       "%s); hook only, 1 / 2 threads: %+6.1f / %+6.1f ns (%s)\n",
	       r->phase_name[ph], pair, target_ns,
	       pair <= target_ns ? "met" : "missed", one, two,
	       two <= one + slack_ns ? "nothing shared between threads"
				     : "2 threads pay more: shared");
}

static inline long vm_misplaced(const struct vm_layout *l)
{
	long n = 0;

	for (int t = 0; t < VM_THREADS; t++)
		n += l->slot[t].misplaced;
	return n;
}

#endif /* UMN_BENCH_VMOPS_H */
