// SPDX-License-Identifier: MIT
/*
 * A device atomic add works on the host word as it is now, not on the
 * device's copy of the page: CPU stores do not invalidate (the copy may be
 * older than the host word), and an add from the copy would write an old
 * value back over the CPU's store.
 */
#include "mirror/helpers.h"

#include <pthread.h>

#define PAGES 4

static void add_after_cpu_store(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct umn_mirror *m;
	char *p = map_guarded(PAGES, 1);
	volatile uint64_t *w = (volatile uint64_t *)(p + PG);
	uint64_t v, old = 0;

	assert_non_null(mm);
	m = umn_mirror_new(mm, NULL);
	assert_non_null(m);
	check_device(m, p, PAGES * PG, 1);      /* copies taken */
	*w = 1000;                              /* no invalidation */
	assert_int_equal(umn_mirror_atomic_add(m, (uintptr_t)w, 5, &old), 0);
	assert_true(old == 1000);
	assert_true(*w == 1005);
	/* The add refreshed the copy of its word: device reads see it. */
	assert_int_equal(umn_mirror_read(m, (uintptr_t)w, &v, sizeof(v)), 0);
	assert_true(v == 1005);
	assert_int_equal(umn_mirror_atomic_add(m, (uintptr_t)w, 1, NULL), 0);
	assert_true(*w == 1006);
	assert_int_equal(mirror_stats(m).faults, PAGES);
	user_teardown(mm, m, p, PAGES);
}

/* Device threads adding to one word lose none of each other's adds. */
#define ADDERS 4
#define ADDS 2000

struct adder {
	struct umn_mirror *m;
	uintptr_t word;
	int err;
};

static void *adder_main(void *arg)
{
	struct adder *a = arg;

	for (int i = 0; i < ADDS && !a->err; i++)
		a->err = umn_mirror_atomic_add(a->m, a->word, 1, NULL);
	return NULL;
}

static void adds_from_threads(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	char *p = map_guarded(PAGES, 2);
	struct adder a[ADDERS];
	pthread_t t[ADDERS];
	struct umn_mirror *m;

	assert_non_null(mm);
	m = umn_mirror_new(mm, NULL);
	assert_non_null(m);
	*(uint64_t *)p = 7;
	for (int i = 0; i < ADDERS; i++) {
		a[i] = (struct adder){ .m = m, .word = (uintptr_t)p };
		assert_int_equal(pthread_create(&t[i], NULL, adder_main, &a[i]),
				 0);
	}
	for (int i = 0; i < ADDERS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(a[i].err, 0);
	}
	assert_true(*(uint64_t *)p == 7 + ADDERS * ADDS);
	user_teardown(mm, m, p, PAGES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(add_after_cpu_store),
		cmocka_unit_test(adds_from_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
