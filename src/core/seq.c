// SPDX-License-Identifier: MIT
/*
 * seq — the read side of the sequence protocol.
 *
 * A reader mirrors memory under a subscription like this (the kernel's
 * collision-retry scheme, with a lock-free fast path):
 *
 *   reader                              walk (another thread)
 *   seq = umn_read_begin(sub)
 *                                       range_start: space seq S (odd)
 *   read the pages                      ->invalidate(sub, range, S):
 *                                          lock(owner); umn_set_seq(sub, S)
 *                                          zap the mirror; unlock(owner)
 *                                       the memory changes
 *   lock(owner)
 *   umn_read_retry(sub, seq): S != seq -> retry
 *
 * Either the reader's critical section comes first, and the walk's zaps
 * what it installed, or the walk's comes first, and the owner's lock makes
 * its set_seq visible to read_retry.  read_begin only has to wait when the
 * subscription was already reached by the period in progress (sub seq equal
 * to the space's odd seq) or has a deferred insert or update: the reader
 * could otherwise read memory a walk is changing and find no trace of it.
 *
 * Fast path: two acquire loads, no lock, no store.
 */
#include "core/core.h"

/* Always a retry: odd sequences are the only ones read_begin hands out. */
#define SEQ_RETRY 0ul

static unsigned long read_begin_slow(struct umn_interval *sub,
				     struct umn_mm *mm)
{
	unsigned long w;

	umn__mm_lock(mm);
	/* In a fork child, one the parent inserted: not inserted here. */
	if (umn__sub_inherited_locked(mm, sub)) {
		umn__mm_unlock(mm);
		return SEQ_RETRY;
	}
	for (;;) {
		/* Relaxed under the lock: deferral and application write it
		 * under the lock; set_seq only ever makes us wait longer. */
		w = atomic_load_relaxed(&sub->umn__seq);
		if (w & 1 ? w != atomic_load_relaxed(&mm->seq)
			  : umn__sub_state(sub) == SUB_IDLE)
			break;
		if (umn__thread_inside(mm)) {
			w = SEQ_RETRY; /* the period cannot end under us */
			break;
		}
		umn__mm_wait_locked(mm);
	}
	umn__mm_unlock(mm);
	return w & 1 ? w : SEQ_RETRY;
}

unsigned long umn_read_begin(struct umn_interval *sub)
{
	struct umn_mm *mm = umn__sub_mm(sub);

	if (!mm)
		return SEQ_RETRY;
	/*
	 * Pairs with the release CAS in umn_set_seq(): if we see the sequence
	 * a walk set, we also see the space's seq that walk made odd (stored
	 * before the walk called ->invalidate()), so we wait instead of
	 * returning a sequence that read_retry would accept.
	 */
	unsigned long w = atomic_load_acquire(&sub->umn__seq);
	/* Pairs with the release stores in range_start and walk_end. */
	unsigned long s = atomic_load_acquire(&mm->seq);

	/* flags: written at creation, and in a fork child before any use. */
	if ((w & 1) && w != s && !(mm->flags & UMN__MM_FORKED))
		return w;
	return read_begin_slow(sub, mm);
}

bool umn_read_retry(struct umn_interval *sub, unsigned long seq)
{
	/* Relaxed: the caller holds the owner's lock, which orders this load
	 * after any set_seq made under it.  A link (even) never equals an odd
	 * seq, so a pending operation reads as a retry. */
	return !(seq & 1) || atomic_load_relaxed(&sub->umn__seq) != seq;
}

bool umn_check_retry(struct umn_interval *sub, unsigned long seq)
{
	/* The same test; without the owner's lock only "true" is final. */
	return umn_read_retry(sub, seq);
}

void umn_set_seq(struct umn_interval *sub, unsigned long cur_seq)
{
	unsigned long w = atomic_load_relaxed(&sub->umn__seq);

	do {
		if (!(w & 1))
			return; /* a pending link: its application stores S */
		/* Release pairs with the acquire load in umn_read_begin(). */
	} while (!atomic_cas_weak_release(&sub->umn__seq, &w, cur_seq));
}
