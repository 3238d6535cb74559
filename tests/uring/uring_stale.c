// SPDX-License-Identifier: MIT
/*
 * The failure umn exists to end, end to end with a real io_uring: buffers
 * are freed and made again (the kernel hands the same addresses back), a
 * registration cache gives each a READ_FIXED slot, and every byte read is
 * checked against the file (tools/umn/uring_workload.c, the workload
 * `umn demo uring` shows).
 *
 *   through a cache keyed by address that is never told about unmaps,
 *   reads report success and their data is lost: the test can see the
 *   failure;
 *
 *   through umn's cache on umn_mm_process(), every read lands in the live
 *   buffer, although the addresses were reused just as often.
 *
 * Twice: buffers from malloc/free (glibc's mmap threshold fixed at 128 KiB,
 * so they are mapped and unmapped), and from mmap/munmap directly.
 *
 * Sanitizers: under ThreadSanitizer the process monitor cannot run (see
 * tests/run-all.sh), so the test exits 77.  Under AddressSanitizer the
 * malloc/free half is skipped: ASan's allocator quarantines freed blocks
 * and maps and unmaps its own memory with raw system calls, so neither the
 * address reuse nor the unmap happens through libc; the mmap/munmap half
 * runs (ASan's mmap and munmap call libc's).
 */
#ifndef UMN_HAVE_URING
#define UMN_HAVE_URING 0
#endif

#if UMN_HAVE_URING

#include "uring/helpers.h"

#include "uring_workload.h"

static void report(const char *what, const struct uring_result *r)
{
	printf("  %s: %lu buffers (%lu over freed pages), %lu reads, %llu bytes "
	       "checked, %lu reads lost (%llu bytes), %lu registrations, "
	       "%lu invalidated\n", what, r->buffers, r->reused, r->reads,
	       r->bytes_verified, r->reads_lost, r->bytes_lost,
	       r->registrations, r->invalidated);
}

static void run(enum uring_cache cache, enum uring_alloc alloc,
		struct uring_result *r)
{
	struct uring_workload w;
	int ret;

	uring_workload_defaults(&w, cache, alloc);
	ret = uring_workload_run(&w, r);
	if (ret)
		print_error("workload failed: %d: %s\n", ret, r->error);
	assert_int_equal(ret, 0);
	report(cache == URING_CACHE_NAIVE ? "naive" : "umn", r);
	/* The hazard happened: buffers came back over freed pages, and
	 * every read completed and was checked. */
	assert_true(r->reused > r->buffers / 4);
	assert_true(r->reads >= w.steps);
	assert_true(r->bytes_verified >= (unsigned long long)r->reads * w.min_len);
}

static void naive_loses_data(enum uring_alloc alloc)
{
	struct uring_result r;

	run(URING_CACHE_NAIVE, alloc, &r);
	assert_true(r.reads_lost > 0);
	assert_true(r.bytes_lost > 0);
}

static void umn_loses_nothing(enum uring_alloc alloc)
{
	struct uring_result r;

	run(URING_CACHE_UMN, alloc, &r);
	assert_int_equal(r.reads_lost, 0);
	assert_int_equal(r.bytes_lost, 0);
	assert_true(r.invalidated > 0);
	/* Still a cache: fewer registrations than reads. */
	assert_true(r.registrations < r.reads);
}

static void malloc_naive_cache_loses_data(void **state)
{
	if (UNDER_ASAN)
		skip();
	naive_loses_data(URING_ALLOC_MALLOC);
}

static void malloc_umn_every_read_lands(void **state)
{
	if (UNDER_ASAN)
		skip();
	umn_loses_nothing(URING_ALLOC_MALLOC);
}

static void mmap_naive_cache_loses_data(void **state)
{
	naive_loses_data(URING_ALLOC_MMAP);
}

static void mmap_umn_every_read_lands(void **state)
{
	umn_loses_nothing(URING_ALLOC_MMAP);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(malloc_naive_cache_loses_data),
		cmocka_unit_test(malloc_umn_every_read_lands),
		cmocka_unit_test(mmap_naive_cache_loses_data),
		cmocka_unit_test(mmap_umn_every_read_lands),
	};
	char why[512];

	if (UNDER_TSAN) {
		printf("uring_stale: skipped: the process monitor cannot run "
		       "under ThreadSanitizer\n");
		return 77;
	}
	if (uring_workload_usable(URING_CACHE_UMN, why, sizeof(why))) {
		printf("uring_stale: skipped: %s\n", why);
		return 77;
	}
	if (UNDER_ASAN)
		printf("uring_stale: the malloc/free half is skipped under "
		       "AddressSanitizer: its allocator neither unmaps freed "
		       "blocks through libc nor reuses their addresses soon\n");
	return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* !UMN_HAVE_URING */

#include <stdio.h>

int main(void)
{
	printf("uring_stale: skipped: built without liburing "
	       "(Debian: apt-get install liburing-dev)\n");
	return 77;
}

#endif
