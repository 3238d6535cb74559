// SPDX-License-Identifier: MIT
/*
 * defer — who may change the tree, the deferred list, releases, synchronize.
 *
 * A thread holding the space's lock may change the tree only after it has
 * claimed it: no locked walk in progress (active == 0) and no lock-free walk
 * counted in a slot.  Otherwise the change is queued on the deferred list,
 * and the walk that ends last applies the list ("settles" the space):
 *
 *   claim (lock held)                  lock-free walk (walk.c)
 *     writing = 1            (SC)        slot += 1             (SC)
 *     any slot != 0?         (SC)        writing?              (SC)
 *       yes: defer; pending = 1 (SC)       yes: undo, take the lock
 *            writing = 0                   no:  read the tree ...
 *       no:  change the tree;            slot -= 1             (SC)
 *            writing = 0 (release)       writing or pending?   (SC)
 *                                          yes: settle (takes the lock)
 *
 * All four marked accesses are sequentially consistent, so of a claim's
 * "writing = 1 ... read the slots" and a walk's "slot += 1 ... read writing"
 * at least one sees the other's store (the Dekker pattern): a walker never
 * reads a tree that is being changed.  At the end, a walker that leaves after
 * a claim read its slot sees writing (still set) or pending (set before
 * writing is cleared), so a deferral is never left with nobody to apply it.
 *
 * Releases run outside the lock, possibly while walks are in progress: the
 * subscriptions they release are out of the tree, so no walk can reach them.
 * Each run is a batch with a ticket, on its thread's stack, listed in the
 * space so that synchronize can wait for the ones before it.
 */
#include <errno.h>

#include "core/core.h"

/* Any lock-free walk in progress?  Reads every slot (SC). */
static bool slots_busy(struct umn_mm *mm)
{
	for (int i = 0; i < UMN__WALK_SLOTS; i++)
		if (atomic_load(&mm->slots[i].walks))
			return true;
	return false;
}

bool umn__walks_locked(struct umn_mm *mm)
{
	return mm->active || slots_busy(mm);
}

bool umn__tree_claim_locked(struct umn_mm *mm)
{
	if (mm->active)
		return false;
	atomic_store(&mm->writing, 1); /* SC: the Dekker pair (top of file) */
	if (!slots_busy(mm))
		return true;
	umn__tree_unclaim_locked(mm);
	return false;
}

void umn__tree_unclaim_locked(struct umn_mm *mm)
{
	/* Release: a walker whose SC load sees 0 here also sees the tree as
	 * this claim left it. */
	atomic_store_release(&mm->writing, 0);
}

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
	atomic_store(&mm->pending, 1); /* SC: seen by walks that end */
}

static struct umn_interval *link_next(const struct umn_interval *sub)
{
	return (struct umn_interval *)(uintptr_t)atomic_load_relaxed(
		&sub->umn__seq);
}

void umn__sub_go_live_locked(struct umn_mm *mm, struct umn_interval *sub)
{
	/*
	 * No period is in progress (the tree is claimed, so active == 0 and
	 * seq is even): skip a sequence, so that @sub gets one no reader of it
	 * holds and reads begun on its old range, or in an earlier life, retry.
	 */
	unsigned long s = atomic_load_relaxed(&mm->seq) + 2;

	umn__itree_insert(&mm->root, sub);
	umn__sub_set_state(sub, mm, SUB_LIVE);
	/* Both pair with the acquire loads in umn_read_begin(): a reader that
	 * sees @sub's new sequence sees the space's seq at least as new. */
	atomic_store_release(&mm->seq, s);
	atomic_store_release(&sub->umn__seq, s - 1);
}

/*
 * Apply the deferred list in order, with the tree claimed.  Returns the
 * subscriptions put, linked through their seq words, for releasing.
 */
static struct umn_interval *defer_apply_locked(struct umn_mm *mm)
{
	struct umn_interval *sub = mm->deferred_head, *next;
	struct umn_interval *put = NULL, *put_tail = NULL;

	mm->deferred_head = mm->deferred_tail = NULL;
	atomic_store_relaxed(&mm->pending, 0); /* a stale 1 costs a lock */
	mm->applied++;
	for (; sub; sub = next) {
		enum umn__sub_state st = umn__sub_state(sub);

		next = link_next(sub);
		if (umn__sub_in_tree(st))
			umn__itree_erase(&mm->root, sub);
		if (st == SUB_UPDATE)
			umn__itree_set_bounds(sub, sub->umn__pending_start,
					      sub->umn__pending_last);
		if (st == SUB_INSERT || st == SUB_UPDATE) {
			umn__sub_go_live_locked(mm, sub);
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
 * If the deferred list is not empty and no walk holds the tree, apply it and
 * wake the waiters.  Returns what was put (then @batch is begun), for
 * umn__release_run() after the unlock.
 */
struct umn_interval *umn__settle_locked(struct umn_mm *mm,
					struct umn__release_batch *batch)
{
	struct umn_interval *put;

	if (!mm->deferred_head || !umn__tree_claim_locked(mm))
		return NULL;
	put = defer_apply_locked(mm);
	umn__tree_unclaim_locked(mm);
	if (put)
		umn__release_begin_locked(mm, batch);
	umn__mm_wake_locked(mm);
	return put;
}

void umn__settle(struct umn_mm *mm)
{
	struct umn__release_batch batch;
	struct umn_interval *put;

	umn__mm_lock(mm);
	put = umn__settle_locked(mm, &batch);
	umn__mm_unlock(mm);
	if (put)
		umn__release_run(mm, put, &batch);
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
	/* The period in progress ends after every locked walk in it. */
	umn__mm_wait_period_locked(mm);
	/* Operations queued before us are applied by the next settle. */
	if (mm->deferred_head) {
		unsigned long applied = mm->applied;

		while (mm->applied == applied)
			umn__mm_wait_locked(mm);
	}
	/* Batches begun so far have tickets below this one. */
	unsigned long ticket = mm->next_ticket;

	while (oldest_batch_locked(mm) < ticket)
		umn__mm_wait_locked(mm);
	umn__mm_unlock(mm);
	return 0;
}
