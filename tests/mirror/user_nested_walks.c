// SPDX-License-Identifier: MIT
/*
 * Several walks in one period, on a space the test drives itself: a walk
 * that splits a region inserts the tail as a second region, deferred to the
 * end of the period, so the walks that follow in the same period do not
 * reach the tail themselves; the walk range of the region it was split
 * from still covers it.  Whatever those walks unmap must leave the tail too.
 *
 * The walks nest as the monitor brackets mremap(MREMAP_FIXED): the
 * destination's UNMAP, then the source's REMAP, then the move itself.
 */
#include "mirror/helpers.h"

#define PAGES 16

struct nested {
	struct umn_mm *mm;
	struct umn_mirror *m;
	char *p;
	struct umn_range r[3];
};

/* One region over 16 pages, all of them with a device entry. */
static void nested_setup(struct nested *t, uint64_t gen)
{
	user_setup_region(&t->mm, &t->m, &t->p, PAGES, gen);
}

/* Begin walk @i over pages [from, to) of the mapping, nested in the others. */
static void begin(struct nested *t, int i, size_t from, size_t to,
		  enum umn_event event)
{
	t->r[i] = (struct umn_range){ .mm = t->mm, .start = at(t->p, from),
				      .end = at(t->p, to), .event = event,
				      .flags = UMN_RANGE_BLOCKABLE };
	assert_int_equal(umn_invalidate_range_start(&t->r[i]), 0);
}

/* Unmap pages [from, to) (the guards: -1, PAGES), as the monitor brackets. */
static void unmap_pages(struct nested *t, long from, long to)
{
	uintptr_t start = (uintptr_t)t->p + (uintptr_t)(from * (long)PG);
	uintptr_t end = (uintptr_t)t->p + (uintptr_t)(to * (long)PG);

	assert_int_equal(umn_invalidate(t->mm, start, end, UMN_EVENT_UNMAP), 0);
	assert_int_equal(munmap((void *)start, end - start), 0);
}

static void nested_teardown(struct nested *t)
{
	assert_int_equal(umn_mirror_regions(t->m, NULL, 0), 0);
	assert_int_equal(umn_mirror_free(t->m), 0);
	assert_int_equal(umn_mm_free(t->mm), 0);
}

/* Pages @gone(page) read -EFAULT, the others what generation @gen wrote. */
static void check_pages(struct nested *t, bool (*gone)(size_t), uint64_t gen)
{
	uint64_t v;

	for (size_t i = 0; i < PAGES; i++) {
		if (gone(i))
			assert_int_equal(umn_mirror_read(t->m, at(t->p, i), &v,
							 sizeof(v)), -EFAULT);
		else
			check_device(t->m, (char *)at(t->p, i), PG, gen);
	}
}

static bool moved_out(size_t page)
{
	return page >= 10 && page < 12;
}

static bool unmapped(size_t page)
{
	return page < 6 || moved_out(page);
}

/*
 * mremap(p + 10, 2 pages, FIXED, p + 4): the UNMAP of [4, 6) splits the
 * region into [0, 4) and a deferred [6, 16); the REMAP of [10, 12) that
 * follows in the same period reaches only the first, whose walk range is
 * still [0, 16).
 */
static void unmap_after_split(void **state)
{
	struct nested t;

	nested_setup(&t, 1);
	begin(&t, 0, 4, 6, UMN_EVENT_UNMAP);
	begin(&t, 1, 10, 12, UMN_EVENT_REMAP);
	assert_true(mremap((void *)at(t.p, 10), 2 * PG, 2 * PG,
			   MREMAP_MAYMOVE | MREMAP_FIXED,
			   (void *)at(t.p, 4)) == (void *)at(t.p, 4));
	umn_invalidate_range_end(&t.r[1]);
	umn_invalidate_range_end(&t.r[0]);

	check_regions_live(t.m);
	/* The pages moved to [4, 6) keep the content they had at [10, 12). */
	for (size_t i = 0; i < PAGES; i++) {
		uint64_t v;
		int err = umn_mirror_read(t.m, at(t.p, i), &v, sizeof(v));

		if (moved_out(i)) {
			assert_int_equal(err, -EFAULT);
			continue;
		}
		assert_int_equal(err, 0);
		assert_true(v == pattern(1, at(t.p, i < 4 || i >= 6 ? i : i + 6)));
	}
	check_regions_live(t.m);
	/* Not the hole: another thread (a sanitizer's) may have mapped it. */
	unmap_pages(&t, -1, 10);
	unmap_pages(&t, 12, PAGES + 1);
	nested_teardown(&t);
}

/*
 * The same, with the region the tail was split from put in between: its
 * walk range still covers the tail, so the walk of a region already put
 * trims the tail too.
 */
static void unmap_after_split_and_put(void **state)
{
	struct nested t;

	nested_setup(&t, 2);
	begin(&t, 0, 4, 6, UMN_EVENT_UNMAP);
	begin(&t, 1, 0, 4, UMN_EVENT_UNMAP);
	begin(&t, 2, 10, 12, UMN_EVENT_UNMAP);
	assert_int_equal(munmap((void *)at(t.p, 0), 6 * PG), 0);
	assert_int_equal(munmap((void *)at(t.p, 10), 2 * PG), 0);
	for (int i = 2; i >= 0; i--)
		umn_invalidate_range_end(&t.r[i]);

	assert_int_equal(check_regions_live(t.m), 2);
	check_pages(&t, unmapped, 2);
	assert_int_equal(mirror_stats(t.m).released, 1);
	unmap_pages(&t, -1, 0);
	unmap_pages(&t, 6, 10);
	unmap_pages(&t, 12, PAGES + 1);
	nested_teardown(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(unmap_after_split),
		cmocka_unit_test(unmap_after_split_and_put),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
