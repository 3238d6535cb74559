// SPDX-License-Identifier: MIT
/*
 * interval — inserting, putting, removing and updating subscriptions.
 *
 * Each operation takes the space's lock, checks the subscription's state
 * (core.h) and then either claims the tree and changes it at once (no walk
 * in progress) or queues the operation on the deferred list, where the last
 * walk to end applies it (defer.c).  A subscription is on the list at most once; a
 * second operation on a pending subscription changes its pending state:
 *
 *   from \ op   update            put           remove
 *   LIVE        UPDATE            PUT           REMOVE (waits)
 *   INSERT      INSERT, new range INSERT_PUT    INSERT_REMOVE (waits)
 *   UPDATE      UPDATE, last wins PUT           REMOVE (waits)
 *   PUT, REMOVE, INSERT_PUT, INSERT_REMOVE: -EALREADY
 *
 * Nothing here allocates or calls a user callback under the lock.
 */
#include <errno.h>

#include "core/core.h"

/* Check a range given as (start, length); on success sets *@last. */
static int range_check(uintptr_t start, size_t length, uintptr_t *last)
{
	if (!length)
		return -EINVAL;
	/* The exclusive end must be representable: start + length <= MAX. */
	if (length > UINTPTR_MAX - start)
		return -EOVERFLOW;
	*last = start + length - 1;
	return 0;
}

/* Zero what marks @sub inserted, so that it may be inserted again. */
static void sub_reset(struct umn_interval *sub)
{
	atomic_store_relaxed(&sub->umn__seq, 0);
	umn__sub_set_state(sub, NULL, SUB_IDLE);
}

/*
 * Lock the space @sub is inserted in.  Returns 0 with the lock held and
 * *@mmp set, -ENOENT if @sub is not inserted, -EALREADY if a put or remove
 * of it is under way (in both error cases nothing is locked).
 */
static int sub_lock(struct umn_interval *sub, struct umn_mm **mmp)
{
	struct umn_mm *mm = umn__sub_mm(sub);

	if (!mm)
		return -ENOENT;
	umn__mm_lock(mm);
	if (umn__sub_mm(sub) != mm) {
		/* Released and inserted elsewhere since we looked: the caller
		 * raced its own put, but must not get another space's lock. */
		umn__mm_unlock(mm);
		return sub_lock(sub, mmp);
	}
	if (umn__sub_inherited_locked(mm, sub)) {
		sub_reset(sub);
		umn__mm_unlock(mm);
		return -ENOENT;
	}
	switch (umn__sub_state(sub)) {
	case SUB_LIVE:
	case SUB_INSERT:
	case SUB_UPDATE:
		*mmp = mm;
		return 0;
	case SUB_IDLE: /* removed by another thread since we looked */
		umn__mm_unlock(mm);
		return -ENOENT;
	default:
		umn__mm_unlock(mm);
		return -EALREADY;
	}
}

int umn_interval_insert(struct umn_interval *sub, struct umn_mm *mm,
			uintptr_t start, size_t length,
			const struct umn_interval_ops *ops)
{
	uintptr_t last;
	int err;

	if (!sub || !mm || !ops || !ops->invalidate)
		return -EINVAL;
	err = range_check(start, length, &last);
	if (err)
		return err;
	umn__mm_lock(mm);
	if (umn__sub_mm(sub) == mm && umn__sub_inherited_locked(mm, sub))
		sub_reset(sub);
	if (atomic_load_relaxed(&sub->umn__mm_state)) {
		umn__mm_unlock(mm);
		return -EBUSY;
	}
	sub->umn__ops = ops;
	umn__itree_set_bounds(sub, start, last);
	if (umn__tree_claim_locked(mm))
		umn__sub_go_live_locked(mm, sub);
	else
		umn__defer_locked(mm, sub, SUB_INSERT);
	umn__tree_unclaim_locked(mm);
	umn__mm_unlock(mm);
	return 0;
}

int umn_interval_remove(struct umn_interval *sub)
{
	struct umn_mm *mm;
	int err;

	if (!sub)
		return -EINVAL;
	mm = umn__sub_mm(sub);
	if (mm && umn__thread_inside(mm))
		return -EDEADLK;
	err = sub_lock(sub, &mm);
	if (err)
		return err;
	enum umn__sub_state st = umn__sub_state(sub);

	if (st == SUB_LIVE && umn__tree_claim_locked(mm)) {
		umn__itree_erase(&mm->root, sub);
		sub_reset(sub);
		umn__tree_unclaim_locked(mm);
	} else {
		/* Pending already, or walks hold the tree: the walk that ends
		 * last erases @sub when it applies the list. */
		umn__defer_locked(mm, sub,
				  st == SUB_INSERT ? SUB_INSERT_REMOVE
						   : SUB_REMOVE);
		umn__tree_unclaim_locked(mm);
		while (umn__sub_state(sub) != SUB_IDLE)
			umn__mm_wait_locked(mm);
	}
	umn__mm_unlock(mm);
	return 0;
}

int umn_interval_put(struct umn_interval *sub)
{
	struct umn__release_batch batch;
	struct umn_mm *mm;
	int err;

	if (!sub)
		return -EINVAL;
	err = sub_lock(sub, &mm);
	if (err)
		return err;
	if (!sub->umn__ops->release) {
		umn__mm_unlock(mm);
		return -EINVAL;
	}
	enum umn__sub_state st = umn__sub_state(sub);

	if (st != SUB_LIVE || !umn__tree_claim_locked(mm)) {
		umn__defer_locked(mm, sub,
				  st == SUB_INSERT ? SUB_INSERT_PUT : SUB_PUT);
		umn__tree_unclaim_locked(mm);
		umn__mm_unlock(mm);
		return 0;
	}
	umn__itree_erase(&mm->root, sub);
	/* Put until release_run() resets it: a second put, or an update or
	 * remove, racing with the release gets -EALREADY. */
	umn__sub_set_state(sub, mm, SUB_PUT);
	umn__tree_unclaim_locked(mm);
	/* No walk can reach @sub any more: release it on this thread, as a
	 * one-element list (link 0), outside the lock. */
	atomic_store_relaxed(&sub->umn__seq, 0);
	umn__release_begin_locked(mm, &batch);
	umn__mm_unlock(mm);
	umn__release_run(mm, sub, &batch);
	return 0;
}

int umn_interval_update(struct umn_interval *sub, uintptr_t start,
			size_t length)
{
	struct umn_mm *mm;
	uintptr_t last;
	int err;

	if (!sub)
		return -EINVAL;
	err = range_check(start, length, &last);
	if (err)
		return err;
	err = sub_lock(sub, &mm);
	if (err)
		return err;
	switch (umn__sub_state(sub)) {
	case SUB_INSERT: /* not in the tree yet: the range is ours */
		umn__itree_set_bounds(sub, start, last);
		break;
	case SUB_LIVE:
		if (umn__tree_claim_locked(mm)) {
			umn__itree_erase(&mm->root, sub);
			umn__itree_set_bounds(sub, start, last);
			umn__sub_go_live_locked(mm, sub);
			umn__tree_unclaim_locked(mm);
			break;
		}
		umn__defer_locked(mm, sub, SUB_UPDATE);
		umn__tree_unclaim_locked(mm);
		/* fall through */
	default: /* SUB_UPDATE: the last update wins */
		sub->umn__pending_start = start;
		sub->umn__pending_last = last;
		break;
	}
	umn__mm_unlock(mm);
	return 0;
}

/* In the tree, so walks use its range (a deferred insert shows once applied). */
static bool sub_watching(const struct umn_interval *sub)
{
	return sub && umn__sub_in_tree(umn__sub_state(sub));
}

uintptr_t umn_interval_start(const struct umn_interval *sub)
{
	return sub_watching(sub) ? umn__itree_start(sub) : 0;
}

uintptr_t umn_interval_end(const struct umn_interval *sub)
{
	return sub_watching(sub) ? umn__itree_last(sub) + 1 : 0;
}
