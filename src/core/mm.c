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

void umn__mm_lock(struct umn_mm *mm)
{
	int err = pthread_mutex_lock(&mm->lock);

	UMN_BUG_ON(err);
}

void umn__mm_unlock(struct umn_mm *mm)
{
	int err = pthread_mutex_unlock(&mm->lock);

	UMN_BUG_ON(err);
}

/* Sleep until a broadcast; the caller re-checks its condition. */
void umn__mm_wait_locked(struct umn_mm *mm)
{
	mm->waiters++;
	int err = pthread_cond_wait(&mm->wake, &mm->lock);

	UMN_BUG_ON(err);
	mm->waiters--;
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

struct umn_mm *umn_mm_new(void)
{
	/* Aligned for the walk slots, each on a cache line of its own. */
	struct umn_mm *mm = aligned_alloc(_Alignof(struct umn_mm), sizeof(*mm));

	if (!mm)
		return NULL; /* aligned_alloc set ENOMEM */
	memset(mm, 0, sizeof(*mm));
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

int umn_mm_free(struct umn_mm *mm)
{
	if (!mm)
		return -EINVAL;
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

struct umn_mm *umn_mm_process(void)
{
	errno = ENOSYS;
	return NULL;
}
