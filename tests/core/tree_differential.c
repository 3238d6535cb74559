/* SPDX-License-Identifier: MIT */
/*
 * The interval tree against a plain reference model.
 *
 * The model is an array of nodes with a "present" flag; its overlap answer is
 * every present node with start <= last_q and last >= first_q.  Hundreds of
 * thousands of random inserts, erases, updates (erase + new bounds + insert)
 * and overlap queries must give identical answers, the tree must report
 * nodes in nondecreasing start order, and umn__itree_check() must return the
 * exact node count.  Ranges mix many equal starts, single addresses, huge
 * spans, and bounds next to 0 and UINTPTR_MAX.
 *
 * Seeded: UMN_SEED=<n> replays a run; the seed is printed on failure.
 */
#include "core/helpers.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/itree.h"

#define POOL     2000
#define CHECK_EVERY 997

/* ThreadSanitizer adds nothing to this single-threaded test but slows it
 * threefold: run fewer operations there (each run covers every phase). */
#if defined(__SANITIZE_THREAD__)
#define OPS 100000
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define OPS 100000
#endif
#endif
#ifndef OPS
#define OPS 300000
#endif

static uint64_t seed;

static uint64_t rng_state;

/* splitmix64: small, good enough, and the same on every platform. */
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t n)
{
	return rnd() % n;
}

static void seed_init(void)
{
	const char *s = getenv("UMN_SEED");

	seed = s ? strtoull(s, NULL, 0) : 0x756d6e2d74726565ull;
	rng_state = seed;
}

#define FAIL(...)                                                          \
	do {                                                               \
		print_error("seed %#" PRIx64 " (set UMN_SEED to replay)\n", seed); \
		fail_msg(__VA_ARGS__);                                     \
	} while (0)

/* A range [*first, *last] from a mix of shapes; never wraps. */
static void random_range(uintptr_t *first, uintptr_t *last)
{
	uintptr_t s, len;

	switch (rnd_below(10)) {
	case 0: /* near 0 */
		s = (uintptr_t)rnd_below(16);
		break;
	case 1: /* near the top */
		s = UINTPTR_MAX - (uintptr_t)rnd_below(16);
		break;
	case 2: /* anywhere */
		s = (uintptr_t)rnd();
		break;
	case 3: /* a few exact starts shared by many nodes */
		s = (uintptr_t)rnd_below(4) << 20;
		break;
	default: /* a small, crowded window: lots of equal starts */
		s = 0x100000 + ((uintptr_t)rnd_below(256) << 12);
		break;
	}
	switch (rnd_below(8)) {
	case 0: /* a single address */
		len = 0;
		break;
	case 1: /* huge */
		len = (uintptr_t)rnd() >> rnd_below(8);
		break;
	case 2: /* to the very top */
		len = UINTPTR_MAX;
		break;
	case 3:
		len = (uintptr_t)rnd_below(16);
		break;
	default:
		len = (uintptr_t)rnd_below(1u << 16);
		break;
	}
	*first = s;
	*last = len > UINTPTR_MAX - s ? UINTPTR_MAX : s + len;
}

struct model {
	struct umn_interval *pool;
	uintptr_t start[POOL], last[POOL];
	bool present[POOL];
	long count;
	struct umn_interval *root;
	/* Per-query marks: seen[i] == query number when the tree visited i. */
	unsigned long seen[POOL];
	unsigned long query;
};

struct visit {
	struct model *m;
	long visited;
	uintptr_t prev_start;
	long stop_after; /* -1: never */
	const char *bad;
	long bad_index;
};

static bool visit_record(struct umn_interval *node, void *arg)
{
	struct visit *v = arg;
	struct model *m = v->m;
	ptrdiff_t i = node - m->pool;

	if (v->bad)
		return false;
	if (i < 0 || i >= POOL || node != &m->pool[i]) {
		v->bad = "visited a node outside the pool";
		v->bad_index = (long)i;
		return false;
	}
	if (!m->present[i]) {
		v->bad = "visited a node that is not in the tree";
	} else if (m->seen[i] == m->query) {
		v->bad = "visited a node twice";
	} else if (v->visited > 0 && umn__itree_start(node) < v->prev_start) {
		v->bad = "visited out of start order";
	} else if (umn__itree_start(node) != m->start[i] ||
		   umn__itree_last(node) != m->last[i]) {
		v->bad = "a node's bounds changed";
	}
	if (v->bad) {
		v->bad_index = (long)i;
		return false;
	}
	m->seen[i] = m->query;
	v->prev_start = umn__itree_start(node);
	v->visited++;
	return v->stop_after < 0 || v->visited < v->stop_after;
}

static void model_insert(struct model *m, long i, uintptr_t first,
			 uintptr_t last)
{
	umn__itree_set_bounds(&m->pool[i], first, last);
	umn__itree_insert(&m->root, &m->pool[i]);
	m->start[i] = first;
	m->last[i] = last;
	m->present[i] = true;
	m->count++;
}

static void model_erase(struct model *m, long i)
{
	umn__itree_erase(&m->root, &m->pool[i]);
	m->present[i] = false;
	m->count--;
}

static void model_query(struct model *m, uintptr_t first, uintptr_t last,
			unsigned long op)
{
	struct visit v = { .m = m, .stop_after = -1 };
	long expect = 0;

	m->query++;
	if (!umn__itree_overlaps(m->root, first, last, visit_record, &v))
		FAIL("op %lu: overlaps() reported a stop nobody asked for%s%s\n",
		     op, v.bad ? ": " : "", v.bad ? v.bad : "");
	if (v.bad)
		FAIL("op %lu: query [%#" PRIxPTR ", %#" PRIxPTR "]: %s (node %ld)\n",
		     op, first, last, v.bad, v.bad_index);
	for (long i = 0; i < POOL; i++) {
		if (!m->present[i] || m->start[i] > last || m->last[i] < first)
			continue;
		expect++;
		if (m->seen[i] != m->query)
			FAIL("op %lu: query [%#" PRIxPTR ", %#" PRIxPTR
			     "] missed node %ld [%#" PRIxPTR ", %#" PRIxPTR "]\n",
			     op, first, last, i, m->start[i], m->last[i]);
	}
	if (expect != v.visited)
		FAIL("op %lu: query [%#" PRIxPTR ", %#" PRIxPTR
		     "] visited %ld nodes, the model has %ld\n",
		     op, first, last, v.visited, expect);
}

static void model_check(struct model *m, unsigned long op)
{
	long n = umn__itree_check(m->root);

	if (n != m->count)
		FAIL("op %lu: umn__itree_check() = %ld, the model has %ld nodes\n",
		     op, n, m->count);
}

static struct model *model_new(void)
{
	struct model *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->pool = calloc(POOL, sizeof(*m->pool));
	assert_non_null(m->pool);
	return m;
}

static void model_free(struct model *m)
{
	for (long i = 0; i < POOL; i++)
		if (m->present[i])
			model_erase(m, i);
	model_check(m, 0);
	assert_null(m->root);
	free(m->pool);
	free(m);
}

/*
 * The main differential run.  The insert/erase bias drifts in phases so the
 * tree grows nearly full, drains nearly empty, and lingers in between.
 */
static void test_tree_differential(void **state)
{
	struct model *m = model_new();
	unsigned long queries = 0, updates = 0;
	long max_count = 0;

	seed_init();
	for (unsigned long op = 1; op <= OPS; op++) {
		/* Percent chance that an absent node is inserted rather than
		 * left alone: cycles 90 → 10 → 50 every 30000 ops. */
		static const unsigned fill[] = { 90, 10, 50 };
		unsigned bias = fill[(op / 30000) % 3];
		uintptr_t first, last;
		uint64_t what = rnd_below(100);
		long i = (long)rnd_below(POOL);

		if (what < 30) {
			random_range(&first, &last);
			if (rnd_below(16) == 0) {
				first = 0;
				last = UINTPTR_MAX;
			}
			model_query(m, first, last, op);
			queries++;
		} else if (!m->present[i]) {
			if (rnd_below(100) < bias) {
				random_range(&first, &last);
				model_insert(m, i, first, last);
			}
		} else if (rnd_below(100) >= bias) {
			model_erase(m, i);
		} else if (what < 65) {
			/* update: sometimes keep the start, change only last */
			random_range(&first, &last);
			if (rnd_below(4) == 0 && m->start[i] <= last)
				first = m->start[i];
			model_erase(m, i);
			umn__itree_set_bounds(&m->pool[i], first, last);
			umn__itree_insert(&m->root, &m->pool[i]);
			m->start[i] = first;
			m->last[i] = last;
			m->present[i] = true;
			m->count++;
			updates++;
		}
		/* else: a present node left alone this time */
		if (m->count > max_count)
			max_count = m->count;
		if (op % CHECK_EVERY == 0)
			model_check(m, op);
	}
	model_check(m, OPS);
	/* Make sure the run exercised what it claims to. */
	assert_true(queries > OPS / 5);
	assert_true(updates > OPS / 50);
	assert_true(max_count > POOL * 3 / 4);
	model_free(m);
}

/* Sorted and reverse-sorted inserts, then erases from both ends and the
 * middle: the shapes that unbalance naive trees. */
static void test_tree_monotone(void **state)
{
	struct model *m = model_new();
	unsigned long op = 0;

	seed_init();
	for (long i = 0; i < POOL; i++) {
		uintptr_t s = i < POOL / 2 ? (uintptr_t)i * 16
					   : UINTPTR_MAX - (uintptr_t)(i - POOL / 2) * 16;
		model_insert(m, i, s, s + (i < POOL / 2 ? 15 : 0));
		if (i % 50 == 0)
			model_check(m, ++op);
	}
	model_check(m, ++op);
	model_query(m, 0, UINTPTR_MAX, ++op);
	model_query(m, 0, 0, ++op);
	model_query(m, UINTPTR_MAX, UINTPTR_MAX, ++op);
	model_query(m, 16 * 100 + 15, 16 * 101, ++op);
	/* Every other node in ascending order, then the rest descending. */
	for (long k = 0; k < POOL; k++) {
		long i = k < POOL / 2 ? 2 * k : POOL - 1 - 2 * (k - POOL / 2);

		model_erase(m, i);
		if (k % 25 == 0) {
			model_check(m, ++op);
			model_query(m, (uintptr_t)rnd(), UINTPTR_MAX, ++op);
		}
	}
	model_free(m);
}

/* All nodes with one start, differing only by address and last. */
static void test_tree_equal_starts(void **state)
{
	struct model *m = model_new();
	unsigned long op = 0;

	seed_init();
	for (int round = 0; round < 6; round++) {
		for (long i = 0; i < POOL; i++) {
			if (m->present[i] && rnd_below(2))
				model_erase(m, i);
			else if (!m->present[i] && rnd_below(3))
				model_insert(m, i, 0x4000,
					     0x4000 + (uintptr_t)rnd_below(64));
		}
		model_check(m, ++op);
		for (int q = 0; q < 50; q++) {
			uintptr_t f = 0x4000 + (uintptr_t)rnd_below(80);

			model_query(m, f, f + (uintptr_t)rnd_below(4), ++op);
		}
		model_query(m, 0, 0x3fff, ++op);
		model_query(m, 0, 0x4000, ++op);
	}
	model_free(m);
}

/* A visit function that returns false stops the walk at once, and
 * overlaps() reports it. */
static void test_tree_early_stop(void **state)
{
	struct model *m = model_new();

	seed_init();
	for (long i = 0; i < 200; i++) {
		uintptr_t first, last;

		random_range(&first, &last);
		model_insert(m, i, first, last);
	}
	/* 50 that overlap everything: the whole space */
	for (long i = 200; i < 250; i++)
		model_insert(m, i, 0, UINTPTR_MAX);
	model_check(m, 0);

	for (int q = 0; q < 2000; q++) {
		uintptr_t first, last;
		struct visit all = { .m = m, .stop_after = -1 };
		struct visit some = { .m = m };

		random_range(&first, &last);
		m->query++;
		assert_true(umn__itree_overlaps(m->root, first, last,
						visit_record, &all));
		assert_null(all.bad);
		assert_true(all.visited >= 50);

		some.stop_after = 1 + (long)rnd_below((uint64_t)all.visited);
		m->query++;
		if (umn__itree_overlaps(m->root, first, last, visit_record, &some))
			FAIL("query %d: visit stopped after %ld of %ld, but "
			     "overlaps() returned true\n",
			     q, some.stop_after, all.visited);
		assert_null(some.bad);
		/* visit_record returns false on the stop_after-th call:
		 * exactly that many calls, none after. */
		if (some.visited != some.stop_after)
			FAIL("query %d: asked to stop after %ld visits, got %ld\n",
			     q, some.stop_after, some.visited);
	}
	/* A query nothing overlaps visits nothing and is not a stop. */
	{
		struct visit none = { .m = m, .stop_after = 1 };

		for (long i = 200; i < 250; i++)
			model_erase(m, i);
		for (long i = 0; i < 200; i++)
			if (m->present[i] && m->start[i] <= 0x10)
				model_erase(m, i);
		m->query++;
		/* every remaining node starts above 0x10 */
		assert_true(umn__itree_overlaps(m->root, 0, 0x10,
						visit_record, &none));
		assert_int_equal(none.visited, 0);
	}
	/* The empty tree. */
	{
		struct visit none = { .m = m, .stop_after = 1 };

		assert_int_equal(umn__itree_check(NULL), 0);
		assert_true(umn__itree_overlaps(NULL, 0, UINTPTR_MAX,
						visit_record, &none));
		assert_int_equal(none.visited, 0);
	}
	model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree_differential),
		cmocka_unit_test(test_tree_monotone),
		cmocka_unit_test(test_tree_equal_starts),
		cmocka_unit_test(test_tree_early_stop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
