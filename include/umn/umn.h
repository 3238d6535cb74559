/* SPDX-License-Identifier: MIT */
/*
 * umn — userspace MMU interval notifiers.
 *
 * The core API: address spaces (struct umn_mm), interval subscriptions
 * (struct umn_interval) and the invalidation walk that tells a subscription's
 * owner when part of its range is about to change.  The names and semantics
 * follow Linux's mmu_interval_notifier, plus the extension discussed on
 * linux-mm in 2019: a non-blocking umn_interval_put() with a ->release()
 * callback, and umn_interval_update() of the watched range, both callable
 * from inside ->invalidate().
 *
 * Errors are negative errno values, success is 0.  Ranges are half-open,
 * [start, end).  See docs/design.md for the states, locks and orderings.
 */
#ifndef UMN_UMN_H
#define UMN_UMN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#define UMN__ATOMIC(type) type
#else
#define UMN__ATOMIC(type) _Atomic(type)
#endif

/* The library is built with hidden visibility; its API is what this says. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define UMN_VERSION_MAJOR 0
#define UMN_VERSION_MINOR 1

struct umn_mm;
struct umn_interval;

/**
 * enum umn_event - Why a range is being invalidated.
 * @UMN_EVENT_UNMAP:      the pages leave the address space (munmap, shmdt,
 *                        brk shrink, MAP_FIXED over existing pages).
 * @UMN_EVENT_CLEAR:      the pages stay mapped but their contents are
 *                        discarded (madvise DONTNEED/FREE/REMOVE).
 * @UMN_EVENT_PROTECTION: the access rights change (mprotect).
 * @UMN_EVENT_REMAP:      the pages move or shrink (mremap).
 */
enum umn_event {
	UMN_EVENT_UNMAP,
	UMN_EVENT_CLEAR,
	UMN_EVENT_PROTECTION,
	UMN_EVENT_REMAP,
};

/*
 * Set in umn_range.flags when ->invalidate() may sleep or take locks that
 * sleep.  Without it, ->invalidate() may return false instead of blocking.
 */
#define UMN_RANGE_BLOCKABLE 1u

/**
 * struct umn_range - A range being invalidated, as ->invalidate() sees it.
 * @mm:     the space.
 * @start:  first address.
 * @end:    one past the last address.
 * @event:  why.
 * @flags:  UMN_RANGE_BLOCKABLE or 0.
 * @owner:  free for the caller of umn_invalidate_range_start(), passed
 *          through untouched (the kernel uses it to skip self-inflicted
 *          invalidations).
 *
 * The fields after @owner are private: between umn_invalidate_range_start()
 * and umn_invalidate_range_end() they link the range into the calling
 * thread's list of walks.  range_start sets them; give range_end only a
 * range that range_start returned 0 for, or one zero-initialized.
 */
struct umn_range {
	struct umn_mm *mm;
	uintptr_t start, end;
	enum umn_event event;
	unsigned flags;
	void *owner;
	/* private */
	struct umn_range *umn__prev;  /* the thread's enclosing range */
	const void *umn__thread;      /* the thread that began it, until ended */
	unsigned umn__mode;           /* how it walks; see src/core/walk.c */
};

/**
 * struct umn_interval_ops - What a subscription's owner is told.
 * @invalidate: called for every range being invalidated that overlaps the
 *              subscription, after the range starts and before it ends.  It
 *              takes the owner's lock, calls umn_set_seq(@sub, @cur_seq),
 *              stops using the overlap and returns true.  It may return false
 *              only when @range->flags lacks UMN_RANGE_BLOCKABLE and it would
 *              have to sleep.  May call umn_interval_insert(),
 *              umn_interval_put() and umn_interval_update() on any
 *              subscription of any space; never umn_interval_remove() or
 *              umn_synchronize() on its own space (-EDEADLK).
 * @release:    optional; called exactly once after umn_interval_put(), once
 *              no ->invalidate() of the subscription is running or can
 *              start.  From then on the library does not touch the
 *              subscription: the owner may free or reinsert it.  Runs with no
 *              library lock held, on the thread that called put() or on the
 *              thread whose walk ended last; may call the same functions as
 *              ->invalidate().
 */
struct umn_interval_ops {
	bool (*invalidate)(struct umn_interval *sub,
			   const struct umn_range *range,
			   unsigned long cur_seq);
	void (*release)(struct umn_interval *sub);
};

/**
 * struct umn_interval - A subscription to a range of a space.
 *
 * Embed it in your own struct and use container_of() in the callbacks.
 * Zero-filled memory (static storage, calloc, = {0}) is a subscription that
 * is not inserted.  Every field is private; read the range with
 * umn_interval_start() and umn_interval_end().  80 bytes on LP64.
 */
struct umn_interval {
	uintptr_t umn__left;            /* tree child; bit 0: node is red */
	struct umn_interval *umn__right;
	UMN__ATOMIC(uintptr_t) umn__start;
	UMN__ATOMIC(uintptr_t) umn__last;
	uintptr_t umn__subtree_last;
	const struct umn_interval_ops *umn__ops;
	UMN__ATOMIC(uintptr_t) umn__mm_state; /* struct umn_mm * | state */
	UMN__ATOMIC(unsigned long) umn__seq;  /* odd: seq; even: deferred link */
	uintptr_t umn__pending_start, umn__pending_last;
};

/**
 * umn_mm_new() - Create an empty space that the caller drives.
 *
 * The space knows nothing about processes: invalidations happen only when
 * the caller calls umn_invalidate() or umn_invalidate_range_start().  Use it
 * for an emulator's guest space, a device's own address space, or a test.
 *
 * Context: any thread.  Allocates the space with malloc, so not from a
 *          callback that may run inside the allocator.
 * Return: the space, or NULL with errno set to ENOMEM.
 */
struct umn_mm *umn_mm_new(void);

/**
 * umn_mm_free() - Destroy a space made by umn_mm_new().
 * @mm: the space.
 *
 * Context: any thread.  Never blocks.
 * Return: 0; -EINVAL if @mm is NULL; -EBUSY while a subscription is
 *         inserted or being put, a walk is in progress or a ->release() is
 *         running (so also from inside the space's own callbacks).
 */
int umn_mm_free(struct umn_mm *mm);

/* Flags for umn_mm_new_flags(). */
#define UMN_MM_SIGNAL_SAFE 1u	/* walks may run in signal handlers */

/**
 * umn_mm_new_flags() - Create an address space, with options.
 * @flags: 0 or UMN_MM_SIGNAL_SAFE.
 *
 * As umn_mm_new().  With UMN_MM_SIGNAL_SAFE, a thread blocks signals while
 * it holds the space's internal lock, so an invalidation begun by a signal
 * handler never waits for the lock held by the thread it interrupted.  That
 * costs two sigprocmask calls on every path that takes the lock (insert,
 * put, update, remove, and walks that hit a subscription); walks that hit
 * nothing take no lock and pay nothing.  The process space is made this
 * way.  Waits (remove, synchronize, a contended read_begin) sleep outside
 * the lock with the caller's own signal mask, so signals reach a waiting
 * thread as usual.
 *
 * Context: any thread.  Allocates with malloc.
 * Return: the space, or NULL with errno set to EINVAL (unknown flag) or
 *         ENOMEM.
 */
struct umn_mm *umn_mm_new_flags(unsigned flags);

enum umn_fork_phase { UMN_FORK_PREPARE, UMN_FORK_PARENT, UMN_FORK_CHILD };

/**
 * umn_mm_atfork() - Start a space over in the child of fork().
 * @mm:    the space.
 * @phase: which pthread_atfork() handler is calling.
 *
 * UMN_FORK_CHILD leaves the child's copy of @mm empty, idle and working:
 * the walks and releases of the parent's other threads are forgotten, and
 * every subscription the parent had inserted or queued reads as not
 * inserted in the child (remove, put and update return -ENOENT, a
 * read_begin returns a value read_retry always retries; insert it again to
 * watch memory there).  A read begun before fork() must not be finished
 * in the child.  Releases the parent still owed are not
 * called in the child.  A walk the forking thread itself was inside of
 * (fork() from a callback) ends in the child without effect.
 * UMN_FORK_PREPARE and UMN_FORK_PARENT do nothing: nothing is held across
 * fork(), since a thread inside malloc may need the space's lock while
 * fork() waits for malloc's.  The process space does this by itself.
 *
 * Context: the child's pthread_atfork() handler, before any other use of
 *          @mm in the child.
 * Return: nothing.
 */
void umn_mm_atfork(struct umn_mm *mm, enum umn_fork_phase phase);

/**
 * umn_mm_process() - The space of the running process.
 *
 * The first call installs the process monitor (umn/monitor.h), chosen by
 * the environment variable UMN_MONITOR ("patch", the default, or "off"),
 * and returns the space it feeds; later calls return the same space.  The
 * space is made with UMN_MM_SIGNAL_SAFE and is never freed (umn_mm_free()
 * refuses it with -EBUSY).  After fork() the child's process space is the
 * same pointer, emptied as by umn_mm_atfork().  umn_monitor_query() says
 * which source feeds it and why.
 *
 * Context: any thread, not from inside a callback.  The first call
 *          allocates and patches code; later calls never block.
 * Return: the space, or NULL with errno set: EINVAL (UMN_MONITOR has an
 *         unknown value), ENOTSUP (patching is not supported on this
 *         architecture, or UMN_MONITOR=uffd, not implemented yet), ENOEXEC
 *         (a libc entry point does not look as expected, so nothing was
 *         patched), EACCES (libc's text could not be made writable),
 *         EAGAIN (an entry point changed while it was being patched; all
 *         were put back), ENOMEM.  A failed install is not retried.
 */
struct umn_mm *umn_mm_process(void);

/**
 * umn_interval_insert() - Subscribe to a range of a space.
 * @sub:    zero-filled, or released/removed memory.
 * @mm:     the space.
 * @start:  first address watched.
 * @length: bytes; non-zero, and @start + @length must not wrap.
 * @ops:    callbacks; ->invalidate is required, ->release is needed for put.
 *          Must stay valid until @sub is removed or released.
 *
 * With no walk in progress on @mm (and no earlier operation still waiting
 * to be applied), @sub is in the tree when this returns.  Otherwise the
 * insert is deferred to the end of the walks, after the operations queued
 * before it; invalidations already under way will not reach @sub, and
 * umn_read_begin() on it waits until it is applied.
 *
 * Context: any thread, including inside ->invalidate() and ->release() of
 *          any space.  Never blocks, allocates nothing.
 * Return: 0; -EINVAL for a NULL argument, a missing ->invalidate or a zero
 *         @length; -EOVERFLOW if @start + @length exceeds UINTPTR_MAX (the
 *         exclusive end must be representable); -EBUSY if @sub is inserted,
 *         or put or removed but not yet released or removed.
 */
int umn_interval_insert(struct umn_interval *sub, struct umn_mm *mm,
			uintptr_t start, size_t length,
			const struct umn_interval_ops *ops);

/**
 * umn_interval_remove() - Unsubscribe, waiting for callbacks to finish.
 * @sub: an inserted subscription.
 *
 * When this returns, no ->invalidate() of @sub is running or can start, and
 * the memory of @sub is the caller's again.  ->release() is not called.
 *
 * Context: any thread, outside the callbacks of @sub's space, and not while
 *          holding a lock that ->invalidate() takes.  Waits for the walks in
 *          progress on the space, if any, to end.  From a callback of
 *          another space it may wait; the caller must make sure no cycle of
 *          such waits can form.
 * Return: 0; -EINVAL if @sub is NULL; -ENOENT if not inserted; -EALREADY if
 *         a put or remove of @sub is already under way; -EDEADLK from inside
 *         a callback of the same space, or between umn_invalidate_range_start()
 *         and umn_invalidate_range_end() on it (it would wait for itself).
 */
int umn_interval_remove(struct umn_interval *sub);

/**
 * umn_interval_put() - Unsubscribe without waiting.
 * @sub: an inserted subscription whose ops have ->release.
 *
 * ->release(@sub) is called exactly once, after no ->invalidate() of @sub is
 * running or can start: before this returns when no walk is in progress
 * (and no earlier operation waits), otherwise by the thread whose walk ends
 * last.  Until then @sub may still receive ->invalidate().
 *
 * Context: any thread, including inside ->invalidate() and ->release() of
 *          any space.  Never waits for another thread and allocates
 *          nothing, but may call ->release() before returning: not while
 *          holding a lock that ->release() takes.
 * Return: 0; -EINVAL if @sub is NULL or its ops lack ->release; -ENOENT if
 *         not inserted (or already released); -EALREADY if a put or remove
 *         of @sub is already under way.
 */
int umn_interval_put(struct umn_interval *sub);

/**
 * umn_interval_update() - Change the range a subscription watches.
 * @sub:    an inserted subscription that has not been put.
 * @start:  first address of the new range.
 * @length: bytes; non-zero, and @start + @length must not wrap.
 *
 * With no walk in progress (and no earlier operation waiting), takes effect
 * before returning.  Otherwise it is stored in @sub and applied by the last
 * walker; of several updates before that, the last wins, and
 * umn_read_begin() on @sub waits until it is applied.  Walks in progress
 * keep using the old range.
 *
 * Context: any thread, including inside ->invalidate() and ->release() of
 *          any space.  Never blocks, allocates nothing.
 * Return: 0; -EINVAL if @sub is NULL or @length is zero; -EOVERFLOW if
 *         @start + @length exceeds UINTPTR_MAX; -ENOENT if not inserted;
 *         -EALREADY if a put or remove of @sub is under way.
 */
int umn_interval_update(struct umn_interval *sub, uintptr_t start,
			size_t length);

/**
 * umn_interval_start() - First address a subscription watches.
 * @sub: an inserted subscription.
 *
 * The range the walks use: inside a callback, the bounds of the walk in
 * progress; a deferred insert or update shows once applied.
 *
 * Context: any thread.  Lock-free; read concurrently with an update, the
 *          start and the end may come from different ranges.
 * Return: the start, or 0 if @sub is not inserted or its insert is still
 *         deferred (0 is also a valid start).
 */
uintptr_t umn_interval_start(const struct umn_interval *sub);

/**
 * umn_interval_end() - One past the last address a subscription watches.
 * @sub: an inserted subscription.
 *
 * The same range as umn_interval_start(): inside a callback, the bounds of
 * the walk in progress; a deferred insert or update shows once applied.
 *
 * Context: any thread.  Lock-free.
 * Return: the exclusive end (never 0 for an inserted subscription), or 0 if
 *         @sub is not inserted or its insert is still deferred.
 */
uintptr_t umn_interval_end(const struct umn_interval *sub);

/**
 * umn_read_begin() - Begin a read of the memory under a subscription.
 * @sub: an inserted subscription.
 *
 * The sequence protocol: seq = umn_read_begin(sub); read the pages; take the
 * lock your ->invalidate() takes; if umn_read_retry(sub, seq), unlock and
 * start over; else install what you read and unlock.
 *
 * Waits while an invalidation that has already reached @sub, or a deferred
 * insert or update of @sub, is in progress.  With none, takes no lock and
 * writes no shared memory.  When it waits, it waits for the end of the
 * period: until no walk is in progress on the space, which takes longer
 * while walks on other threads keep overlapping in time (as in the kernel).  An insert or update of @sub makes reads begun
 * before it retry.  Its loads are acquire: reads that follow it are
 * not performed before it.
 *
 * Context: any thread, but not while holding a lock that ->invalidate()
 *          takes (it may wait for that ->invalidate()).  From inside a
 *          callback of the same space it does not wait.
 * Return: a sequence for umn_read_retry() and umn_check_retry().  For a
 *         subscription that is not inserted, or when called from inside a
 *         callback of the same space while it would have to wait, a value
 *         for which they always report a retry.
 */
unsigned long umn_read_begin(struct umn_interval *sub);

/**
 * umn_read_retry() - Did an invalidation reach a subscription since @seq?
 * @sub: the subscription given to umn_read_begin().
 * @seq: what umn_read_begin() returned.
 *
 * Call it under the lock that ->invalidate() takes before it calls
 * umn_set_seq(): that lock orders the two.  False means no invalidation
 * reached @sub since umn_read_begin(); one that reaches it later must take
 * the lock you hold before it returns, so it sees what you install.
 * Spurious true is allowed.
 *
 * Context: any thread, under the owner's lock.  Lock-free.
 * Return: true if the read must be retried.
 */
bool umn_read_retry(struct umn_interval *sub, unsigned long seq);

/**
 * umn_check_retry() - Unlocked hint that a read will have to be retried.
 * @sub: the subscription given to umn_read_begin().
 * @seq: what umn_read_begin() returned.
 *
 * Like umn_read_retry() without the owner's lock: true is final, false may
 * be stale.  Use it to give up early on a long read.
 *
 * Context: any thread.  Lock-free.
 * Return: true if the read will have to be retried.
 */
bool umn_check_retry(struct umn_interval *sub, unsigned long seq);

/**
 * umn_set_seq() - Record, from ->invalidate(), that a range reached @sub.
 * @sub:     the subscription passed to ->invalidate().
 * @cur_seq: the cur_seq passed to ->invalidate().
 *
 * Call it under the owner's lock, the one umn_read_retry() is called under.
 * Its store is a release: a umn_read_begin() that sees it also sees that an
 * invalidation is in progress.  On a subscription with a deferred operation
 * pending it changes nothing: applying the operation records @cur_seq.
 *
 * Context: inside ->invalidate(), under the owner's lock.  Lock-free.
 * Return: nothing.
 */
void umn_set_seq(struct umn_interval *sub, unsigned long cur_seq);

/**
 * umn_invalidate_range_start() - Begin invalidating a range.
 * @range: the space, the range, the event and the flags; @range->owner is
 *         passed through.  It must stay valid until umn_invalidate_range_end().
 *
 * Calls ->invalidate() of every subscription that overlaps the range, on
 * this thread, with no library lock held.  Until umn_invalidate_range_end(),
 * inserts, puts, removes and updates of the space's subscriptions are
 * deferred, and umn_read_begin() of the subscriptions it reached waits.
 * Walks on other threads run concurrently.
 *
 * Context: any thread; umn_invalidate_range_end() must be called on the same
 *          thread.  Blocks only inside the callbacks.
 * Return: 0, and the caller must call umn_invalidate_range_end(); -EINVAL
 *         if @range or @range->mm is NULL, @range->start >= @range->end,
 *         or the event or a flag is unknown; -EBUSY if @range is already
 *         begun on this thread and not ended; -EAGAIN if a ->invalidate()
 *         returned false: the walk was ended here and the caller must not
 *         call umn_invalidate_range_end().
 */
int umn_invalidate_range_start(struct umn_range *range);

/**
 * umn_invalidate_range_end() - End a range begun by range_start.
 * @range: what umn_invalidate_range_start() was given and returned 0 for.
 *
 * If this is the last walk in progress on the space, applies the deferred
 * inserts, puts, removes and updates in the order they were made, wakes the
 * waiters, and then calls the ->release() of the subscriptions put.
 *
 * Context: the thread that called umn_invalidate_range_start(), outside
 *          that range's own ->invalidate() callbacks.  Never blocks outside
 *          ->release() callbacks.  Ending a range on another thread, or from
 *          inside its own walk, would leave the space walking forever or
 *          change the tree under the walk: the library reports it on stderr
 *          and aborts, since there is no way to return an error.
 * Return: nothing; a @range that is NULL, never begun or already ended is
 *         ignored.
 */
void umn_invalidate_range_end(struct umn_range *range);

/**
 * umn_invalidate() - Invalidate a range: range_start and range_end in one.
 * @mm:    the space.
 * @start: first address.
 * @end:   one past the last address.
 * @event: why.
 *
 * The range is UMN_RANGE_BLOCKABLE.
 *
 * Context: any thread.  Blocks only inside the callbacks.
 * Return: 0; -EINVAL for a NULL space, @start >= @end or an unknown event;
 *         -EAGAIN if an ->invalidate() returned false anyway (it should not
 *         on a blockable range; the walk ends there, as for range_start).
 */
int umn_invalidate(struct umn_mm *mm, uintptr_t start, uintptr_t end,
		   enum umn_event event);

/**
 * umn_synchronize() - Wait for the walks and releases under way to finish.
 * @mm: the space.
 *
 * Returns after every walk in progress at the call has ended, every deferred
 * operation queued before the call has been applied, and every ->release()
 * due before the call has returned.  Use it before unloading the code that
 * callbacks live in.  Walks that begin meanwhile extend the wait while they
 * overlap in time with those, since it waits for a moment with no walk.
 *
 * Context: any thread, outside the callbacks of @mm and outside a range
 *          begun on @mm by this thread, and not while holding a lock that
 *          ->invalidate() or ->release() takes.  Waits.
 * Return: 0; -EINVAL if @mm is NULL; -EDEADLK from inside a callback of @mm
 *         or between range_start and range_end on it.
 */
int umn_synchronize(struct umn_mm *mm);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* UMN_UMN_H */
