// SPDX-License-Identifier: MIT
/*
 * defer — who may change the tree, the deferred list, releases, synchronize.
 *
 * A thread holding the space's lock may change the tree only after it has
 * claimed it: no locked walk in progress (active == 0), no lock-free walk
 * counted in a slot, and no earlier operation waiting to be applied (ours
 * must not overtake it).  Otherwise the change is queued on the deferred
 * list, and the walk that ends last applies the list ("settles" the space).
 *
 * A slot's word counts the lock-free walks in it, and its top bit, SETTLE,
 * asks the walk that leaves it to settle:
 *
 *   claim (lock held)                    lock-free walk (walk.c)
 *     writing = 1                 (SC)     slot += 1                  (SC)
 *     for each slot with walks:            writing?                   (SC)
 *       slot |= SETTLE            (SC)       yes: slot -= 1, take the lock
 *     any had walks?                         no:  read the tree ...
 *       yes: defer                         old = slot; slot -= 1      (SC)
 *       no:  change the tree               old & SETTLE?
 *     writing = 0           (release)        yes: settle (takes the lock)
 *
 * Of a claim's "writing = 1, then read the slots" and a walk's "slot += 1,
 * then read writing", at least one sees the other's store, since all four
 * are sequentially consistent (the Dekker pattern): a walk never reads a
 * tree being changed.  At the end, the walk's decrement and the claim's mark
 * are read-modify-writes of one word: either the mark comes first and the
 * decrement returns it, so the walk settles, or the decrement comes first
 * and the claim sees no walk there.  So a deferral always has someone to
 * apply it: a locked walk's end, or a marked lock-free walk's end.  And a
 * lock-free walk touches the space after its decrement only when marked,
 * that is while the space is busy (a deferral, or a synchronize waiting).
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
		if (atomic_load(&mm->slots[i].walks) & UMN__SLOT_COUNT)
			return true;
	return false;
}

/*
 * Mark each slot with walks in it, so that the walk leaving it last settles
 * the space; returns whether any had walks.  A walk that begins after the
 * load that skipped its slot began after this call: it is not waited for.
 */
static bool slots_mark(struct umn_mm *mm)
{
	bool busy = false;

	for (int i = 0; i < UMN__WALK_SLOTS; i++) {
		_Atomic unsigned long *w = &mm->slots[i].walks;

		if ((atomic_load(w) & UMN__SLOT_COUNT) &&
		    (atomic_fetch_or(w, UMN__SLOT_SETTLE) & UMN__SLOT_COUNT))
			busy = true;
	}
	return busy;
}

/* Clear the marks: nothing is deferred, and nobody waits on them. */
static void slots_unmark(struct umn_mm *mm)
{
	for (int i = 0; i < UMN__WALK_SLOTS; i++) {
		_Atomic unsigned long *w = &mm->slots[i].walks;

		if (atomic_load_relaxed(w) & UMN__SLOT_SETTLE)
			atomic_fetch_and(w, ~UMN__SLOT_SETTLE);
	}
}

bool umn__walks_locked(struct umn_mm *mm)
{
	return mm->active || slots_busy(mm);
}

static bool tree_claim(struct umn_mm *mm, bool settling)
{
	if (mm->active || (mm->deferred_head && !settling))
		return false;
	atomic_store(&mm->writing, 1); /* SC: the Dekker pair (top of file) */
	return !slots_mark(mm);
}

bool umn__tree_claim_locked(struct umn_mm *mm)
{
	return tree_claim(mm, false);
}

void umn__tree_unclaim_locked(struct umn_mm *mm)
{
	if (!mm->deferred_head) {
		/* Nothing deferred: no walk needs to settle.  Marks left by a
		 * synchronize are its to set again: wake it. */
		slots_unmark(mm);
		umn__mm_wake_locked(mm);
	}
	/* Release: a walk whose SC load sees 0 here also sees the tree as
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
 * If the deferred list is not empty and no walk holds the tree, apply it;
 * wake the waiters either way (a synchronize may wait for this walk's end).
 * Returns what was put (then @batch is begun), for umn__release_run() after
 * the unlock.
 */
struct umn_interval *umn__settle_locked(struct umn_mm *mm,
					struct umn__release_batch *batch)
{
	struct umn_interval *put = NULL;

	if (mm->deferred_head) {
		if (tree_claim(mm, true))
			put = defer_apply_locked(mm);
		umn__tree_unclaim_locked(mm);
	}
	if (put)
		umn__release_begin_locked(mm, batch);
	umn__mm_wake_locked(mm);
	return put;
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
	/*
	 * Locked walks end with their period; each lock-free walk in progress
	 * settles, and wakes us, as it ends.  Again until both are done: a
	 * marked walk may have become a locked one meanwhile.
	 */
	for (;;) {
		umn__mm_wait_period_locked(mm);
		if (!slots_mark(mm))
			break;
		umn__mm_wait_locked(mm);
	}
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
	if (!mm->deferred_head) {
		slots_unmark(mm); /* ours; a deferral's would be needed */
		umn__mm_wake_locked(mm); /* other synchronizes mark again */
	}
	umn__mm_unlock(mm);
	return 0;
}
