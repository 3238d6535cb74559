/* SPDX-License-Identifier: MIT */
/*
 * The cache's index against a plain sorted array: random inserts and
 * removals, every lookup, floor and step compared, the invariants checked
 * after each change.  Then readers look up without a lock while a writer
 * churns: every answer must be NULL or one of the values ever stored (a
 * reader must never see anything but a region pointer), under TSan too.
 */
#include <string.h>

#include "core/helpers.h"

#include "rcache/index.h"

#define KEYS 4096

/* Stand-ins for regions: the index never dereferences them. */
static char slots[KEYS];

static struct umn_region *val(size_t k)
{
	return (struct umn_region *)(void *)&slots[k];
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The reference: present[k] for key k * 16. */
static bool present[KEYS];

static long ref_floor(uintptr_t addr)
{
	long k = (long)(addr / 16);

	if (k >= KEYS)
		k = KEYS - 1;
	for (; k >= 0; k--)
		if (present[k])
			return k;
	return -1;
}

static void check_lookups(struct ix *ix, uint64_t *seed)
{
	for (int i = 0; i < 64; i++) {
		uintptr_t addr = rnd(seed) % (KEYS * 16 + 32);
		long k = ref_floor(addr);
		struct ix_pos pos;

		assert_ptr_equal(umn__ix_lookup(ix, addr), k < 0 ? NULL : val(k));
		assert_int_equal(umn__ix_floor(ix, addr, &pos), k >= 0);
		if (k < 0)
			continue;
		assert_ptr_equal(umn__ix_at(ix, &pos), val(k));
		/* One step on, one step back. */
		struct ix_pos p2 = pos;
		long n = k + 1;

		while (n < KEYS && !present[n])
			n++;
		umn__ix_next(ix, &p2);
		assert_ptr_equal(umn__ix_at(ix, &p2), n < KEYS ? val(n) : NULL);
		p2 = pos;
		long b = ref_floor((uintptr_t)k * 16 - 1);

		assert_int_equal(umn__ix_prev(ix, &p2), k > 0 && b >= 0);
		if (k > 0 && b >= 0)
			assert_ptr_equal(umn__ix_at(ix, &p2), val(b));
	}
}

static void test_differential(void **state)
{
	struct ix ix;
	uint64_t seed = 0x243f6a8885a308d3ull;
	long count = 0;

	memset(present, 0, sizeof(present));
	umn__ix_init(&ix);
	for (int step = 0; step < 40000; step++) {
		/* Phases: mostly inserts, then mostly removals, then mixed. */
		int bias = step < 15000 ? 80 : step < 30000 ? 20 : 50;
		size_t k = rnd(&seed) % KEYS;

		if (step % 3000 == 0) /* a run of ascending keys, as mmap gives */
			for (size_t j = k; j < KEYS && j < k + 200; j++)
				if (!present[j]) {
					assert_int_equal(umn__ix_reserve(&ix), 0);
					umn__ix_insert(&ix, j * 16, val(j));
					present[j] = true;
					count++;
				}
		if ((long)(rnd(&seed) % 100) < bias) {
			if (present[k])
				continue;
			assert_int_equal(umn__ix_reserve(&ix), 0);
			umn__ix_insert(&ix, k * 16, val(k));
			present[k] = true;
			count++;
		} else {
			if (!present[k])
				continue;
			umn__ix_remove(&ix, k * 16);
			present[k] = false;
			count--;
		}
		assert_int_equal(umn__ix_check(&ix), count);
		if (step % 16 == 0)
			check_lookups(&ix, &seed);
	}
	umn__ix_destroy(&ix);
}

struct churn {
	struct ix *ix;
	atomic_int stop, bad, found;
};

static void *reader_main(void *arg)
{
	struct churn *c = arg;
	uint64_t seed = (uint64_t)(uintptr_t)arg | 1;

	while (!atomic_load(&c->stop)) {
		struct umn_region *r = umn__ix_lookup(c->ix, rnd(&seed) %
							     (KEYS * 16));

		if (!r)
			continue;
		if ((char *)r < slots || (char *)r >= slots + KEYS)
			atomic_fetch_add(&c->bad, 1);
		else
			atomic_fetch_add(&c->found, 1);
	}
	return NULL;
}

static void test_lock_free_readers(void **state)
{
	struct ix ix;
	struct churn c = { .ix = &ix };
	pthread_t readers[2];
	uint64_t seed = 7;
	double end = now_s() + test_stress_seconds() / 4;

	memset(present, 0, sizeof(present));
	umn__ix_init(&ix);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&readers[i], NULL, reader_main,
						&c), 0);
	while (now_s() < end) {
		for (int i = 0; i < 1000; i++) {
			size_t k = rnd(&seed) % KEYS;

			if (present[k]) {
				umn__ix_remove(&ix, k * 16);
			} else {
				assert_int_equal(umn__ix_reserve(&ix), 0);
				umn__ix_insert(&ix, k * 16, val(k));
			}
			present[k] = !present[k];
		}
	}
	atomic_store(&c.stop, 1);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(readers[i], NULL), 0);
	assert_int_equal(atomic_load(&c.bad), 0);
	assert_true(atomic_load(&c.found) > 0);
	assert_true(umn__ix_check(&ix) >= 0);
	umn__ix_destroy(&ix);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_differential),
		cmocka_unit_test(test_lock_free_readers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
