// SPDX-License-Identifier: MIT
/*
 * What a device fault costs in reads of /proc/self/maps, the bulk of its
 * time: one, made after umn_read_begin(), whether or not the fault inserts
 * the region; a second only when the region it inserts (the chunk) is
 * larger than the mapping and is clipped to it.
 */
#include "mirror/helpers.h"

#define PAGES 16

static void maps_reads(size_t chunk, size_t pages, unsigned long want)
{
	struct umn_mm *mm = umn_mm_new();
	struct umn_mirror_config cfg = { .chunk = chunk };
	struct umn_mirror *m;
	char *p = map_guarded(pages, 1);

	assert_non_null(mm);
	m = umn_mirror_new(mm, &cfg);
	assert_non_null(m);
	check_device(m, p, pages * PG, 1);
	assert_int_equal(mirror_stats(m).faults, pages);
	assert_int_equal(mirror_stats(m).maps_reads, want);
	user_teardown(mm, m, p, pages);
}

/* Every fault inserts a region of its page's own. */
static void page_chunks(void **state)
{
	maps_reads(PG, PAGES, PAGES);
}

/* The first fault inserts the 2 MiB chunk and clips it to the mapping. */
static void chunk_larger_than_mapping(void **state)
{
	maps_reads(0, PAGES, PAGES + 1);
}

/*
 * Sixteen chunks of four pages, each a region; only the first, which
 * reaches down into the guard page below the mapping, is clipped.
 */
static void mapping_larger_than_chunk(void **state)
{
	maps_reads(4 * PG, 4 * PAGES - 1, 4 * PAGES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(page_chunks),
		cmocka_unit_test(chunk_larger_than_mapping),
		cmocka_unit_test(mapping_larger_than_chunk),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
