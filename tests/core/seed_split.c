/* SPDX-License-Identifier: MIT */
/*
 * The seed's second scenario: a subscription whose ->invalidate() splits
 * itself when the middle of its range is invalidated — it inserts a new
 * subscription for the tail and updates its own to the head.  Afterwards
 * invalidations of the head reach only the head, of the tail only the tail,
 * and of the hole nobody; one covering everything reaches each piece once.
 */
#include "core/helpers.h"

#include <stdbool.h>
#include <unistd.h>

#define POOL_SIZE 8

struct pool;

struct piece {
	struct umn_interval sub;
	struct pool *pool;
	int calls;
	/* What the splitting callback saw. */
	int insert_ret, update_ret;
	uintptr_t seen_start, seen_end;      /* own bounds after update() */
	uintptr_t new_start, new_end;        /* the new piece's, after insert() */
};

struct pool {
	struct umn_mm *mm;
	bool armed;                          /* split on a middle invalidation */
	int used;
	struct piece p[POOL_SIZE];
};

static bool piece_invalidate(struct umn_interval *sub,
			     const struct umn_range *range,
			     unsigned long cur_seq);

static const struct umn_interval_ops piece_ops = {
	.invalidate = piece_invalidate,
};

static bool piece_invalidate(struct umn_interval *sub,
			     const struct umn_range *range,
			     unsigned long cur_seq)
{
	struct piece *me = container_of(sub, struct piece, sub);
	struct pool *pool = me->pool;
	uintptr_t s = umn_interval_start(sub), e = umn_interval_end(sub);
	struct piece *tail;

	me->calls++;
	umn_set_seq(sub, cur_seq);
	if (!pool->armed || range->start <= s || range->end >= e ||
	    pool->used == POOL_SIZE)
		return true;
	tail = &pool->p[pool->used++];
	tail->pool = pool;
	me->insert_ret = umn_interval_insert(&tail->sub, pool->mm, range->end,
					     e - range->end, &piece_ops);
	me->update_ret = umn_interval_update(sub, s, range->start - s);
	me->seen_start = umn_interval_start(sub);
	me->seen_end = umn_interval_end(sub);
	me->new_start = umn_interval_start(&tail->sub);
	me->new_end = umn_interval_end(&tail->sub);
	return true;
}

/* A pool with one piece at [start, end). */
static struct pool *pool_new(uintptr_t start, uintptr_t end)
{
	struct pool *pool = calloc(1, sizeof(*pool));

	assert_non_null(pool);
	pool->mm = umn_mm_new();
	assert_non_null(pool->mm);
	pool->armed = true;
	pool->used = 1;
	pool->p[0].pool = pool;
	assert_int_equal(umn_interval_insert(&pool->p[0].sub, pool->mm, start,
					     end - start, &piece_ops), 0);
	return pool;
}

static void pool_free(struct pool *pool)
{
	for (int i = 0; i < pool->used; i++)
		assert_int_equal(umn_interval_remove(&pool->p[i].sub), 0);
	assert_int_equal(umn_mm_free(pool->mm), 0);
	free(pool);
}

/*
 * Invalidate [start, end) and return a bitmask of the pieces it reached,
 * checking that none was reached more than once.
 */
static unsigned reached(struct pool *pool, uintptr_t start, uintptr_t end)
{
	int before[POOL_SIZE];
	unsigned mask = 0;

	for (int i = 0; i < POOL_SIZE; i++)
		before[i] = pool->p[i].calls;
	assert_int_equal(umn_invalidate(pool->mm, start, end, UMN_EVENT_UNMAP),
			 0);
	for (int i = 0; i < POOL_SIZE; i++) {
		int d = pool->p[i].calls - before[i];

		assert_true(d == 0 || d == 1);
		if (d)
			mask |= 1u << i;
	}
	return mask;
}

static void assert_bounds(struct piece *p, uintptr_t start, uintptr_t end)
{
	assert_true(umn_interval_start(&p->sub) == start);
	assert_true(umn_interval_end(&p->sub) == end);
}

static void test_split_middle(void **state)
{
	struct pool *pool = pool_new(0x10000, 0x20000);
	struct piece *a = &pool->p[0], *b = &pool->p[1];

	assert_int_equal(reached(pool, 0x14000, 0x18000), 1u << 0);
	assert_int_equal(pool->used, 2);
	assert_int_equal(a->insert_ret, 0);
	assert_int_equal(a->update_ret, 0);
	/* Inside the callback its own bounds are the walk's. */
	assert_true(a->seen_start == 0x10000 && a->seen_end == 0x20000);
	/* The walk that split it did not reach the new piece. */
	assert_int_equal(b->calls, 0);
	pool->armed = false;

	assert_bounds(a, 0x10000, 0x14000);
	assert_bounds(b, 0x18000, 0x20000);

	assert_int_equal(reached(pool, 0x11000, 0x12000), 1u << 0);  /* head */
	assert_int_equal(reached(pool, 0x14000, 0x18000), 0);        /* hole */
	assert_int_equal(reached(pool, 0x19000, 0x1a000), 1u << 1);  /* tail */
	assert_int_equal(reached(pool, 0x13fff, 0x14000), 1u << 0);
	assert_int_equal(reached(pool, 0x17fff, 0x18000), 0);
	assert_int_equal(reached(pool, 0x18000, 0x18001), 1u << 1);
	assert_int_equal(reached(pool, 0x1ffff, 0x20000), 1u << 1);
	assert_int_equal(reached(pool, 0x20000, 0x21000), 0);
	assert_int_equal(reached(pool, 0x0f000, 0x10000), 0);
	assert_int_equal(reached(pool, 0x10000, 0x20000), 3u);
	assert_int_equal(reached(pool, 0x13000, 0x19000), 3u);

	pool_free(pool);
}

static void test_split_twice(void **state)
{
	struct pool *pool = pool_new(0x10000, 0x20000);

	assert_int_equal(reached(pool, 0x12000, 0x13000), 1u << 0);
	assert_int_equal(pool->used, 2);
	assert_bounds(&pool->p[0], 0x10000, 0x12000);
	assert_bounds(&pool->p[1], 0x13000, 0x20000);

	/* The new piece splits in turn, on a later walk. */
	assert_int_equal(reached(pool, 0x18000, 0x19000), 1u << 1);
	assert_int_equal(pool->used, 3);
	assert_int_equal(pool->p[1].insert_ret, 0);
	assert_int_equal(pool->p[1].update_ret, 0);
	assert_int_equal(pool->p[2].calls, 0);
	pool->armed = false;
	assert_bounds(&pool->p[0], 0x10000, 0x12000);
	assert_bounds(&pool->p[1], 0x13000, 0x18000);
	assert_bounds(&pool->p[2], 0x19000, 0x20000);

	assert_int_equal(reached(pool, 0x11000, 0x11001), 1u << 0);
	assert_int_equal(reached(pool, 0x12000, 0x13000), 0);
	assert_int_equal(reached(pool, 0x15000, 0x15001), 1u << 1);
	assert_int_equal(reached(pool, 0x18000, 0x19000), 0);
	assert_int_equal(reached(pool, 0x1f000, 0x1f001), 1u << 2);
	assert_int_equal(reached(pool, 0x11fff, 0x13001), (1u << 0) | (1u << 1));
	assert_int_equal(reached(pool, 0x17fff, 0x19001), (1u << 1) | (1u << 2));
	assert_int_equal(reached(pool, 0, UINTPTR_MAX), 7u);

	pool_free(pool);
}

/* Held open with range_start, the split is not applied until range_end. */
static void test_split_applies_at_range_end(void **state)
{
	struct pool *pool = pool_new(0x10000, 0x20000);
	struct piece *a = &pool->p[0], *b = &pool->p[1];
	struct umn_range r = {
		.start = 0x14000, .end = 0x18000,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	r.mm = pool->mm;
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	assert_int_equal(a->calls, 1);
	assert_int_equal(pool->used, 2);
	assert_bounds(a, 0x10000, 0x20000);
	umn_invalidate_range_end(&r);
	pool->armed = false;
	assert_bounds(a, 0x10000, 0x14000);
	assert_bounds(b, 0x18000, 0x20000);
	assert_int_equal(reached(pool, 0x1c000, 0x1c001), 1u << 1);
	assert_int_equal(reached(pool, 0x10000, 0x10001), 1u << 0);
	assert_int_equal(reached(pool, 0x15000, 0x16000), 0);

	/* A reader of the new piece starts clean, and sees the next hit. */
	unsigned long seq = umn_read_begin(&b->sub);
	assert_false(umn_read_retry(&b->sub, seq));
	assert_int_equal(reached(pool, 0x18000, 0x18001), 1u << 1);
	assert_true(umn_read_retry(&b->sub, seq));

	pool_free(pool);
}

/*
 * umn_interval_start/end during the split: the piece being split reports
 * the walk's (old) bounds until the walk ends; the new piece, a deferred
 * insert, reports 0 ("shows once applied") until then.
 */
static void test_split_bounds_during_walk(void **state)
{
	struct pool *pool = pool_new(0x10000, 0x20000);
	struct piece *a = &pool->p[0], *b = &pool->p[1];
	struct umn_range r = {
		.start = 0x14000, .end = 0x18000,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	r.mm = pool->mm;
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	uintptr_t held_start = umn_interval_start(&b->sub);
	uintptr_t held_end = umn_interval_end(&b->sub);
	uintptr_t held_a_start = umn_interval_start(&a->sub);
	uintptr_t held_a_end = umn_interval_end(&a->sub);
	umn_invalidate_range_end(&r);
	pool->armed = false;
	assert_int_equal(pool->used, 2);
	assert_bounds(a, 0x10000, 0x14000);
	assert_bounds(b, 0x18000, 0x20000);
	assert_true(a->seen_start == 0x10000 && a->seen_end == 0x20000);
	assert_true(held_a_start == 0x10000 && held_a_end == 0x20000);
	assert_true(a->new_start == 0 && a->new_end == 0);
	assert_true(held_start == 0 && held_end == 0);
	pool_free(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_middle),
		cmocka_unit_test(test_split_twice),
		cmocka_unit_test(test_split_applies_at_range_end),
		cmocka_unit_test(test_split_bounds_during_walk),
	};

	/* Watchdog: a library that hangs fails the binary instead. */
	alarm(60);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
