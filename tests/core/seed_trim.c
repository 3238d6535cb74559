/* SPDX-License-Identifier: MIT */
/*
 * The seed's first scenario: a subscription whose ->invalidate() trims its
 * own range with umn_interval_update() when the head or the tail of it is
 * invalidated.  Inside the callback the subscription still reports the
 * bounds of the walk in progress (before and after calling update); once the
 * walk ends it reports the trimmed range, invalidations of the trimmed-away
 * part no longer reach it and invalidations of the kept part do.
 */
#include "core/helpers.h"

#include <unistd.h>

struct trimmer {
	struct umn_interval sub;
	atomic_int calls;
	int trims;
	int update_ret;
	/* Bounds seen inside the last callback, before and after update(). */
	uintptr_t seen_start, seen_end;
	uintptr_t after_start, after_end;
};

static bool trimmer_invalidate(struct umn_interval *sub,
			       const struct umn_range *range,
			       unsigned long cur_seq)
{
	struct trimmer *t = container_of(sub, struct trimmer, sub);
	uintptr_t s = umn_interval_start(sub), e = umn_interval_end(sub);

	t->calls++;
	t->seen_start = s;
	t->seen_end = e;
	umn_set_seq(sub, cur_seq);
	if (range->start <= s && range->end < e) {
		/* The head goes: keep [range->end, e). */
		t->update_ret = umn_interval_update(sub, range->end,
						    e - range->end);
		t->trims++;
	} else if (range->start > s && range->end >= e) {
		/* The tail goes: keep [s, range->start). */
		t->update_ret = umn_interval_update(sub, s, range->start - s);
		t->trims++;
	}
	t->after_start = umn_interval_start(sub);
	t->after_end = umn_interval_end(sub);
	return true;
}

static const struct umn_interval_ops trimmer_ops = {
	.invalidate = trimmer_invalidate,
};

static void assert_bounds(struct trimmer *t, uintptr_t start, uintptr_t end)
{
	assert_true(umn_interval_start(&t->sub) == start);
	assert_true(umn_interval_end(&t->sub) == end);
}

static void test_trim_head(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct trimmer t = {0};

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&t.sub, mm, 0x10000, 0x10000,
					     &trimmer_ops), 0);
	/* Unmap from below the subscription into its head. */
	assert_int_equal(hits(mm, &t.calls, 0xf000, 0x14000), 1);
	assert_int_equal(t.trims, 1);
	assert_int_equal(t.update_ret, 0);
	assert_true(t.seen_start == 0x10000 && t.seen_end == 0x20000);
	assert_true(t.after_start == 0x10000 && t.after_end == 0x20000);
	assert_bounds(&t, 0x14000, 0x20000);

	/* The trimmed-away head is no longer watched... */
	assert_int_equal(hits(mm, &t.calls, 0x10000, 0x14000), 0);
	assert_int_equal(hits(mm, &t.calls, 0x13fff, 0x14000), 0);
	/* ...the kept part is. */
	assert_int_equal(hits(mm, &t.calls, 0x18000, 0x18800), 1);
	assert_int_equal(hits(mm, &t.calls, 0x1fff0, 0x1fff1), 1);
	assert_int_equal(t.trims, 1);
	assert_true(t.seen_start == 0x14000 && t.seen_end == 0x20000);
	assert_bounds(&t, 0x14000, 0x20000);

	/* A range straddling the new start reaches it (and trims again). */
	assert_int_equal(hits(mm, &t.calls, 0x13000, 0x14001), 1);
	assert_int_equal(t.trims, 2);
	assert_bounds(&t, 0x14001, 0x20000);

	assert_int_equal(umn_interval_remove(&t.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

static void test_trim_tail(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct trimmer t = {0};

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&t.sub, mm, 0x10000, 0x10000,
					     &trimmer_ops), 0);
	assert_int_equal(hits(mm, &t.calls, 0x1c000, 0x30000), 1);
	assert_int_equal(t.trims, 1);
	assert_int_equal(t.update_ret, 0);
	assert_true(t.seen_start == 0x10000 && t.seen_end == 0x20000);
	assert_true(t.after_start == 0x10000 && t.after_end == 0x20000);
	assert_bounds(&t, 0x10000, 0x1c000);

	assert_int_equal(hits(mm, &t.calls, 0x1c000, 0x20000), 0);
	assert_int_equal(hits(mm, &t.calls, 0x1c000, 0x1c001), 0);
	assert_int_equal(hits(mm, &t.calls, 0x10001, 0x10002), 1);
	assert_int_equal(hits(mm, &t.calls, 0x14000, 0x15000), 1);
	assert_int_equal(t.trims, 1);
	assert_bounds(&t, 0x10000, 0x1c000);

	/* The last kept byte is still watched (and trimmed off now). */
	assert_int_equal(hits(mm, &t.calls, 0x1bfff, 0x1c000), 1);
	assert_int_equal(t.trims, 2);
	assert_bounds(&t, 0x10000, 0x1bfff);

	assert_int_equal(umn_interval_remove(&t.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* A hole punched across two neighbours trims the tail of one and the head
 * of the other in the same walk; a third one outside is untouched. */
static void test_trim_two_neighbours(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct trimmer a = {0}, b = {0}, far = {0};

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&a.sub, mm, 0x10000, 0x10000,
					     &trimmer_ops), 0);
	assert_int_equal(umn_interval_insert(&b.sub, mm, 0x20000, 0x10000,
					     &trimmer_ops), 0);
	assert_int_equal(umn_interval_insert(&far.sub, mm, 0x40000, 0x10000,
					     &trimmer_ops), 0);
	assert_int_equal(umn_invalidate(mm, 0x1c000, 0x24000, UMN_EVENT_UNMAP),
			 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_int_equal(far.calls, 0);
	assert_bounds(&a, 0x10000, 0x1c000);
	assert_bounds(&b, 0x24000, 0x30000);
	assert_bounds(&far, 0x40000, 0x50000);

	/* The hole reaches nobody now. */
	assert_int_equal(umn_invalidate(mm, 0x1c000, 0x24000, UMN_EVENT_UNMAP),
			 0);
	assert_int_equal(a.calls + b.calls + far.calls, 2);

	assert_int_equal(umn_interval_remove(&a.sub), 0);
	assert_int_equal(umn_interval_remove(&b.sub), 0);
	assert_int_equal(umn_interval_remove(&far.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* While the trimming walk is still open the old range is what the walks
 * use and what start/end report; range_end applies the update. */
static void test_trim_applies_at_range_end(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct trimmer t = {0};
	struct umn_range r = {
		.start = 0x10000, .end = 0x14000,
		.event = UMN_EVENT_UNMAP, .flags = UMN_RANGE_BLOCKABLE,
	};

	assert_non_null(mm);
	r.mm = mm;
	assert_int_equal(umn_interval_insert(&t.sub, mm, 0x10000, 0x10000,
					     &trimmer_ops), 0);
	assert_int_equal(umn_invalidate_range_start(&r), 0);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.trims, 1);
	assert_int_equal(t.update_ret, 0);
	assert_bounds(&t, 0x10000, 0x20000);
	umn_invalidate_range_end(&r);
	assert_bounds(&t, 0x14000, 0x20000);
	assert_int_equal(hits(mm, &t.calls, 0x10000, 0x14000), 0);
	assert_int_equal(hits(mm, &t.calls, 0x14000, 0x20000), 1);

	assert_int_equal(umn_interval_remove(&t.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

/* A read begun before the trim must retry; one begun after it is not
 * disturbed by invalidations of the part trimmed away. */
static void test_trim_and_sequence(void **state)
{
	struct umn_mm *mm = umn_mm_new();
	struct trimmer t = {0};
	unsigned long seq;

	assert_non_null(mm);
	assert_int_equal(umn_interval_insert(&t.sub, mm, 0x10000, 0x10000,
					     &trimmer_ops), 0);
	seq = umn_read_begin(&t.sub);
	assert_int_equal(hits(mm, &t.calls, 0x1c000, 0x20000), 1);
	assert_true(umn_read_retry(&t.sub, seq));

	seq = umn_read_begin(&t.sub);
	assert_false(umn_read_retry(&t.sub, seq));
	assert_int_equal(hits(mm, &t.calls, 0x1c000, 0x20000), 0);
	assert_false(umn_read_retry(&t.sub, seq));
	assert_false(umn_check_retry(&t.sub, seq));
	assert_int_equal(hits(mm, &t.calls, 0x10000, 0x10001), 1);
	assert_true(umn_read_retry(&t.sub, seq));

	assert_int_equal(umn_interval_remove(&t.sub), 0);
	assert_int_equal(umn_mm_free(mm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trim_head),
		cmocka_unit_test(test_trim_tail),
		cmocka_unit_test(test_trim_two_neighbours),
		cmocka_unit_test(test_trim_applies_at_range_end),
		cmocka_unit_test(test_trim_and_sequence),
	};

	/* Watchdog: a library that hangs fails the binary instead. */
	alarm(60);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
