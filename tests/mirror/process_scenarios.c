// SPDX-License-Identifier: MIT
/*
 * The HMM selftests' scenarios (tools/testing/selftests/mm/hmm-tests.c),
 * through the software device, with the process monitor feeding the space:
 * each memory change below is a plain libc call, and the mirror learns of
 * it only through its regions' ->invalidate().
 */
#include "mirror/helpers.h"

#include <fcntl.h>
#include <stdio.h>

#define PAGES 16

static struct umn_mirror *mirror;

static int setup(void **state)
{
	mirror = umn_mirror_new(process_space(), NULL);
	return mirror ? 0 : -1;
}

static int teardown(void **state)
{
	int err = umn_mirror_free(mirror);

	mirror = NULL;
	return err;
}

static void anon_read(void **state)
{
	char *p = map_guarded(PAGES, 1);
	struct umn_mirror_region r;

	check_device(mirror, p, PAGES * PG, 1);
	assert_int_equal(mirror_stats(mirror).faults, PAGES);
	/* One region: the 2 MiB chunk clipped to the 16-page mapping. */
	assert_int_equal(umn_mirror_regions(mirror, &r, 1), 1);
	assert_true(r.start == at(p, 0) && r.end == at(p, PAGES));
	/* Served from the device copies: no more faults. */
	check_device(mirror, p, PAGES * PG, 1);
	assert_int_equal(mirror_stats(mirror).faults, PAGES);
	unmap_guarded(p, PAGES);
	assert_int_equal(umn_mirror_regions(mirror, NULL, 0), 0);
}

static void anon_write(void **state)
{
	char *p = map_guarded(PAGES, 1);
	uint64_t v, old;

	for (size_t i = 0; i < PAGES; i++) {
		v = pattern(2, at(p, i));
		assert_int_equal(umn_mirror_write(mirror, at(p, i), &v,
						  sizeof(v)), 0);
		assert_true(*(uint64_t *)at(p, i) == v); /* through to host */
	}
	assert_int_equal(umn_mirror_atomic_add(mirror, at(p, 3), 5, &old), 0);
	assert_true(old == pattern(2, at(p, 3)));
	assert_int_equal(umn_mirror_read(mirror, at(p, 3), &v, sizeof(v)), 0);
	assert_true(v == old + 5 && *(uint64_t *)at(p, 3) == v);
	/* A write that crosses a page boundary. */
	char buf[64];

	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(umn_mirror_write(mirror, at(p, 2) - 32, buf,
					  sizeof(buf)), 0);
	assert_memory_equal((char *)at(p, 2) - 32, buf, sizeof(buf));
	unmap_guarded(p, PAGES);
}

static void file_read(void **state)
{
	FILE *f = tmpfile();
	char page[PG];
	char *p;

	assert_non_null(f);
	for (size_t i = 0; i < 4; i++) {
		memset(page, 'a' + (int)i, sizeof(page));
		assert_int_equal(fwrite(page, 1, sizeof(page), f), sizeof(page));
	}
	assert_int_equal(fflush(f), 0);
	p = mmap(NULL, 4 * PG, PROT_READ, MAP_SHARED, fileno(f), 0);
	assert_true(p != MAP_FAILED);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(umn_mirror_read(mirror, at(p, i), page,
						 sizeof(page)), 0);
		assert_true(page[0] == 'a' + (int)i && page[PG - 1] == page[0]);
	}
	/* A read-only mapping: the device may read, not write. */
	assert_int_equal(umn_mirror_write(mirror, at(p, 0), page, 8), -EACCES);
	assert_int_equal(munmap(p, 4 * PG), 0);
	fclose(f);
	assert_int_equal(umn_mirror_regions(mirror, NULL, 0), 0);
}

/* Fault everything in, unmap [first, last) of it, check the rest. */
static void partial_unmap(size_t first, size_t last, long regions)
{
	char *p = map_guarded(PAGES, 3);
	struct umn_mirror_stats st;
	uint64_t v;

	check_device(mirror, p, PAGES * PG, 3);
	assert_int_equal(munmap((void *)at(p, first), (last - first) * PG), 0);
	assert_int_equal(check_regions_live(mirror), regions);
	for (size_t i = 0; i < PAGES; i++) {
		if (i >= first && i < last)
			assert_int_equal(umn_mirror_read(mirror, at(p, i), &v,
							 sizeof(v)), -EFAULT);
		else
			check_device(mirror, (char *)at(p, i), PG, 3);
	}
	st = mirror_stats(mirror);
	assert_int_equal(st.faults, PAGES + (last - first));
	assert_int_equal(st.puts, 0);
	/* Not the hole: another thread (a sanitizer's) may have mapped it. */
	assert_int_equal(munmap(p - PG, (first + 1) * PG), 0);
	assert_int_equal(munmap((void *)at(p, last), (PAGES - last + 1) * PG), 0);
	assert_int_equal(umn_mirror_regions(mirror, NULL, 0), 0);
	st = mirror_stats(mirror);
	assert_int_equal(st.puts, regions);
	assert_int_equal(st.released, regions);
}

static void munmap_head(void **state)
{
	partial_unmap(0, 4, 1);
	assert_true(mirror_stats(mirror).updated >= 1);
}

static void munmap_tail(void **state)
{
	partial_unmap(12, PAGES, 1);
	assert_true(mirror_stats(mirror).updated >= 1);
}

static void munmap_middle(void **state)
{
	partial_unmap(6, 10, 2);
	assert_int_equal(mirror_stats(mirror).splits, 1);
}

static void munmap_all(void **state)
{
	char *p = map_guarded(PAGES, 4);
	struct umn_mirror_stats st;

	check_device(mirror, p, PAGES * PG, 4);
	assert_int_equal(munmap(p, PAGES * PG), 0);
	st = mirror_stats(mirror);
	assert_int_equal(st.puts, 1);
	assert_int_equal(st.released, 1);
	assert_int_equal(st.regions, 0);
	assert_int_equal(st.entries, 0);
	unmap_guarded(p, PAGES);
	assert_int_equal(mirror_stats(mirror).released, 1); /* once */
}

static void mremap_move(void **state)
{
	char *p = map_guarded(PAGES, 5), *q = map_guarded(PAGES, 0);
	uint64_t v;

	check_device(mirror, p, PAGES * PG, 5);
	assert_true(mremap(p, PAGES * PG, PAGES * PG,
			   MREMAP_MAYMOVE | MREMAP_FIXED, q) == q);
	assert_int_equal(umn_mirror_read(mirror, at(p, 0), &v, sizeof(v)),
			 -EFAULT);
	/* The content moved with the pages: generation 5 at its old
	 * addresses, so compare with what the CPU reads. */
	for (size_t i = 0; i < PAGES; i++) {
		assert_int_equal(umn_mirror_read(mirror, at(q, i), &v,
						 sizeof(v)), 0);
		assert_true(v == pattern(5, at(p, i)));
		assert_true(v == *(uint64_t *)at(q, i));
	}
	check_regions_live(mirror);
	unmap_guarded(q, PAGES);
	assert_int_equal(munmap(p - PG, PG), 0); /* the guards, not the hole */
	assert_int_equal(munmap(p + PAGES * PG, PG), 0);
	assert_int_equal(umn_mirror_regions(mirror, NULL, 0), 0);
}

/*
 * mremap(MREMAP_FIXED) of part of a region into a hole of the same region:
 * two walks in one period (the destination's UNMAP splits the region, the
 * source's REMAP must still leave the deferred tail).  user_nested_walks
 * has the same on a space the test drives.
 */
static void mremap_into_own_hole(void **state)
{
	char *p = map_guarded(PAGES, 15);
	uint64_t v;

	check_device(mirror, p, PAGES * PG, 15);
	assert_true(mremap((void *)at(p, 10), 2 * PG, 2 * PG,
			   MREMAP_MAYMOVE | MREMAP_FIXED,
			   (void *)at(p, 4)) == (void *)at(p, 4));
	check_regions_live(mirror);
	for (size_t i = 0; i < PAGES; i++) {
		int err = umn_mirror_read(mirror, at(p, i), &v, sizeof(v));

		if (i >= 10 && i < 12) {
			assert_int_equal(err, -EFAULT);
			continue;
		}
		assert_int_equal(err, 0);
		assert_true(v == pattern(15, at(p, i >= 4 && i < 6 ? i + 6 : i)));
	}
	check_regions_live(mirror);
	/* Not the hole: another thread (a sanitizer's) may have mapped it. */
	assert_int_equal(munmap(p - PG, 11 * PG), 0);
	assert_int_equal(munmap((void *)at(p, 12), (PAGES - 11) * PG), 0);
	assert_int_equal(umn_mirror_regions(mirror, NULL, 0), 0);
}

static void madvise_dontneed(void **state)
{
	char *p = map_guarded(PAGES, 6);
	uint64_t v;

	check_device(mirror, p, PAGES * PG, 6);
	assert_int_equal(madvise(p, PAGES * PG, MADV_DONTNEED), 0);
	for (size_t i = 0; i < PAGES; i++) {
		assert_int_equal(umn_mirror_read(mirror, at(p, i) + 8, &v,
						 sizeof(v)), 0);
		assert_true(v == 0);
	}
	assert_int_equal(check_regions_live(mirror), 1); /* still mapped */
	unmap_guarded(p, PAGES);
}

static void mprotect_read_only(void **state)
{
	char *p = map_guarded(PAGES, 7);
	uint64_t v = 42;

	check_device(mirror, p, PAGES * PG, 7);
	assert_int_equal(umn_mirror_write(mirror, at(p, 1), &v, sizeof(v)), 0);
	assert_int_equal(mprotect(p, PAGES * PG, PROT_READ), 0);
	assert_int_equal(umn_mirror_write(mirror, at(p, 2), &v, sizeof(v)),
			 -EACCES);
	assert_int_equal(umn_mirror_atomic_add(mirror, at(p, 2), 1, NULL),
			 -EACCES);
	assert_true(*(uint64_t *)at(p, 2) == pattern(7, at(p, 2)));
	assert_int_equal(umn_mirror_read(mirror, at(p, 1), &v, sizeof(v)), 0);
	assert_true(v == 42);
	check_device(mirror, (char *)at(p, 2), (PAGES - 2) * PG, 7);
	/* Writable again: the device may write again. */
	assert_int_equal(mprotect(p, PAGES * PG, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(umn_mirror_write(mirror, at(p, 2), &v, sizeof(v)), 0);
	/* PROT_NONE: not even a read. */
	assert_int_equal(mprotect(p, PG, PROT_NONE), 0);
	assert_int_equal(umn_mirror_read(mirror, at(p, 0), &v, sizeof(v)),
			 -EACCES);
	unmap_guarded(p, PAGES);
}

static void map_fixed_over(void **state)
{
	char *p = map_guarded(PAGES, 8);

	check_device(mirror, p, PAGES * PG, 8);
	assert_true(mmap(p, PAGES * PG, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p);
	fill_pattern(p, PAGES * PG, 9);
	check_device(mirror, p, PAGES * PG, 9);
	check_regions_live(mirror);
	unmap_guarded(p, PAGES);
}

static void never_mapped_and_unmapped(void **state)
{
	char *p = map_guarded(PAGES, 10);
	uint64_t v = 0;

	/* The page at 4 KiB is never mapped (mmap_min_addr). */
	assert_int_equal(umn_mirror_read(mirror, 0x1000, &v, sizeof(v)), -EFAULT);
	assert_int_equal(umn_mirror_write(mirror, 0x1000, &v, sizeof(v)),
			 -EFAULT);
	unmap_guarded(p, PAGES);
	assert_int_equal(umn_mirror_read(mirror, (uintptr_t)p, &v, sizeof(v)),
			 -EFAULT);
	assert_int_equal(umn_mirror_atomic_add(mirror, (uintptr_t)p, 1, NULL),
			 -EFAULT);
	assert_int_equal(umn_mirror_regions(mirror, NULL, 0), 0);
	assert_true(mirror_stats(mirror).fault_errors >= 4);
}

/* Chunks of @chunk bytes that [start, end) touches, and lies wholly over. */
static long chunks_touched(uintptr_t start, uintptr_t end, uintptr_t chunk)
{
	return (long)(((end + chunk - 1) & ~(chunk - 1)) - (start & ~(chunk - 1))) /
	       (long)chunk;
}

static long chunks_inside(uintptr_t start, uintptr_t end, uintptr_t chunk)
{
	uintptr_t lo = (start + chunk - 1) & ~(chunk - 1), hi = end & ~(chunk - 1);

	return hi > lo ? (long)((hi - lo) / chunk) : 0;
}

static void small_chunks(void **state)
{
	const uintptr_t chunk = 4 * PG;
	struct umn_mirror_config cfg = { .chunk = chunk };
	struct umn_mirror *m = umn_mirror_new(process_space(), &cfg);
	char *p = map_guarded(PAGES, 11);
	long all = chunks_touched(at(p, 0), at(p, PAGES), chunk);
	long gone = chunks_inside(at(p, 2), at(p, 10), chunk);

	assert_non_null(m);
	check_device(m, p, PAGES * PG, 11);
	assert_int_equal(check_regions_live(m), all);
	assert_int_equal(mirror_stats(m).inserted, all);
	/* Unmapping pages 2..9 puts the chunks wholly inside, trims two. */
	assert_int_equal(munmap((void *)at(p, 2), 8 * PG), 0);
	assert_int_equal(check_regions_live(m), all - gone);
	assert_int_equal(mirror_stats(m).puts, gone);
	check_device(m, p, 2 * PG, 11);
	check_device(m, (char *)at(p, 10), 6 * PG, 11);
	assert_int_equal(munmap(p - PG, 3 * PG), 0);
	assert_int_equal(munmap((void *)at(p, 10), 7 * PG), 0);
	assert_int_equal(umn_mirror_regions(m, NULL, 0), 0);
	assert_int_equal(umn_mirror_free(m), 0);
}

/* hmm-tests anon_read: pages never touched read as zeros, read-only too. */
static void anon_read_zero_pages(void **state)
{
	char *p = map_guarded(PAGES, 12);
	uint64_t v = 1;

	assert_int_equal(madvise(p, 2 * PG, MADV_DONTNEED), 0);
	assert_int_equal(mprotect(p, PAGES * PG, PROT_READ), 0);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(umn_mirror_read(mirror, at(p, i) + 64, &v,
						 sizeof(v)), 0);
		assert_true(v == 0);
	}
	check_device(mirror, (char *)at(p, 2), (PAGES - 2) * PG, 12);
	unmap_guarded(p, PAGES);
}

/* hmm-tests anon_write_prot: refused while read-only, then allowed. */
static void anon_write_prot(void **state)
{
	char *p = mmap(NULL, PAGES * PG, PROT_READ,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t v = 0;

	assert_true(p != MAP_FAILED);
	assert_int_equal(umn_mirror_read(mirror, at(p, 0), &v, sizeof(v)), 0);
	v = 7;
	assert_int_equal(umn_mirror_write(mirror, at(p, 0), &v, sizeof(v)),
			 -EACCES);
	assert_true(*(uint64_t *)p == 0);
	assert_int_equal(mprotect(p, PAGES * PG, PROT_READ | PROT_WRITE), 0);
	for (size_t i = 0; i < PAGES; i++)
		assert_int_equal(umn_mirror_write(mirror, at(p, i), &v,
						  sizeof(v)), 0);
	for (size_t i = 0; i < PAGES; i++)
		assert_true(*(uint64_t *)at(p, i) == 7);
	assert_int_equal(munmap(p, PAGES * PG), 0);
	assert_int_equal(umn_mirror_regions(mirror, NULL, 0), 0);
}

/* hmm-tests anon_write_huge: a 2 MiB-aligned region, huge pages asked. */
static void anon_write_huge(void **state)
{
	const size_t two_m = 2ul << 20;
	char *g = mmap(NULL, 3 * two_m, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p = (char *)(((uintptr_t)g + two_m - 1) & ~(two_m - 1));
	struct umn_mirror_region r;
	uint64_t v;

	assert_true(g != MAP_FAILED);
	madvise(p, two_m, MADV_HUGEPAGE); /* a hint; may be unsupported */
	for (size_t off = 0; off < two_m; off += 64 * PG) {
		v = pattern(13, (uintptr_t)p + off);
		assert_int_equal(umn_mirror_write(mirror, (uintptr_t)p + off,
						  &v, sizeof(v)), 0);
		assert_true(*(uint64_t *)(p + off) == v);
	}
	/* One region: the chunk holding p, which is exactly [p, p + 2M). */
	assert_int_equal(umn_mirror_regions(mirror, &r, 1), 1);
	assert_true(r.start == (uintptr_t)p && r.end == (uintptr_t)p + two_m);
	assert_int_equal(munmap(g, 3 * two_m), 0);
	assert_int_equal(umn_mirror_regions(mirror, NULL, 0), 0);
}

/* hmm-tests anon_write_child: the child mirrors its own copy of the pages. */
static char *child_buf;

static int child_writes(void)
{
	struct umn_mirror *m = umn_mirror_new(umn_mm_process(), NULL);
	uint64_t v = 99;
	int bad = !m;

	for (size_t i = 0; !bad && i < PAGES; i++)
		bad = umn_mirror_write(m, at(child_buf, i), &v, sizeof(v)) ||
		      *(uint64_t *)at(child_buf, i) != 99;
	if (m)
		bad |= umn_mirror_free(m) != 0;
	return bad;
}

static void anon_write_child(void **state)
{
	child_buf = map_guarded(PAGES, 14);
	check_device(mirror, child_buf, PAGES * PG, 14);
	in_child(child_writes, NULL);
	/* Copy-on-write: the parent's pages and device copies are unchanged. */
	for (size_t i = 0; i < PAGES; i++)
		assert_true(*(uint64_t *)at(child_buf, i) ==
			    pattern(14, at(child_buf, i)));
	check_device(mirror, child_buf, PAGES * PG, 14);
	unmap_guarded(child_buf, PAGES);
}

/*
 * The parent's mirror in the child: its regions are not in the child's
 * process space (which starts over empty), so no change of the child's
 * memory reaches them.  Every call refuses with -ESTALE instead of serving
 * the parent's copies; a mirror made in the child works.
 */
static int child_uses_parent_mirror(void)
{
	struct umn_mirror_stats st;
	struct umn_mirror *m;
	uintptr_t a = at(child_buf, 1);
	uint64_t v = 0;
	int bad = 0;

	/* New content at the same addresses, which nothing tells the mirror. */
	if (mmap(child_buf, PAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE |
		 MAP_ANONYMOUS | MAP_FIXED, -1, 0) != child_buf)
		return 1;
	fill_pattern(child_buf, PAGES * PG, 16);
	bad |= (umn_mirror_read(mirror, a, &v, 8) != -ESTALE) << 1;
	bad |= (umn_mirror_write(mirror, a, &v, 8) != -ESTALE) << 2;
	bad |= (umn_mirror_atomic_add(mirror, a, 1, NULL) != -ESTALE) << 3;
	bad |= (umn_mirror_fault(mirror, a, UMN_MIRROR_READ) != -ESTALE) << 4;
	bad |= (umn_mirror_stats(mirror, &st) != -ESTALE) << 5;
	bad |= (umn_mirror_regions(mirror, NULL, 0) != -ESTALE) << 6;
	bad |= (umn_mirror_free(mirror) != -ESTALE) << 7;
	m = umn_mirror_new(umn_mm_process(), NULL);
	if (!m)
		return bad | 1;
	bad |= (umn_mirror_read(m, a, &v, 8) != 0 || v != pattern(16, a)) << 8;
	bad |= (umn_mirror_free(m) != 0) << 9;
	return bad;
}

static void parent_mirror_in_child(void **state)
{
	child_buf = map_guarded(PAGES, 15);
	check_device(mirror, child_buf, PAGES * PG, 15);
	in_child(child_uses_parent_mirror, NULL);
	check_device(mirror, child_buf, PAGES * PG, 15);
	unmap_guarded(child_buf, PAGES);
	assert_int_equal(umn_mirror_regions(mirror, NULL, 0), 0);
}

static void bad_arguments(void **state)
{
	struct umn_mirror_config cfg = { .chunk = 3 * PG };
	uint64_t v;

	assert_null(umn_mirror_new(NULL, NULL));
	assert_int_equal(errno, EINVAL);
	assert_null(umn_mirror_new(process_space(), &cfg));
	assert_int_equal(umn_mirror_free(NULL), -EINVAL);
	assert_int_equal(umn_mirror_fault(mirror, 0x1000, 4), -EINVAL);
	assert_int_equal(umn_mirror_read(mirror, 0x1000, &v, 0), -EINVAL);
	assert_int_equal(umn_mirror_read(mirror, UINTPTR_MAX - 3, &v, 8),
			 -EINVAL);
	assert_int_equal(umn_mirror_atomic_add(mirror, 0x1004, 1, NULL),
			 -EINVAL);
	assert_int_equal(umn_mirror_regions(mirror, NULL, 1), -EINVAL);
	assert_int_equal(umn_mirror_stats(mirror, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(anon_read, setup, teardown),
		cmocka_unit_test_setup_teardown(anon_write, setup, teardown),
		cmocka_unit_test_setup_teardown(file_read, setup, teardown),
		cmocka_unit_test_setup_teardown(munmap_head, setup, teardown),
		cmocka_unit_test_setup_teardown(munmap_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(munmap_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(munmap_all, setup, teardown),
		cmocka_unit_test_setup_teardown(mremap_move, setup, teardown),
		cmocka_unit_test_setup_teardown(mremap_into_own_hole, setup,
						teardown),
		cmocka_unit_test_setup_teardown(madvise_dontneed, setup, teardown),
		cmocka_unit_test_setup_teardown(mprotect_read_only, setup,
						teardown),
		cmocka_unit_test_setup_teardown(map_fixed_over, setup, teardown),
		cmocka_unit_test_setup_teardown(never_mapped_and_unmapped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(small_chunks, setup, teardown),
		cmocka_unit_test_setup_teardown(anon_read_zero_pages, setup,
						teardown),
		cmocka_unit_test_setup_teardown(anon_write_prot, setup, teardown),
		cmocka_unit_test_setup_teardown(anon_write_huge, setup, teardown),
		cmocka_unit_test_setup_teardown(anon_write_child, setup,
						teardown),
		cmocka_unit_test_setup_teardown(parent_mirror_in_child, setup,
						teardown),
		cmocka_unit_test_setup_teardown(bad_arguments, setup, teardown),
	};

	if (UNDER_TSAN) {
		fprintf(stderr, "the process monitor cannot run under "
			"ThreadSanitizer: see user_concurrent\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
