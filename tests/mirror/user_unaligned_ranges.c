// SPDX-License-Identifier: MIT
/*
 * Invalidations that do not fall on page boundaries, on a space the test
 * drives itself.  munmap() and mremap() take lengths that are not page
 * multiples and act on whole pages; a caller that reports the length it
 * passed (and the process monitor on a kernel whose pages are larger than
 * the 4 KiB it rounds to) hands the mirror a range that ends, or begins,
 * inside a page.  The page is the mirror's unit: a region trimmed to such
 * a bound would keep the rest of a page the kernel unmapped, and its
 * bounds would no longer be pages.
 */
#include "mirror/helpers.h"

#define PAGES 16

struct user {
	struct umn_mm *mm;
	struct umn_mirror *m;
	char *p;
};

/* A region over 16 pages, every page with a device entry. */
static void user_setup(struct user *u, uint64_t gen)
{
	user_setup_region(&u->mm, &u->m, &u->p, PAGES, gen);
}

/* Every live region starts and ends on a page, over mapped memory. */
static void check_page_bounds(struct umn_mirror *m)
{
	struct umn_mirror_region r[16];
	long n = umn_mirror_regions(m, r, 16);

	assert_true(n >= 0 && n <= 16);
	for (long i = 0; i < n; i++)
		if (r[i].start % PG || r[i].end % PG)
			fail_msg("region [%#lx, %#lx) is not whole pages",
				 (unsigned long)r[i].start,
				 (unsigned long)r[i].end);
	check_regions_live(m);
}

/* munmap(p + 4 pages, 2 pages - 100): the kernel unmaps pages 4 and 5. */
static void unmap_length_not_pages(void **state)
{
	struct user u;
	uint64_t v;

	user_setup(&u, 1);
	assert_int_equal(umn_invalidate(u.mm, at(u.p, 4), at(u.p, 6) - 100,
					UMN_EVENT_UNMAP), 0);
	assert_int_equal(munmap((void *)at(u.p, 4), 2 * PG - 100), 0);
	check_page_bounds(u.m);
	assert_int_equal(umn_mirror_read(u.m, at(u.p, 5) + 8, &v, sizeof(v)),
			 -EFAULT);
	check_device(u.m, (char *)at(u.p, 6), 10 * PG, 1);
	check_device(u.m, u.p, 4 * PG, 1);
	check_page_bounds(u.m);
	/* Not the hole: another thread (a sanitizer's) may have mapped it. */
	assert_int_equal(umn_invalidate(u.mm, at(u.p, 0) - PG, at(u.p, 4),
					UMN_EVENT_UNMAP), 0);
	assert_int_equal(munmap(u.p - PG, 5 * PG), 0);
	assert_int_equal(umn_invalidate(u.mm, at(u.p, 6), at(u.p, PAGES + 1),
					UMN_EVENT_UNMAP), 0);
	assert_int_equal(munmap((void *)at(u.p, 6), (PAGES - 5) * PG), 0);
	assert_int_equal(umn_mirror_regions(u.m, NULL, 0), 0);
	assert_int_equal(umn_mirror_free(u.m), 0);
	assert_int_equal(umn_mm_free(u.mm), 0);
}

/*
 * mremap(p, 16 pages, 8 pages + 100): the kernel keeps 9 pages; the pages
 * leaving are reported from the new length on, inside page 8.
 */
static void shrink_to_length_not_pages(void **state)
{
	struct user u;

	user_setup(&u, 2);
	assert_int_equal(umn_invalidate(u.mm, at(u.p, 8) + 100, at(u.p, PAGES),
					UMN_EVENT_REMAP), 0);
	assert_true(mremap(u.p, PAGES * PG, 8 * PG + 100, 0) == u.p);
	check_page_bounds(u.m);
	check_device(u.m, u.p, 9 * PG, 2);
	check_page_bounds(u.m);
	assert_int_equal(umn_invalidate(u.mm, at(u.p, 0) - PG, at(u.p, 9),
					UMN_EVENT_UNMAP), 0);
	assert_int_equal(munmap(u.p - PG, 10 * PG), 0);
	assert_int_equal(umn_invalidate(u.mm, at(u.p, PAGES),
					at(u.p, PAGES + 1), UMN_EVENT_UNMAP),
			 0);
	assert_int_equal(munmap((void *)at(u.p, PAGES), PG), 0);
	assert_int_equal(umn_mirror_regions(u.m, NULL, 0), 0);
	assert_int_equal(umn_mirror_free(u.m), 0);
	assert_int_equal(umn_mm_free(u.mm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(unmap_length_not_pages),
		cmocka_unit_test(shrink_to_length_not_pages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
