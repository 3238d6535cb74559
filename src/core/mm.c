// SPDX-License-Identifier: MIT
/*
 * mm — a space's life, its lock and its waiters, and the list of walks and
 * callbacks the calling thread is inside of.
 *
 * Waiting: read_begin, remove and synchronize sleep, outside the lock, until
 * seq leaves a period or a release batch ends.  Whoever changes either wakes
 * the sleepers while holding the lock, and only when there are some, so the
 * walks pay nothing for waiters that do not exist.  The lock is
 * never held across a user callback (core.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/export.h"
#include "sys/signals.h"

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

/* UMN_MM_SIGNAL_SAFE: see sys/signals.h. */

/* Drop this thread's frames of @mm: a forked child's space starts over. */
static void thread_forget(const struct umn_mm *mm)
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
		umn__block_signals(&old);
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
 * Sleep until a wake; the caller re-checks its condition.  The sleep is on
 * a semaphore of the sleeper's own, outside the lock and with the caller's
 * signal mask: a thread asleep in remove or synchronize still takes the
 * signals a GC's stop-the-world or a signal-based RCU sends it, and their
 * handlers may walk the space, since the lock is free.  Not a cancellation
 * point: a thread cancelled here would leave the space's bookkeeping (and,
 * with a condition variable, its lock) behind.
 */
void umn__mm_wait_locked(struct umn_mm *mm)
{
	struct umn__waiter me;
	int saved_errno = errno, cancel;

	UMN_BUG_ON(sem_init(&me.sem, 0, 0));
	me.next = mm->sleepers;
	mm->sleepers = &me;
	mm->waiters++;
	umn__mm_unlock(mm);
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	while (sem_wait(&me.sem) && errno == EINTR)
		;
	pthread_setcancelstate(cancel, NULL);
	umn__mm_lock(mm);
	/* The waker took us off the list before posting, and touches @me no
	 * more: it may go. */
	mm->waiters--;
	sem_destroy(&me.sem);
	errno = saved_errno;
}

void umn__mm_wake_locked(struct umn_mm *mm)
{
	struct umn__waiter *w = mm->sleepers, *next;

	mm->sleepers = NULL;
	for (; w; w = next) {
		next = w->next; /* before the post: then @w may be gone */
		sem_post(&w->sem);
	}
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
	pthread_mutex_destroy(&mm->lock);
	free(mm);
	return 0;
}

/*
 * In a forked child (UMN__MM_FORKED), is @sub one the parent inserted, which
 * the child's space does not know?  Then it is not inserted here.
 */
bool umn__sub_inherited_locked(struct umn_mm *mm,
			       const struct umn_interval *sub)
{
	if (!(mm->flags & UMN__MM_FORKED))
		return false;
	if (umn__sub_in_tree(umn__sub_state(sub)))
		return !umn__itree_contains(mm->root, sub);
	for (const struct umn_interval *p = mm->deferred_head; p;
	     p = (const struct umn_interval *)atomic_load_relaxed(&p->umn__seq))
		if (p == sub)
			return false;
	return true;
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

	thread_forget(mm);
	memset(mm, 0, sizeof(*mm));
	mm->flags = flags;
	atomic_init(&mm->seq, 2);
	int err = pthread_mutex_init(&mm->lock, NULL);

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
