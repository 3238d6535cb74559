// SPDX-License-Identifier: MIT
/*
 * A device of the caller's behind struct umn_mirror_device_ops, on a space
 * the test drives itself (so it also runs under ThreadSanitizer): faults
 * install what the host page holds with its permissions, invalidations zap
 * the range and trim, split or put the region, as in the seed.
 */
#include "mirror/helpers.h"

#define PAGES 16

struct device {
	uintptr_t base;                 /* the host pages it mirrors */
	uint64_t word[PAGES];           /* first word of each installed page */
	unsigned prot[PAGES];           /* 0: no entry */
	int installs, zaps;
};

static int dev_install(void *dev, uintptr_t addr, const void *data,
		       unsigned prot)
{
	struct device *d = dev;
	size_t i = (addr - d->base) / PG;

	if (addr < d->base || i >= PAGES)
		return -EINVAL;
	memcpy(&d->word[i], data, sizeof(d->word[i]));
	d->prot[i] = prot;
	d->installs++;
	return 0;
}

static void dev_zap(void *dev, uintptr_t start, uintptr_t end)
{
	struct device *d = dev;

	for (size_t i = 0; i < PAGES; i++)
		if (start <= d->base + i * PG && d->base + i * PG < end)
			d->prot[i] = 0;
	d->zaps++;
}

static const struct umn_mirror_device_ops dev_ops = {
	.install = dev_install,
	.zap = dev_zap,
};

static void device_ops(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct device d = { .installs = 0 };
	struct umn_mirror_config cfg = { .ops = &dev_ops, .dev = &d };
	struct umn_mirror *m;
	struct umn_mirror_region r[4];
	char *p = map_guarded(PAGES, 1);
	uint64_t v = 0;

	assert_non_null(mm);
	d.base = (uintptr_t)p;
	m = umn_mirror_new(mm, &cfg);
	assert_non_null(m);
	for (size_t i = 0; i < PAGES; i++)
		assert_int_equal(umn_mirror_fault(m, d.base + i * PG + 8,
						  UMN_MIRROR_READ), 0);
	for (size_t i = 0; i < PAGES; i++) {
		assert_true(d.word[i] == pattern(1, d.base + i * PG));
		assert_int_equal(d.prot[i], UMN_MIRROR_READ | UMN_MIRROR_WRITE);
	}
	assert_int_equal(umn_mirror_read(m, d.base, &v, sizeof(v)), -ENOTSUP);
	assert_int_equal(umn_mirror_write(m, d.base, &v, sizeof(v)), -ENOTSUP);

	/* Protection: zapped, the region stays; the refault reads it again. */
	assert_int_equal(mprotect(p, PG, PROT_READ), 0);
	assert_int_equal(umn_invalidate(mm, d.base, d.base + PG,
					UMN_EVENT_PROTECTION), 0);
	assert_int_equal(d.prot[0], 0);
	assert_int_equal(umn_mirror_fault(m, d.base, UMN_MIRROR_READ |
					  UMN_MIRROR_WRITE), -EACCES);
	assert_int_equal(umn_mirror_fault(m, d.base, UMN_MIRROR_READ), 0);
	assert_int_equal(d.prot[0], UMN_MIRROR_READ);

	/* The middle of the region: split in two, only the middle zapped. */
	assert_int_equal(umn_invalidate(mm, d.base + 6 * PG, d.base + 10 * PG,
					UMN_EVENT_UNMAP), 0);
	assert_int_equal(umn_mirror_regions(m, r, 4), 2);
	assert_int_equal(mirror_stats(m).splits, 1);
	assert_int_equal(d.prot[5], UMN_MIRROR_READ | UMN_MIRROR_WRITE);
	assert_int_equal(d.prot[6], 0);
	assert_int_equal(d.prot[9], 0);
	assert_int_equal(d.prot[10], UMN_MIRROR_READ | UMN_MIRROR_WRITE);

	/* Everything: both put, each released once. */
	assert_int_equal(umn_invalidate(mm, d.base, d.base + PAGES * PG,
					UMN_EVENT_UNMAP), 0);
	assert_int_equal(umn_mirror_regions(m, NULL, 0), 0);
	assert_int_equal(mirror_stats(m).puts, 2);
	assert_int_equal(mirror_stats(m).released, 2);
	assert_int_equal(umn_mirror_free(m), 0);
	assert_int_equal(umn_mm_free(mm), 0);
	unmap_guarded(p, PAGES);
}

/*
 * A split needs a pooled region; the pool holds two after a fault.  The
 * third middle unmap in a row finds none: the region keeps its larger part
 * and zaps the other, which refaults into a region of its own.
 */
static void split_without_spare(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct device d = { .installs = 0 };
	struct umn_mirror_config cfg = { .ops = &dev_ops, .dev = &d };
	struct umn_mirror_region r[8];
	char *p = map_guarded(PAGES, 2);
	struct umn_mirror *m;

	assert_non_null(mm);
	d.base = (uintptr_t)p;
	m = umn_mirror_new(mm, &cfg);
	assert_non_null(m);
	for (size_t i = 0; i < PAGES; i++)
		assert_int_equal(umn_mirror_fault(m, d.base + i * PG,
						  UMN_MIRROR_READ), 0);
	assert_int_equal(umn_invalidate(mm, d.base + 2 * PG, d.base + 3 * PG,
					UMN_EVENT_UNMAP), 0);
	assert_int_equal(umn_invalidate(mm, d.base + 5 * PG, d.base + 6 * PG,
					UMN_EVENT_UNMAP), 0);
	assert_int_equal(mirror_stats(m).splits, 2);
	assert_int_equal(umn_invalidate(mm, d.base + 10 * PG, d.base + 11 * PG,
					UMN_EVENT_UNMAP), 0);
	assert_int_equal(mirror_stats(m).splits, 2);
	assert_int_equal(umn_mirror_regions(m, r, 8), 3);
	for (size_t i = 6; i < 10; i++)
		assert_int_equal(d.prot[i], 0);         /* the smaller part */
	for (size_t i = 11; i < PAGES; i++)
		assert_int_equal(d.prot[i], UMN_MIRROR_READ | UMN_MIRROR_WRITE);
	for (int i = 0; i < 3; i++)
		assert_true(r[i].end <= d.base + 6 * PG ||
			    r[i].start >= d.base + 11 * PG);
	/* The dropped part refaults into a region between its neighbours. */
	assert_int_equal(umn_mirror_fault(m, d.base + 7 * PG, UMN_MIRROR_READ),
			 0);
	assert_int_equal(umn_mirror_regions(m, r, 8), 4);
	assert_int_equal(d.prot[7], UMN_MIRROR_READ | UMN_MIRROR_WRITE);
	assert_int_equal(umn_mirror_free(m), 0);
	assert_int_equal(umn_mm_free(mm), 0);
	unmap_guarded(p, PAGES);
}

/* Inside a callback of the space, umn_mirror_free() refuses to wait. */
static struct umn_mirror *busy_mirror;
static int free_in_callback;

static bool busy_invalidate(struct umn_interval *sub,
			    const struct umn_range *range, unsigned long seq)
{
	umn_set_seq(sub, seq);
	free_in_callback = umn_mirror_free(busy_mirror);
	return true;
}

static const struct umn_interval_ops busy_ops = {
	.invalidate = busy_invalidate,
};

static void free_inside_callback(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct umn_interval sub = { 0 };

	assert_non_null(mm);
	busy_mirror = umn_mirror_new(mm, NULL);
	assert_non_null(busy_mirror);
	assert_int_equal(umn_interval_insert(&sub, mm, 0x10000, PG, &busy_ops),
			 0);
	assert_int_equal(umn_invalidate(mm, 0x10000, 0x11000, UMN_EVENT_UNMAP),
			 0);
	assert_int_equal(free_in_callback, -EDEADLK);
	assert_int_equal(umn_interval_remove(&sub), 0);
	assert_int_equal(umn_mirror_free(busy_mirror), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(device_ops),
		cmocka_unit_test(split_without_spare),
		cmocka_unit_test(free_inside_callback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
