/* SPDX-License-Identifier: MIT */
/*
 * What the mirror tests share: a software-device mirror over the process
 * space, guarded mappings (PROT_NONE on both sides, so the kernel never
 * merges them with a neighbour and a region's range is predictable), and
 * the check that every live region lies over mapped memory.
 */
#ifndef UMN_TESTS_MIRROR_HELPERS_H
#define UMN_TESTS_MIRROR_HELPERS_H

#include "monitor/helpers.h"

#include <umn/mirror.h>

/* The value a test writes at @addr in generation @gen. */
static inline uint64_t pattern(uint64_t gen, uintptr_t addr)
{
	return (gen << 48) ^ (uint64_t)addr;
}

static inline void fill_pattern(void *p, size_t len, uint64_t gen)
{
	uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = pattern(gen, (uintptr_t)&w[i]);
}

/* @pages of read-write anonymous memory between two PROT_NONE guards. */
static inline char *map_guarded(size_t pages, uint64_t gen)
{
	/*
	 * Inside one 2 MiB chunk (the mirror's default) when it fits, so
	 * that how many regions faults make does not depend on where ASLR
	 * put the mapping: reserve a chunk more, keep [p - PG, p + len + PG).
	 */
	const uintptr_t chunk = 2ul << 20;
	size_t len = pages * PG, span = len + 2 * PG + chunk;
	char *g = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	char *p;

	assert_true(g != MAP_FAILED);
	uintptr_t lo = len + 2 * PG <= chunk
			       ? ((uintptr_t)g + chunk - 1) & ~(chunk - 1)
			       : (uintptr_t)g;
	if (lo > (uintptr_t)g)
		munmap(g, lo - (uintptr_t)g);
	if ((uintptr_t)g + span > lo + len + 2 * PG)
		munmap((char *)lo + len + 2 * PG,
		       (uintptr_t)g + span - (lo + len + 2 * PG));
	p = mmap((char *)lo + PG, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	assert_true(p == (char *)lo + PG);
	fill_pattern(p, len, gen);
	return p;
}

static inline void unmap_guarded(char *p, size_t pages)
{
	assert_int_equal(munmap(p - PG, (pages + 2) * PG), 0);
}

/* Every device read of [p, p + len) matches generation @gen. */
static inline void check_device(struct umn_mirror *m, const char *p,
				size_t len, uint64_t gen)
{
	for (size_t off = 0; off < len; off += 8) {
		uint64_t v = 0;

		assert_int_equal(umn_mirror_read(m, (uintptr_t)p + off, &v,
						 sizeof(v)), 0);
		assert_true(v == pattern(gen, (uintptr_t)p + off));
	}
}

/* True if every page of [start, end) is mapped (mincore: ENOMEM if not). */
static inline bool range_mapped(uintptr_t start, uintptr_t end)
{
	unsigned char vec[64];

	for (uintptr_t a = start; a < end; a += 64 * PG) {
		size_t len = end - a < 64 * PG ? end - a : 64 * PG;

		if (mincore((void *)a, len, vec) != 0)
			return false;
	}
	return true;
}

/* Every live region of @m is over mapped memory; returns how many. */
static inline long check_regions_live(struct umn_mirror *m)
{
	struct umn_mirror_region r[256];
	long n = umn_mirror_regions(m, r, 256);

	assert_true(n >= 0 && n <= 256);
	for (long i = 0; i < n; i++) {
		assert_true(r[i].start < r[i].end);
		if (!range_mapped(r[i].start, r[i].end))
			fail_msg("region [%#lx, %#lx) is over unmapped memory",
				 (unsigned long)r[i].start,
				 (unsigned long)r[i].end);
	}
	return n;
}

/*
 * On a space the test drives: unmap a map_guarded() mapping as the monitor
 * would (an UNMAP walk first), then free the mirror, which must have no
 * region left, and the space.
 */
/* The address of page @page of @p. */
static inline uintptr_t at(const char *p, size_t page)
{
	return (uintptr_t)p + page * PG;
}

/*
 * A space the test drives, a mirror of it, and @pages fresh pages of
 * generation @gen mirrored in one region, every page with a device entry.
 */
static inline void user_setup_region(struct umn_mm **mm, struct umn_mirror **m,
				     char **p, size_t pages, uint64_t gen)
{
	*mm = umn_mm_new();
	assert_non_null(*mm);
	*m = umn_mirror_new(*mm, NULL);
	assert_non_null(*m);
	*p = map_guarded(pages, gen);
	check_device(*m, *p, pages * PG, gen);
	assert_int_equal(umn_mirror_regions(*m, NULL, 0), 1);
}

static inline void user_teardown(struct umn_mm *mm, struct umn_mirror *m,
				 char *p, size_t pages)
{
	assert_int_equal(umn_invalidate(mm, (uintptr_t)p - PG,
					(uintptr_t)p + (pages + 1) * PG,
					UMN_EVENT_UNMAP), 0);
	unmap_guarded(p, pages);
	assert_int_equal(umn_mirror_regions(m, NULL, 0), 0);
	assert_int_equal(umn_mirror_free(m), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

static inline struct umn_mirror_stats mirror_stats(struct umn_mirror *m)
{
	struct umn_mirror_stats st;

	assert_int_equal(umn_mirror_stats(m, &st), 0);
	return st;
}

#endif /* UMN_TESTS_MIRROR_HELPERS_H */
