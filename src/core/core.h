/* SPDX-License-Identifier: MIT */
/*
 * core.h — the state of a space and of a subscription, shared by the core's
 * files.  docs/design.md draws the same picture with the reasoning.
 *
 * Walks come in two kinds.  A walk whose range overlaps no subscription
 * when it begins is lock-free: it counts itself in a slot (see below) until
 * it ends and calls nothing.  A walk that finds an overlap is locked: it
 * counts itself in `active` under the lock and calls ->invalidate().
 *
 *   idle     no walk of either kind.  The tree may change, under the lock
 *            with `writing` set.  Inserts, puts, removes and updates take
 *            effect at once; an insert or update also moves seq on by 2, so
 *            that the subscription gets a sequence no reader of it holds.
 *   walking  some walk in progress.  The tree does not change, so walkers
 *            read it without the lock.  Inserts, puts, removes and updates
 *            are queued on the deferred list, in order; the walk that ends
 *            last applies them under the lock, wakes the waiters, drops the
 *            lock and then calls the ->release() of the subscriptions put.
 *            While locked walks are in progress (active > 0) seq is odd:
 *            that is a period, and read_begin of a subscription a walk of
 *            the period reached waits for its end.
 *
 * (SPEC §3: while any walk is active, operations are deferred.  The kernel
 * lets the tree change under walks that found nothing, its "partially
 * excluded" state; umn keeps the rule, and makes those walks lock-free.)
 *
 * Each period of the walking state is named by its odd seq S; every walk of
 * the period passes S to ->invalidate() as cur_seq.
 *
 * Lock order: a space's lock is a leaf.  No library lock is held while a
 * user callback runs, and nothing else is locked under it, so it nests
 * inside any user lock, and user locks may nest around any umn call.
 */
#ifndef UMN_CORE_CORE_H
#define UMN_CORE_CORE_H

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <umn/umn.h>

#include "core/itree.h"
#include "sys/atomic.h"
#include "sys/debug.h"

/*
 * A subscription's state, in the low 3 bits of umn__mm_state (the rest is
 * the struct umn_mm pointer).  Written under the space's lock, except that
 * a release batch resets it to IDLE, outside the lock, just before calling
 * ->release(); read elsewhere only to find the space.
 *
 *   IDLE           not inserted; the whole word is 0.
 *   LIVE           in the tree.
 *   INSERT         deferred insert: on the deferred list, not in the tree;
 *                  umn__start/umn__last hold the range to insert.
 *   UPDATE         in the tree, deferred update to umn__pending_start/last.
 *   REMOVE         in the tree, deferred remove; a remover waits for it.
 *   PUT            in the tree, deferred put.
 *   INSERT_PUT     deferred insert, then put: never enters the tree.
 *   INSERT_REMOVE  deferred insert, then remove.
 *
 * The four middle-to-last states are "pending": the subscription is on the
 * deferred list, and its umn__seq word is the list link (see below).
 */
enum umn__sub_state {
	SUB_IDLE,
	SUB_LIVE,
	SUB_INSERT,
	SUB_UPDATE,
	SUB_REMOVE,
	SUB_PUT,
	SUB_INSERT_PUT,
	SUB_INSERT_REMOVE,
};
#define SUB_STATE_MASK ((uintptr_t)7)

/*
 * The umn__seq word of a subscription holds one of two things:
 *   odd   the sequence of the last period whose walk reached it (or, when
 *         inserted while idle, the period before): what read_begin returns
 *         and read_retry compares against.
 *   even  a pending subscription's link in the deferred list (the next
 *         subscription, or 0 for the tail).  While pending, its effective
 *         sequence is the current period's S, which is what the period's
 *         end stores when it applies the operation.
 * Sequences are always odd and node addresses always even, so a reader can
 * tell them apart, and a sequence never equals a link.  This keeps the
 * deferred state inside the 80 bytes of struct umn_interval.
 */

/*
 * Walks that overlap no subscription take no lock: each counts itself in one
 * of these slots (picked by thread, so threads rarely share a cache line)
 * from range_start to range_end.  A tree writer sets `writing` and then
 * reads every slot; a walker increments its slot and then reads `writing`.
 * With sequentially consistent accesses on both sides, at least one sees
 * the other: either the writer sees the walker and defers, or the walker
 * sees the writer and takes the lock.  defer.c has the whole protocol.
 */
#define UMN__WALK_SLOTS_ORDER 5
#define UMN__WALK_SLOTS (1 << UMN__WALK_SLOTS_ORDER)
/* A slot's word: the walks in it, and SETTLE (defer.c). */
#define UMN__SLOT_SETTLE (~0ul ^ (~0ul >> 1))
#define UMN__SLOT_COUNT  (~0ul >> 1)

struct umn__walk_slot {
	_Alignas(64) _Atomic unsigned long walks;
};

/* A thread asleep in umn__mm_wait_locked(), on its own stack. */
struct umn__waiter {
	struct umn__waiter *next;
	sem_t sem;
};

/* A ->release() batch in flight, on the stack of the thread running it. */
struct umn__release_batch {
	struct umn__release_batch *next;
	unsigned long ticket;
};

struct umn_mm {
	pthread_mutex_t lock;
	unsigned flags;             /* UMN_MM_*, and UMN__MM_PINNED; set at
				       creation, read-only after */
	sigset_t held_mask;         /* UMN_MM_SIGNAL_SAFE: the holder's signal
				       mask before it took the lock; lock */
	struct umn__waiter *sleepers; /* woken, under lock, when seq leaves
				       a period or a release batch ends */
	/*
	 * Written only under the lock, with release stores; read under the
	 * lock or, by read_begin's fast path, with acquire loads.
	 */
	_Atomic unsigned long seq;
	unsigned long active;              /* walks in progress; lock */
	struct umn_interval *root;         /* lock, and only while idle */
	struct umn_interval *deferred_head, *deferred_tail; /* lock */
	struct umn__release_batch *batches; /* in flight; lock */
	unsigned long next_ticket;         /* lock */
	unsigned long applied;             /* deferred lists applied; lock */
	unsigned waiters;                  /* threads in wait(); lock */
	/*
	 * The lock-free walk protocol (defer.c).  `writing`: a thread holding
	 * the lock may change the tree, so new walks take the lock; written
	 * under the lock.  Slots: walks in progress, and SETTLE marks.
	 */
	_Atomic unsigned writing;
	struct umn__walk_slot slots[UMN__WALK_SLOTS];
};

static inline struct umn_mm *umn__sub_mm(const struct umn_interval *sub)
{
	/* Relaxed: the space of a subscription is set before the owner
	 * publishes it and does not change while it is inserted; every
	 * decision on the state is taken again under the lock. */
	return (struct umn_mm *)(atomic_load_relaxed(&sub->umn__mm_state) &
				 ~SUB_STATE_MASK);
}

static inline enum umn__sub_state umn__sub_state(const struct umn_interval *sub)
{
	return (enum umn__sub_state)(atomic_load_relaxed(&sub->umn__mm_state) &
				     SUB_STATE_MASK);
}

/* Caller holds @mm's lock (or owns an idle @sub). */
static inline void umn__sub_set_state(struct umn_interval *sub,
				      struct umn_mm *mm,
				      enum umn__sub_state st)
{
	atomic_store_relaxed(&sub->umn__mm_state,
			     st == SUB_IDLE ? 0 : (uintptr_t)mm | st);
}


static inline bool umn__sub_in_tree(enum umn__sub_state st)
{
	return st == SUB_LIVE || st == SUB_UPDATE || st == SUB_REMOVE ||
	       st == SUB_PUT;
}

/* Never freed: the process space (src/core/export.h). */
#define UMN__MM_PINNED (1u << 31)
/*
 * The copy of a space in the child of fork() (umn_mm_atfork): it started
 * over empty, but the subscriptions the parent had inserted still say so in
 * the child's copy of their memory.  Such a subscription is one this space
 * does not know: not in its tree, nor on its deferred list.
 */
#define UMN__MM_FORKED (1u << 30)

/* mm.c: the lock, waiting, and the calling thread's walks. */
void umn__mm_lock(struct umn_mm *mm);
void umn__mm_unlock(struct umn_mm *mm);
void umn__mm_wait_locked(struct umn_mm *mm);
void umn__mm_wake_locked(struct umn_mm *mm);
void umn__mm_wait_period_locked(struct umn_mm *mm);
void umn__thread_enter(struct umn_range *frame);
bool umn__thread_leave(struct umn_range *frame);
bool umn__thread_has(const struct umn_range *frame);
const void *umn__thread_self(void);
bool umn__thread_inside(const struct umn_mm *mm);
bool umn__sub_inherited_locked(struct umn_mm *mm,
			       const struct umn_interval *sub);

/* walk.c: claiming the tree, deferral and releases. */
bool umn__tree_claim_locked(struct umn_mm *mm);
void umn__tree_unclaim_locked(struct umn_mm *mm);
bool umn__walks_locked(struct umn_mm *mm);
void umn__sub_go_live_locked(struct umn_mm *mm, struct umn_interval *sub);
void umn__defer_locked(struct umn_mm *mm, struct umn_interval *sub,
		       enum umn__sub_state st);
void umn__release_begin_locked(struct umn_mm *mm,
			       struct umn__release_batch *batch);
struct umn_interval *umn__settle_locked(struct umn_mm *mm,
					struct umn__release_batch *batch);
void umn__release_run(struct umn_mm *mm, struct umn_interval *list,
		      struct umn__release_batch *batch);

#endif /* UMN_CORE_CORE_H */
