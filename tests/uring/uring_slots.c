// SPDX-License-Identifier: MIT
/*
 * The io_uring backend's buffer table: slots are handed out once, emptied
 * by dereg, and reused only after it; READ_FIXED through a slot lands in
 * the pages registered; every bad input gets its error.  The cache here
 * watches a space the test drives (umn_mm_new()), so no process monitor is
 * involved and this runs under every sanitizer.
 */
#ifndef UMN_HAVE_URING
#define UMN_HAVE_URING 0
#endif

#if UMN_HAVE_URING

#include "uring/helpers.h"

#define SLOTS 4
#define FILE_LEN (64 * PG)

struct fx {
	struct io_uring ring;
	struct umn_rcache_uring *ur;
	int fd;
	struct umn_mm *mm;
	struct umn_rcache *rc;
	char *mem;                      /* 16 pages */
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(io_uring_queue_init(8, &f->ring, 0), 0);
	assert_int_equal(umn_rcache_uring_new(&f->ring, SLOTS, &f->ur), 0);
	f->fd = pattern_file(FILE_LEN);
	f->mem = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->mem != MAP_FAILED);
	*state = f;
	return 0;
}

/* A cache on a space of the test's own, using the fixture's backend. */
static void fx_cache(struct fx *f)
{
	struct umn_rcache_config cfg = { 0 };

	f->mm = umn_mm_new();
	assert_non_null(f->mm);
	cfg.mm = f->mm;
	assert_int_equal(umn_rcache_uring_config(f->ur, &cfg), 0);
	assert_int_equal(umn_rcache_new(&cfg, &f->rc), 0);
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	if (f->rc)
		assert_int_equal(umn_rcache_free(f->rc), 0);
	if (f->mm)
		assert_int_equal(umn_mm_free(f->mm), 0);
	assert_int_equal(umn_rcache_uring_free(f->ur), 0);
	io_uring_queue_exit(&f->ring);
	close(f->fd);
	munmap(f->mem, 16 * PG);
	free(f);
	return 0;
}

static void bad_input(void **state)
{
	struct fx *f = *state;
	struct umn_rcache_uring *ur = NULL;
	struct umn_rcache_config cfg = { 0 };
	unsigned slot;

	assert_int_equal(umn_rcache_uring_new(NULL, 4, &ur), -EINVAL);
	assert_int_equal(umn_rcache_uring_new(&f->ring, 4, NULL), -EINVAL);
	assert_int_equal(umn_rcache_uring_new(&f->ring, 0, &ur), -EINVAL);
	assert_int_equal(umn_rcache_uring_new(&f->ring,
					      UMN_RCACHE_URING_MAX_SLOTS + 1,
					      &ur), -EINVAL);
	assert_null(ur);
	assert_int_equal(umn_rcache_uring_free(NULL), -EINVAL);
	assert_int_equal(umn_rcache_uring_config(NULL, &cfg), -EINVAL);
	assert_int_equal(umn_rcache_uring_config(f->ur, NULL), -EINVAL);
	assert_int_equal(umn_rcache_uring_slot(NULL), -EINVAL);

	assert_int_equal(umn_rcache_uring_reg(NULL, f->mem, PG, &slot), -EINVAL);
	assert_int_equal(umn_rcache_uring_reg(f->ur, NULL, PG, &slot), -EINVAL);
	assert_int_equal(umn_rcache_uring_reg(f->ur, f->mem, 0, &slot), -EINVAL);
	assert_int_equal(umn_rcache_uring_reg(f->ur, f->mem, PG, NULL), -EINVAL);
	assert_int_equal(umn_rcache_uring_reg(f->ur, (void *)(UINTPTR_MAX - PG + 1),
					      2 * PG, &slot), -EOVERFLOW);
	assert_int_equal(umn_rcache_uring_dereg(NULL, 0), -EINVAL);
	assert_int_equal(umn_rcache_uring_dereg(f->ur, SLOTS), -EINVAL);
	assert_int_equal(umn_rcache_uring_dereg(f->ur, 0), -ENOENT);

	/* A region of a cache with no uring data in it: not a slot. */
	struct umn_mm *mm = umn_mm_new();
	struct umn_rcache_config plain = { .mm = mm,
					   .ops = umn_rcache_mlock_ops() };
	struct umn_rcache *rc;
	struct umn_region *r;

	assert_int_equal(umn_rcache_new(&plain, &rc), 0);
	assert_int_equal(umn_rcache_get(rc, f->mem, PG, &r), 0);
	assert_int_equal(umn_rcache_uring_slot(r), -EINVAL);
	assert_int_equal(umn_rcache_put(rc, r), 0);
	assert_int_equal(umn_rcache_free(rc), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* The ring has a table already: the kernel refuses a second one. */
static void second_table_is_busy(void **state)
{
	struct fx *f = *state;
	struct umn_rcache_uring *ur = NULL;

	assert_int_equal(umn_rcache_uring_new(&f->ring, 4, &ur), -EBUSY);
	assert_null(ur);
}

static void slots_fill_then_enospc(void **state)
{
	struct fx *f = *state;
	unsigned slot[SLOTS], extra;

	for (unsigned i = 0; i < SLOTS; i++) {
		assert_int_equal(umn_rcache_uring_reg(f->ur, f->mem + i * PG, PG,
						      &slot[i]), 0);
		assert_int_equal(slot[i], i);
	}
	assert_int_equal(umn_rcache_uring_reg(f->ur, f->mem, PG, &extra),
			 -ENOSPC);
	assert_int_equal(umn_rcache_uring_free(f->ur), -EBUSY);
	assert_int_equal(umn_rcache_uring_dereg(f->ur, 2), 0);
	assert_int_equal(umn_rcache_uring_dereg(f->ur, 2), -ENOENT);
	assert_int_equal(umn_rcache_uring_reg(f->ur, f->mem, PG, &extra), 0);
	assert_int_equal(extra, 2);
	for (unsigned i = 0; i < SLOTS; i++)
		assert_int_equal(umn_rcache_uring_dereg(f->ur, i), 0);
}

/* Pages that are not mapped cannot be pinned; the slot stays free. */
static void unmapped_pages_fault(void **state)
{
	struct fx *f = *state;
	char *p = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned slot;

	assert_true(p != MAP_FAILED);
	assert_int_equal(munmap(p, 2 * PG), 0);
	assert_int_equal(umn_rcache_uring_reg(f->ur, p, 2 * PG, &slot), -EFAULT);
	assert_int_equal(umn_rcache_uring_reg(f->ur, f->mem, PG, &slot), 0);
	assert_int_equal(slot, 0);
	assert_int_equal(umn_rcache_uring_dereg(f->ur, slot), 0);
}

/* A filled slot takes READ_FIXED into its pages; an emptied one refuses. */
static void read_through_slot(void **state)
{
	struct fx *f = *state;
	char *buf = f->mem + 3 * PG;
	unsigned slot;

	assert_int_equal(umn_rcache_uring_reg(f->ur, buf, 4 * PG, &slot), 0);
	memset(buf, 0, 4 * PG);
	assert_int_equal(read_fixed(&f->ring, f->fd, buf + 100, 3 * PG, 5,
				    slot), (int)(3 * PG));
	assert_true(holds_pattern(buf + 100, 3 * PG, 5));
	assert_int_equal(umn_rcache_uring_dereg(f->ur, slot), 0);
	assert_int_equal(read_fixed(&f->ring, f->fd, buf, PG, 0, slot), -EFAULT);
}

static void config_fills_in_backend(void **state)
{
	struct fx *f = *state;
	struct umn_rcache_config cfg = { .max_bytes = 1 << 20 };

	assert_int_equal(umn_rcache_uring_config(f->ur, &cfg), 0);
	assert_non_null(cfg.ops);
	assert_ptr_equal(cfg.ctx, f->ur);
	assert_true(cfg.region_data_size > 0);
	assert_int_equal(cfg.max_regions, SLOTS / 2);
	assert_int_equal(cfg.max_bytes, 1 << 20);
	cfg.max_regions = 3;
	assert_int_equal(umn_rcache_uring_config(f->ur, &cfg), 0);
	assert_int_equal(cfg.max_regions, 3);
}

/*
 * The kernel refuses a fixed buffer over 1 GiB (-EFAULT), so the config
 * keeps merged regions within it: two adjacent 600 MiB gets must not
 * become one 1.2 GiB registration.  A smaller limit is kept.
 */
static void config_caps_region_length(void **state)
{
	struct fx *f = *state;
	struct umn_rcache_config cfg = { 0 };

	assert_int_equal(umn_rcache_uring_config(f->ur, &cfg), 0);
	assert_int_equal(cfg.max_region_bytes, (size_t)1 << 30);
	cfg.max_region_bytes = (size_t)2 << 30;
	assert_int_equal(umn_rcache_uring_config(f->ur, &cfg), 0);
	assert_int_equal(cfg.max_region_bytes, (size_t)1 << 30);
	cfg.max_region_bytes = 1 << 20;
	assert_int_equal(umn_rcache_uring_config(f->ur, &cfg), 0);
	assert_int_equal(cfg.max_region_bytes, 1 << 20);
}

/* Through the cache: the region's slot takes READ_FIXED, and the cache
 * empties it once the region is gone. */
static void cache_region_reads(void **state)
{
	struct fx *f = *state;
	struct umn_region *r;
	char *buf = f->mem + PG;
	unsigned slot;
	int s;

	fx_cache(f);
	assert_int_equal(umn_rcache_get(f->rc, buf + 10, 2 * PG, &r), 0);
	s = umn_rcache_uring_slot(r);
	assert_true(s >= 0 && s < SLOTS);
	assert_true(umn_region_start(r) <= (uintptr_t)buf &&
		    umn_region_end(r) >= (uintptr_t)buf + 3 * PG);
	memset(buf, 0, 3 * PG);
	assert_int_equal(read_fixed(&f->ring, f->fd, buf + 10, 2 * PG, PG, s),
			 (int)(2 * PG));
	assert_true(holds_pattern(buf + 10, 2 * PG, PG));
	assert_int_equal(umn_rcache_put(f->rc, r), 0);
	assert_int_equal(umn_rcache_flush(f->rc), 0);
	assert_int_equal(read_fixed(&f->ring, f->fd, buf, PG, 0, (unsigned)s),
			 -EFAULT);
	/* Its slot is free again: the lowest, taken first. */
	assert_int_equal(umn_rcache_uring_reg(f->ur, buf, PG, &slot), 0);
	assert_int_equal(slot, (unsigned)s);
	assert_int_equal(umn_rcache_uring_dereg(f->ur, slot), 0);
}

/*
 * A region invalidated while held keeps its slot, and its pages, until its
 * put: the slot is not handed to the region that replaces it, nor to
 * anyone else, before the region's dereg.
 */
static void held_invalid_region_keeps_slot(void **state)
{
	struct fx *f = *state;
	char *buf = f->mem;
	struct umn_region *a, *b;
	unsigned u1, u2, u3;
	int sa, sb;

	fx_cache(f);
	assert_int_equal(umn_rcache_get(f->rc, buf, PG, &a), 0);
	sa = umn_rcache_uring_slot(a);
	assert_int_equal(umn_invalidate(f->mm, (uintptr_t)buf,
					(uintptr_t)buf + PG, UMN_EVENT_UNMAP), 0);
	assert_false(umn_region_valid(a));
	assert_int_equal(umn_rcache_get(f->rc, buf, PG, &b), 0);
	assert_ptr_not_equal(a, b);
	sb = umn_rcache_uring_slot(b);
	assert_int_not_equal(sa, sb);

	/* a, still held, still reads into its pages. */
	memset(buf, 0, PG);
	assert_int_equal(read_fixed(&f->ring, f->fd, buf, PG, 0, (unsigned)sa),
			 (int)PG);
	assert_true(holds_pattern(buf, PG, 0));

	assert_int_equal(umn_rcache_uring_reg(f->ur, f->mem + 8 * PG, PG, &u1), 0);
	assert_int_equal(umn_rcache_uring_reg(f->ur, f->mem + 9 * PG, PG, &u2), 0);
	assert_int_equal(umn_rcache_uring_reg(f->ur, f->mem + 10 * PG, PG, &u3),
			 -ENOSPC);
	assert_int_equal(umn_rcache_put(f->rc, a), 0);
	assert_int_equal(umn_rcache_flush(f->rc), 0);   /* runs a's dereg */
	assert_int_equal(umn_rcache_uring_reg(f->ur, f->mem + 10 * PG, PG, &u3), 0);
	assert_int_equal(u3, (unsigned)sa);

	assert_int_equal(umn_rcache_put(f->rc, b), 0);
	assert_int_equal(umn_rcache_uring_dereg(f->ur, u1), 0);
	assert_int_equal(umn_rcache_uring_dereg(f->ur, u2), 0);
	assert_int_equal(umn_rcache_uring_dereg(f->ur, u3), 0);
}

/*
 * Every slot taken: two by regions held while invalid, two by unused
 * cached ones.  A get of new pages gets a slot by evicting the unused
 * ones, instead of -ENOSPC until a flush.
 */
static void full_table_evicts_unused(void **state)
{
	struct fx *f = *state;
	struct umn_rcache_config cfg = { .max_regions = SLOTS };
	struct umn_region *h[2], *r;

	f->mm = umn_mm_new();
	assert_non_null(f->mm);
	cfg.mm = f->mm;
	assert_int_equal(umn_rcache_uring_config(f->ur, &cfg), 0);
	assert_int_equal(umn_rcache_new(&cfg, &f->rc), 0);
	for (int i = 0; i < 2; i++) {
		char *p = f->mem + 2 * i * PG;

		assert_int_equal(umn_rcache_get(f->rc, p, PG, &h[i]), 0);
		assert_int_equal(umn_invalidate(f->mm, (uintptr_t)p,
						(uintptr_t)p + PG,
						UMN_EVENT_CLEAR), 0);
	}
	for (int i = 2; i < 4; i++) {
		assert_int_equal(umn_rcache_get(f->rc, f->mem + 2 * i * PG, PG,
						&r), 0);
		assert_int_equal(umn_rcache_put(f->rc, r), 0);
	}
	assert_int_equal(umn_rcache_get(f->rc, f->mem + 12 * PG, PG, &r), 0);
	memset(f->mem + 12 * PG, 0, PG);
	assert_int_equal(read_fixed(&f->ring, f->fd, f->mem + 12 * PG, PG, 0,
				    (unsigned)umn_rcache_uring_slot(r)),
			 (int)PG);
	assert_true(holds_pattern(f->mem + 12 * PG, PG, 0));
	assert_int_equal(umn_rcache_put(f->rc, r), 0);
	assert_int_equal(umn_rcache_put(f->rc, h[0]), 0);
	assert_int_equal(umn_rcache_put(f->rc, h[1]), 0);
}

/* Adjacent ranges merge into one registration; its slot reaches both. */
static void merged_region_reads_both(void **state)
{
	struct fx *f = *state;
	struct umn_region *a, *b;
	char *buf = f->mem + 4 * PG;
	int s;

	fx_cache(f);
	assert_int_equal(umn_rcache_get(f->rc, buf, 2 * PG, &a), 0);
	assert_int_equal(umn_rcache_get(f->rc, buf + 2 * PG, 2 * PG, &b), 0);
	assert_true(umn_region_start(b) <= (uintptr_t)buf &&
		    umn_region_end(b) >= (uintptr_t)buf + 4 * PG);
	s = umn_rcache_uring_slot(b);
	memset(buf, 0, 4 * PG);
	assert_int_equal(read_fixed(&f->ring, f->fd, buf, 4 * PG, 7, (unsigned)s),
			 (int)(4 * PG));
	assert_true(holds_pattern(buf, 4 * PG, 7));
	assert_int_equal(umn_rcache_put(f->rc, a), 0);
	assert_int_equal(umn_rcache_put(f->rc, b), 0);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(bad_input, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(second_table_is_busy, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(slots_fill_then_enospc, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(unmapped_pages_fault, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(read_through_slot, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(config_fills_in_backend, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(config_caps_region_length,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(cache_region_reads, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(held_invalid_region_keeps_slot,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(merged_region_reads_both, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(full_table_evicts_unused,
						fx_setup, fx_teardown),
	};

	if (uring_usable("uring_slots"))
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* !UMN_HAVE_URING */

#include <stdio.h>

int main(void)
{
	printf("uring_slots: skipped: built without liburing "
	       "(Debian: apt-get install liburing-dev)\n");
	return 77;
}

#endif
