// SPDX-License-Identifier: MIT
/*
 * walk — invalidation walks.
 *
 * range_start first tries a lock-free walk (defer.c has the protocol with
 * tree writers):
 *
 *   slot += 1; writing?  -- yes: slot -= 1, take the locked path
 *   any overlap in the tree?
 *     no:  done; the slot stays counted until range_end, so that the tree
 *          does not change under the range (SPEC §3: operations are
 *          deferred while any walk is active)
 *     yes: become a locked walk (the slot is dropped once `active` counts
 *          us), since ->invalidate() must be called
 *
 * A locked walk (core.h has the states of a space):
 *
 *   range_start                        range_end
 *     lock                               lock
 *     active++; first? seq |= 1          active--; last?
 *     cur_seq = seq                        seq++ (even)
 *     unlock                               settle: apply the deferred list
 *     ->invalidate() of each overlap         if no walk holds the tree
 *       (no lock; the tree is frozen       wake waiters; unlock
 *        while any walk is counted)        ->release() of what was put
 *
 * range_end of a lock-free walk drops its slot and settles if a writer
 * marked it (it deferred something meanwhile, or a synchronize waits).  The tree is read without the lock by both
 * kinds of walk, and changed under the lock only by a thread that claimed
 * it, so every change happens before, or after, a whole walk.
 */
#include <errno.h>

#include "core/core.h"

struct walk {
	struct umn_range *range;
	struct umn__walk_slot *slot; /* counted in it until the first overlap */
	unsigned long cur_seq;
};

/* umn_range.umn__mode, while the range is begun. */
enum {
	MODE_LOCKED,     /* counted in active */
	MODE_CALLING,    /* locked, and range_start is calling ->invalidate() */
	MODE_LOCK_FREE,  /* counted in the thread's slot */
};

/* This thread's slot: threads spread over them by the address of their TLS. */
static struct umn__walk_slot *walk_slot(struct umn_mm *mm)
{
	uintptr_t t = (uintptr_t)umn__thread_self();

	/* Fibonacci hashing: TLS blocks differ in their high bits. */
	return &mm->slots[(t * (uintptr_t)0x9e3779b97f4a7c15u) >>
			  (sizeof(uintptr_t) * 8 - UMN__WALK_SLOTS_ORDER)];
}

/* Count a walk in active, under the lock; returns the period's seq. */
static unsigned long walk_lock_in(struct umn_mm *mm)
{
	unsigned long s;

	umn__mm_lock(mm);
	s = atomic_load_relaxed(&mm->seq);
	if (!mm->active++) {
		/* Pairs with the acquire load of mm->seq in umn_read_begin():
		 * a reader that sees a set_seq of this period sees it odd. */
		atomic_store_release(&mm->seq, ++s);
	}
	umn__mm_unlock(mm);
	return s;
}

static bool walk_visit(struct umn_interval *sub, void *arg)
{
	struct walk *w = arg;

	if (w->slot) {
		/*
		 * The first overlap: ->invalidate() will run, so this becomes a
		 * locked walk.  Counted in active before the slot is dropped,
		 * the tree stays frozen throughout.  A mark on the slot needs
		 * no settle here: this walk's end settles, and wakes.
		 */
		w->cur_seq = walk_lock_in(w->range->mm);
		atomic_fetch_sub(&w->slot->walks, 1);
		w->slot = NULL;
		w->range->umn__mode = MODE_CALLING;
	}
	return sub->umn__ops->invalidate(sub, w->range, w->cur_seq);
}

/* End one locked walk; the last one ends the period. */
static void walk_end(struct umn_mm *mm)
{
	struct umn__release_batch batch;
	struct umn_interval *put;

	umn__mm_lock(mm);
	UMN_BUG_ON(!mm->active);
	if (--mm->active) {
		umn__mm_unlock(mm);
		return;
	}
	/* Pairs with the acquire load of mm->seq in umn_read_begin(). */
	atomic_store_release(&mm->seq, atomic_load_relaxed(&mm->seq) + 1);
	put = umn__settle_locked(mm, &batch);
	umn__mm_wake_locked(mm); /* the period's waiters, if settle did not */
	umn__mm_unlock(mm);
	if (put)
		umn__release_run(mm, put, &batch);
}

/*
 * End a lock-free walk (the protocol is at the top of defer.c).  Once it has
 * left its slot, a synchronize may see the space idle and let it be freed,
 * so nothing may touch @mm after that: an unmarked walk leaves with a CAS (a
 * mark set meanwhile makes it fail, and is seen), a marked one under the
 * lock (marks are set only under it), then settles before unlocking.
 */
static void walk_end_lock_free(struct umn_mm *mm)
{
	_Atomic unsigned long *w = &walk_slot(mm)->walks;
	unsigned long old = atomic_load(w);
	struct umn__release_batch batch;
	struct umn_interval *put;

	while (!(old & UMN__SLOT_SETTLE))
		if (atomic_compare_exchange_weak(w, &old, old - 1)) /* SC */
			return;
	umn__mm_lock(mm);
	atomic_fetch_sub(w, 1);
	put = umn__settle_locked(mm, &batch);
	umn__mm_unlock(mm);
	if (put)
		umn__release_run(mm, put, &batch); /* a batch: still counted */
}


static bool range_valid(const struct umn_range *r)
{
	return r && r->mm && r->start < r->end && r->event >= UMN_EVENT_UNMAP &&
	       r->event <= UMN_EVENT_REMAP && !(r->flags & ~UMN_RANGE_BLOCKABLE);
}

int umn_invalidate_range_start(struct umn_range *range)
{
	struct walk w = { .range = range };
	struct umn_mm *mm;

	if (!range_valid(range))
		return -EINVAL;
	if (umn__thread_has(range))
		return -EBUSY; /* reusing it would loop the thread's list */
	mm = range->mm;
	w.slot = walk_slot(mm);
	atomic_fetch_add(&w.slot->walks, 1); /* SC: the Dekker pair, defer.c */
	if (atomic_load(&mm->writing)) {
		/* A writer holds the tree: be counted under the lock instead,
		 * before leaving the slot, so that synchronize never misses us
		 * (a mark needs no settle, as in walk_visit). */
		w.cur_seq = walk_lock_in(mm);
		atomic_fetch_sub(&w.slot->walks, 1);
		w.slot = NULL;
		range->umn__mode = MODE_CALLING;
	} else {
		range->umn__mode = MODE_LOCK_FREE; /* until the first overlap */
	}
	umn__thread_enter(range);
	/* Frozen from here to range_end: the slot or active counts us. */
	bool done = umn__itree_overlaps(mm->root, range->start,
					range->end - 1, walk_visit, &w);
	if (range->umn__mode == MODE_CALLING)
		range->umn__mode = MODE_LOCKED;
	if (done)
		return 0;
	/* A callback could not block: end this walk here (the kernel's rule). */
	umn__thread_leave(range);
	walk_end(mm);
	return -EAGAIN;
}

void umn_invalidate_range_end(struct umn_range *range)
{
	if (!range)
		return;
	if (!umn__thread_has(range)) {
		if (range->umn__thread && range->umn__thread != umn__thread_self())
			UMN_FATAL_MISUSE("umn_invalidate_range_end() on a thread "
					 "other than the one that began the range");
		return; /* never begun, or already ended */
	}
	if (range->umn__mode == MODE_CALLING)
		UMN_FATAL_MISUSE("umn_invalidate_range_end() from inside the "
				 "range's own ->invalidate()");
	umn__thread_leave(range);
	if (range->umn__mode == MODE_LOCK_FREE)
		walk_end_lock_free(range->mm);
	else
		walk_end(range->mm);
}

int umn_invalidate(struct umn_mm *mm, uintptr_t start, uintptr_t end,
		   enum umn_event event)
{
	struct umn_range range = {
		.mm = mm, .start = start, .end = end, .event = event,
		.flags = UMN_RANGE_BLOCKABLE,
	};
	int err = umn_invalidate_range_start(&range);

	if (!err)
		umn_invalidate_range_end(&range);
	return err;
}
