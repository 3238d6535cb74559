// SPDX-License-Identifier: MIT
/*
 * Device threads and CPU threads changing the mappings under them, with the
 * process monitor feeding the space (the workload of `umn demo mirror`,
 * tools/umn/demo_mirror.c): no stale read, no lost device add, and at the
 * end only regions over live memory, none once it is all unmapped.
 * Skipped under ThreadSanitizer, where the monitor cannot run:
 * user_concurrent runs the same workload on a user-driven space there.
 */
#include "mirror/helpers.h"

#include <stdio.h>

#include "demo_mirror.h"

static void check(const struct mirror_workload_result *r)
{
	if (r->stale)
		fail_msg("%lu stale reads; first: %s", r->stale, r->first_stale);
	assert_int_equal(r->adds_lost, 0);
	assert_true(r->reads > 0 && r->writes > 0 && r->adds > 0);
	assert_true(r->st.invalidations > 0 && r->st.faults > 0);
	assert_int_equal(r->regions_unmapped, 0);
	assert_int_equal(r->regions_after, 0);
	assert_int_equal(r->st.puts, r->st.released);
}

static void run(size_t chunk)
{
	struct mirror_workload_config cfg = {
		.mm = process_space(), .device_threads = 4, .cpu_threads = 2,
		.seconds = test_stress_seconds() / 2, .slots = 16,
		.slot_pages = 8, .chunk = chunk, .seed = 1,
	};
	struct mirror_workload_result r;

	assert_int_equal(mirror_workload_run(&cfg, &r), 0);
	check(&r);
}

static void concurrent_2m_chunks(void **state)
{
	run(0);
}

static void concurrent_4k_chunks(void **state)
{
	run(PG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(concurrent_2m_chunks),
		cmocka_unit_test(concurrent_4k_chunks),
	};

	if (UNDER_TSAN) {
		fprintf(stderr, "the process monitor cannot run under "
			"ThreadSanitizer: see user_concurrent\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
