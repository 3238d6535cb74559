// SPDX-License-Identifier: MIT
/*
 * mm — a space's life, its lock and its waiters, and the list of walks and
 * callbacks the calling thread is inside of.
 *
 * Waiting: read_begin, remove and synchronize wait on the space's condition
 * variable for seq to leave a period or for a release batch to end.  Whoever
 * changes either broadcasts while holding the lock, and only when someone
 * waits, so the walks pay nothing for waiters that do not exist.  The lock is
 * never held across a user callback (core.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/export.h"

/*
 * The walks (range_start .. range_end) and ->release() calls this thread is
 * inside of, innermost first.  remove and synchronize on a space found here
 * would wait for their own caller, so they return -EDEADLK instead.
 *
 * initial-exec: a dlopen'ed libumn must not have glibc allocate its TLS
 * block lazily on first use, which could be inside a free() or munmap hook.
 */
static _Thread_local struct umn_range *thread_frames
	__attribute__((tls_model("initial-exec")));

void umn__thread_enter(struct umn_range *frame)
{
	frame->umn__prev = thread_frames;
	frame->umn__thread = &thread_frames; /* unique per live thread */
	thread_frames = frame;
}

bool umn__thread_has(const struct umn_range *frame)
{
	for (const struct umn_range *f = thread_frames; f; f = f->umn__prev)
		if (f == frame)
			return true;
	return false;
}

const void *umn__thread_self(void)
{
	return &thread_frames;
}

bool umn__thread_leave(struct umn_range *frame)
{
	struct umn_range **p = &thread_frames;

	/* Usually the innermost; a caller may end nested ranges out of order. */
	while (*p && *p != frame)
		p = &(*p)->umn__prev;
	if (!*p)
		return false;
	*p = frame->umn__prev;
	frame->umn__thread = NULL;
	return true;
}

bool umn__thread_inside(const struct umn_mm *mm)
{
	for (const struct umn_range *f = thread_frames; f; f = f->umn__prev)
		if (f->mm == mm)
			return true;
	return false;
}

/*
 * UMN_MM_SIGNAL_SAFE: the holder blocks signals from before it takes the
 * lock until after it drops it, so no signal handler on this thread can
 * begin a walk that would wait for the lock its own thread holds.  Left
 * open: glibc's internal signals (which pthread_sigmask keeps open anyway)
 * and the synchronous faults, whose handlers would otherwise never run and
 * the process be killed instead; neither can arrive from umn's own code.
 */
static void mm_block_signals(sigset_t *old)
{
	sigset_t all;

	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGFPE);
	int err = pthread_sigmask(SIG_BLOCK, &all, old);

	UMN_BUG_ON(err);
}

/* Drop this thread's frames of @mm: a forked child's space starts over. */
void umn__thread_forget(const struct umn_mm *mm)
{
	struct umn_range **p = &thread_frames;

	while (*p) {
		if ((*p)->mm == mm)
			*p = (*p)->umn__prev; /* its range_end finds nothing */
		else
			p = &(*p)->umn__prev;
	}
}

void umn__mm_lock(struct umn_mm *mm)
{
	sigset_t old;

	if (mm->flags & UMN_MM_SIGNAL_SAFE)
		mm_block_signals(&old);
	int err = pthread_mutex_lock(&mm->lock);

	UMN_BUG_ON(err);
	if (mm->flags & UMN_MM_SIGNAL_SAFE)
		mm->held_mask = old;
}

void umn__mm_unlock(struct umn_mm *mm)
{
	/* Read before unlocking: once unlocked, @mm may be freed (a
	 * synchronize followed by umn_mm_free on another thread). */
	bool signal_safe = mm->flags & UMN_MM_SIGNAL_SAFE;
	sigset_t old;

	if (signal_safe)
		old = mm->held_mask;
	int err = pthread_mutex_unlock(&mm->lock);

	UMN_BUG_ON(err);
	if (signal_safe)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/*
 * Sleep until a broadcast; the caller re-checks its condition.  Others hold
 * the lock while this thread sleeps, so its saved mask goes to the stack.
 */
void umn__mm_wait_locked(struct umn_mm *mm)
{
	sigset_t mine = mm->held_mask;

	mm->waiters++;
	int err = pthread_cond_wait(&mm->wake, &mm->lock);

	UMN_BUG_ON(err);
	mm->waiters--;
	mm->held_mask = mine;
}

void umn__mm_wake_locked(struct umn_mm *mm)
{
	if (mm->waiters)
		pthread_cond_broadcast(&mm->wake);
}

/* If walks are in progress, wait until their period has ended. */
void umn__mm_wait_period_locked(struct umn_mm *mm)
{
	unsigned long s = atomic_load_relaxed(&mm->seq); /* lock held */

	if (!(s & 1))
		return;
	while (atomic_load_relaxed(&mm->seq) == s)
		umn__mm_wait_locked(mm);
}

struct umn_mm *umn_mm_new_flags(unsigned flags)
{
	if (flags & ~UMN_MM_SIGNAL_SAFE) {
		errno = EINVAL;
		return NULL;
	}
	/* Aligned for the walk slots, each on a cache line of its own. */
	struct umn_mm *mm = aligned_alloc(_Alignof(struct umn_mm), sizeof(*mm));

	if (!mm)
		return NULL; /* aligned_alloc set ENOMEM */
	memset(mm, 0, sizeof(*mm));
	mm->flags = flags;
	if (pthread_mutex_init(&mm->lock, NULL)) {
		free(mm);
		errno = ENOMEM;
		return NULL;
	}
	if (pthread_cond_init(&mm->wake, NULL)) {
		pthread_mutex_destroy(&mm->lock);
		free(mm);
		errno = ENOMEM;
		return NULL;
	}
	/* Even: idle.  Subscriptions inserted while idle get seq - 1, odd. */
	atomic_init(&mm->seq, 2);
	return mm;
}

struct umn_mm *umn_mm_new(void)
{
	return umn_mm_new_flags(0);
}

size_t umn__mm_size(void)
{
	return sizeof(struct umn_mm);
}

void umn__mm_pin(struct umn_mm *mm)
{
	mm->flags |= UMN__MM_PINNED;
}

int umn_mm_free(struct umn_mm *mm)
{
	if (!mm)
		return -EINVAL;
	if (mm->flags & UMN__MM_PINNED)
		return -EBUSY;
	umn__mm_lock(mm);
	bool busy = mm->root || mm->deferred_head || umn__walks_locked(mm) ||
		    mm->batches || mm->waiters;

	umn__mm_unlock(mm);
	if (busy)
		return -EBUSY;
	pthread_cond_destroy(&mm->wake);
	pthread_mutex_destroy(&mm->lock);
	free(mm);
	return 0;
}

/*
 * The child of fork(): one thread, this one.  The parent's other threads,
 * their walks and release batches do not exist here, and any of them may
 * have been half-way through changing the tree when the process was copied:
 * nothing of it is read.  The space starts over idle and empty; the
 * parent's subscriptions, still marked inserted in the child's copy of their
 * memory, are recognised as not in it (UMN__MM_FORKED, interval.c).  A walk
 * this thread had begun (fork from a callback) ends without touching it.
 */
static void mm_fork_child(struct umn_mm *mm)
{
	unsigned flags = mm->flags | UMN__MM_FORKED;

	umn__thread_forget(mm);
	memset(mm, 0, sizeof(*mm));
	mm->flags = flags;
	atomic_init(&mm->seq, 2);
	int err = pthread_mutex_init(&mm->lock, NULL) ||
		  pthread_cond_init(&mm->wake, NULL);

	UMN_BUG_ON(err);
}

void umn_mm_atfork(struct umn_mm *mm, enum umn_fork_phase phase)
{
	/*
	 * Nothing is held across fork(): a thread inside malloc holds an arena
	 * lock that fork() waits for, and its munmap may need this space's
	 * lock, so holding it here would deadlock them.  The child reads
	 * nothing the parent's threads may have been changing instead.
	 */
	switch (phase) {
	case UMN_FORK_PREPARE:
	case UMN_FORK_PARENT:
		break;
	case UMN_FORK_CHILD:
		mm_fork_child(mm);
		break;
	default:
		UMN_FATAL_MISUSE("umn_mm_atfork: unknown phase");
	}
}
