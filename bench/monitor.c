// SPDX-License-Identifier: MIT
/*
 * monitor — what the process monitor adds to mmap, munmap and madvise.
 *
 * One run, three phases in this order (installing the monitor cannot be
 * undone):
 *   (a) no monitor: umn_mm_process() not called yet;
 *   (b) the monitor installed, no subscription;
 *   (c) the monitor with 10,000 subscriptions, none overlapping the
 *       benchmarked addresses but on both sides of them, so that the walk
 *       bracketing each munmap goes down the whole tree.
 * Each phase times mmap+munmap of 4 KiB (untouched, and with one byte
 * written), mmap+munmap of 2 MiB and madvise(MADV_DONTNEED) of 64 KiB of
 * written pages, on 1 thread and on 2 threads each running its own loop.
 * Figures are medians of VM_REPEATS; ns added and ratios are against (a)
 * with the same thread count.  The same operations through raw system
 * calls, which the monitor does not see, run beside them in every phase as
 * a control (vmops.h).
 *
 * Targets (issue 3): at most 100 ns added per 4 KiB pair, the same with
 * 10,000 subscriptions, and no lock shared between threads on the path of
 * a munmap that overlaps no subscription: 2 threads then pay what 1 does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include <umn/monitor.h>
#include <umn/umn.h>

#include "vmops.h"

#define SUBS        10000
#define SUB_LEN     0x1000ul
#define SUB_SPACING 0x2000ul

static _Atomic long callbacks;

static bool bench_invalidate(struct umn_interval *sub,
			     const struct umn_range *range,
			     unsigned long cur_seq)
{
	atomic_fetch_add_explicit(&callbacks, 1, memory_order_relaxed);
	umn_set_seq(sub, cur_seq);
	return true;
}

static const struct umn_interval_ops bench_ops = {
	.invalidate = bench_invalidate,
};

static void subscribe(struct umn_mm *mm, struct vm_layout *l,
		      struct umn_interval *subs)
{
	for (size_t i = 0; i < SUBS; i++) {
		uintptr_t a = vm_layout_sub_addr(l, i, SUBS, SUB_SPACING);
		int err = umn_interval_insert(&subs[i], mm, a, SUB_LEN,
					      &bench_ops);

		if (err) {
			fprintf(stderr, "umn_interval_insert: %s\n",
				strerror(-err));
			exit(1);
		}
	}
}

static void unsubscribe(struct umn_interval *subs)
{
	for (size_t i = 0; i < SUBS; i++)
		if (umn_interval_remove(&subs[i])) {
			fprintf(stderr, "umn_interval_remove failed\n");
			exit(1);
		}
}

static void print_header(void)
{
	printf("monitor: what umn's process monitor adds to mmap, munmap and "
	       "madvise; phases (a), (b), (c) in this order, one run\n");
	printf("target: <= 100 ns added per 4 KiB mmap+munmap, the same with "
	       "%d subscriptions, 2 threads no worse than 1 (no shared lock)\n",
	       SUBS);
}

int main(void)
{
	struct umn_interval *subs = calloc(SUBS, sizeof(*subs));
	struct vm_results *r = calloc(1, sizeof(*r));
	struct umn_monitor_info info;
	struct vm_layout l;
	struct umn_mm *mm;
	int err;

	if (!subs || !r)
		vm_die("calloc");
	vm_layout_init(&l, SUBS / 2 * SUB_SPACING);
	vm_run_phase(&l, r, 0, "(a) none");

	vm_layout_plug(&l, true);
	mm = umn_mm_process();
	err = errno;
	vm_layout_plug(&l, false);
	umn_monitor_query(&info);
	print_header();
	if (!mm || info.source != UMN_MONITOR_PATCH) {
		info.reason[strcspn(info.reason, "\n")] = '\0';
		printf("monitor not patching (%s): %s; only the baseline:\n",
		       mm ? "UMN_MONITOR" : strerror(err), info.reason);
		vm_print(r);
		return 0;
	}
	vm_run_phase(&l, r, 1, "(b) monitor");
	subscribe(mm, &l, subs);
	vm_run_phase(&l, r, 2, "(c) 10000 subs");
	unsubscribe(subs);

	vm_print(r);
	printf("\n");
	vm_print_summary(r, 1, 100, 10);
	vm_print_summary(r, 2, 100, 10);
	printf("mmaps not at their hint: %ld; invalidate() calls: %ld "
	       "(both should be 0)\n", vm_misplaced(&l),
	       atomic_load(&callbacks));
	vm_layout_free(&l);
	free(subs);
	free(r);
	return 0;
}
