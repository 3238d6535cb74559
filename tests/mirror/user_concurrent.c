// SPDX-License-Identifier: MIT
/*
 * The concurrent workload of process_concurrent on a space the workload
 * drives itself: each mmap, munmap, mremap, madvise and mprotect of the CPU
 * threads is bracketed with umn_invalidate_range_start/_end, as the monitor
 * would do.  Runs under ThreadSanitizer, where the monitor cannot.
 */
#include "mirror/helpers.h"

#include "demo_mirror.h"

static void run(size_t chunk)
{
	struct umn_mm *mm = umn_mm_new();
	struct mirror_workload_config cfg = {
		.mm = mm, .user_driven = true, .device_threads = 3,
		.cpu_threads = 2, .seconds = test_stress_seconds() / 2,
		.slots = 16, .slot_pages = 8, .chunk = chunk, .seed = 2,
	};
	struct mirror_workload_result r;

	assert_non_null(mm);
	assert_int_equal(mirror_workload_run(&cfg, &r), 0);
	if (r.stale)
		fail_msg("%lu stale reads; first: %s", r.stale, r.first_stale);
	assert_int_equal(r.adds_lost, 0);
	assert_true(r.reads > 0 && r.st.invalidations > 0);
	assert_int_equal(r.regions_unmapped, 0);
	assert_int_equal(r.regions_after, 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void user_driven_2m_chunks(void **state)
{
	run(0);
}

static void user_driven_16k_chunks(void **state)
{
	run(4 * PG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(user_driven_2m_chunks),
		cmocka_unit_test(user_driven_16k_chunks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
