// SPDX-License-Identifier: MIT
/*
 * walk — invalidation walks, the deferred list, releases and synchronize.
 *
 * A walk (core.h has the two states of a space):
 *
 *   range_start                        range_end
 *     lock                               lock
 *     active++; first? seq |= 1          active--; last?
 *     cur_seq = seq                        seq++ (even)
 *     unlock                               apply the deferred list
 *     ->invalidate() of each overlap       wake waiters
 *       (no lock; the tree is frozen       unlock
 *        because active > 0)               ->release() of what was put
 *
 * The tree is read without the lock by walkers and changed under the lock
 * only while active == 0.  Both sides touch active under the lock, so every
 * change happens before, or after, a whole walk: no atomics are needed on
 * the tree's links.
 *
 * Releases run outside the lock, possibly while a later period is already
 * walking; the subscriptions they release are out of the tree, so no walk
 * can reach them.  Each run is a batch with a ticket, on its thread's stack,
 * listed in the space so that synchronize can wait for the ones before it.
 */
#include <errno.h>

#include "core/core.h"

struct walk {
	const struct umn_range *range;
	unsigned long cur_seq;
};

/* Queue @sub, or change its pending operation if it is queued already. */
void umn__defer_locked(struct umn_mm *mm, struct umn_interval *sub,
		       enum umn__sub_state st)
{
	enum umn__sub_state old = umn__sub_state(sub);

	umn__sub_set_state(sub, mm, st);
	if (old != SUB_IDLE && old != SUB_LIVE)
		return; /* on the list already */
	/*
	 * From here on the word is a link, even.  Relaxed: readers that see it
	 * take the lock (read_begin) or report a retry (read_retry).  A racing
	 * umn_set_seq() cannot overwrite it: its CAS expects the odd value it
	 * read, so it fails and then sees a link.
	 */
	atomic_store_relaxed(&sub->umn__seq, 0);
	if (mm->deferred_tail)
		atomic_store_relaxed(&mm->deferred_tail->umn__seq,
				     (unsigned long)(uintptr_t)sub);
	else
		mm->deferred_head = sub;
	mm->deferred_tail = sub;
}

static struct umn_interval *link_next(const struct umn_interval *sub)
{
	return (struct umn_interval *)(uintptr_t)atomic_load_relaxed(
		&sub->umn__seq);
}

/*
 * Apply the deferred list in order; the period @s has just ended.  Returns
 * the subscriptions put, linked through their seq words, for releasing.
 */
static struct umn_interval *defer_apply_locked(struct umn_mm *mm,
					       unsigned long s)
{
	struct umn_interval *sub = mm->deferred_head, *next;
	struct umn_interval *put = NULL, *put_tail = NULL;

	mm->deferred_head = mm->deferred_tail = NULL;
	for (; sub; sub = next) {
		enum umn__sub_state st = umn__sub_state(sub);

		next = link_next(sub);
		if (umn__sub_in_tree(st))
			umn__itree_erase(&mm->root, sub);
		if (st == SUB_UPDATE)
			umn__itree_set_bounds(sub, sub->umn__pending_start,
					      sub->umn__pending_last);
		if (st == SUB_INSERT || st == SUB_UPDATE) {
			umn__itree_insert(&mm->root, sub);
			umn__sub_set_state(sub, mm, SUB_LIVE);
			/* The period's sequence, which every set_seq of it
			 * used.  Pairs with the acquire load in read_begin:
			 * who sees it sees the space's seq already past S. */
			atomic_store_release(&sub->umn__seq, s);
		} else if (st == SUB_PUT || st == SUB_INSERT_PUT) {
			atomic_store_relaxed(&sub->umn__seq, 0);
			if (put_tail)
				atomic_store_relaxed(&put_tail->umn__seq,
						     (unsigned long)(uintptr_t)sub);
			else
				put = sub;
			put_tail = sub;
		} else { /* SUB_REMOVE, SUB_INSERT_REMOVE: the remover waits */
			atomic_store_relaxed(&sub->umn__seq, 0);
			umn__sub_set_state(sub, NULL, SUB_IDLE);
		}
	}
	return put;
}

void umn__release_begin_locked(struct umn_mm *mm,
			       struct umn__release_batch *batch)
{
	batch->ticket = mm->next_ticket++;
	batch->next = mm->batches;
	mm->batches = batch;
}

/*
 * Call ->release() of each subscription on @list, with no lock held, then
 * retire @batch.  The thread counts as inside a callback of @mm meanwhile.
 */
void umn__release_run(struct umn_mm *mm, struct umn_interval *list,
		      struct umn__release_batch *batch)
{
	struct umn_range frame = { .mm = mm };

	umn__thread_enter(&frame);
	while (list) {
		struct umn_interval *sub = list;
		void (*release)(struct umn_interval *) = sub->umn__ops->release;

		/* Read everything first: after release() @sub is not ours. */
		list = link_next(sub);
		atomic_store_relaxed(&sub->umn__seq, 0);
		umn__sub_set_state(sub, NULL, SUB_IDLE);
		release(sub);
	}
	umn__thread_leave(&frame);

	umn__mm_lock(mm);
	struct umn__release_batch **p = &mm->batches;

	while (*p != batch)
		p = &(*p)->next;
	*p = batch->next;
	umn__mm_wake_locked(mm);
	umn__mm_unlock(mm);
}

static bool walk_visit(struct umn_interval *sub, void *arg)
{
	const struct walk *w = arg;

	return sub->umn__ops->invalidate(sub, w->range, w->cur_seq);
}

/* End one walk; the last one ends the period (see the top of the file). */
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
	unsigned long s = atomic_load_relaxed(&mm->seq);

	/* Pairs with the acquire load of mm->seq in umn_read_begin(). */
	atomic_store_release(&mm->seq, s + 1);
	put = defer_apply_locked(mm, s);
	if (put)
		umn__release_begin_locked(mm, &batch);
	umn__mm_wake_locked(mm);
	umn__mm_unlock(mm);
	if (put)
		umn__release_run(mm, put, &batch);
}

static bool range_valid(const struct umn_range *r)
{
	return r && r->mm && r->start < r->end && r->event >= UMN_EVENT_UNMAP &&
	       r->event <= UMN_EVENT_REMAP && !(r->flags & ~UMN_RANGE_BLOCKABLE);
}

int umn_invalidate_range_start(struct umn_range *range)
{
	struct walk w = { .range = range };
	struct umn_interval *root;
	struct umn_mm *mm;

	if (!range_valid(range))
		return -EINVAL;
	if (umn__thread_has(range))
		return -EBUSY; /* reusing it would loop the thread's list */
	mm = range->mm;
	umn__mm_lock(mm);
	w.cur_seq = atomic_load_relaxed(&mm->seq);
	if (!mm->active++) {
		/* Pairs with the acquire load of mm->seq in umn_read_begin():
		 * a reader that sees a set_seq of this period sees it odd. */
		atomic_store_release(&mm->seq, ++w.cur_seq);
	}
	root = mm->root;
	umn__mm_unlock(mm);

	umn__thread_enter(range);
	range->umn__walking = 1;
	bool done = umn__itree_overlaps(root, range->start, range->end - 1,
					walk_visit, &w);
	range->umn__walking = 0;
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
	if (range->umn__walking)
		UMN_FATAL_MISUSE("umn_invalidate_range_end() from inside the "
				 "range's own ->invalidate()");
	umn__thread_leave(range);
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

static unsigned long oldest_batch_locked(const struct umn_mm *mm)
{
	unsigned long oldest = (unsigned long)-1;

	for (const struct umn__release_batch *b = mm->batches; b; b = b->next)
		if (b->ticket < oldest)
			oldest = b->ticket;
	return oldest;
}

int umn_synchronize(struct umn_mm *mm)
{
	if (!mm)
		return -EINVAL;
	if (umn__thread_inside(mm))
		return -EDEADLK;
	umn__mm_lock(mm);
	/* The period in progress ends after every walk in it, and its end
	 * applies every operation queued before us. */
	umn__mm_wait_period_locked(mm);
	/* Batches started so far, including the one that period's end began,
	 * have tickets below this; later ones need not be waited for. */
	unsigned long ticket = mm->next_ticket;

	while (oldest_batch_locked(mm) < ticket)
		umn__mm_wait_locked(mm);
	umn__mm_unlock(mm);
	return 0;
}
