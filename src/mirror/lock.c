// SPDX-License-Identifier: MIT
/*
 * lock — the mirror lock, signal-safe on request.
 *
 * ->invalidate() takes the mirror lock, and an invalidation may begin in a
 * signal handler (a handler that munmaps memory the device mirrors, with
 * the process monitor).  If the handler interrupted its own thread while
 * that thread held the mirror lock (a device access, a fault's install),
 * the walk would wait for the thread it runs on:
 *
 *   device thread                      its signal handler
 *   umn__mirror_lock(m)
 *     <signal>  ------------------->   munmap(mirrored page)
 *                                        range_start -> ->invalidate()
 *                                          umn__mirror_lock(m)   waits forever
 *
 * With UMN_MIRROR_SIGNAL_SAFE the holder blocks signals from before it
 * takes the lock until after it drops it, as the core does for a space
 * made with UMN_MM_SIGNAL_SAFE, so the handler runs once the lock is free.
 * Left open, as there: the synchronous faults, whose handlers would
 * otherwise never run (the process is killed instead), and which nothing
 * under the lock raises.  It costs two sigprocmask calls per lock, which
 * every device access takes once a page: off by default.  held_mask is
 * written by the holder after it takes the lock, read by it before it
 * drops it: the lock orders them.
 */
#include <signal.h>

#include "mirror/mirror.h"
#include "sys/debug.h"
#include "sys/signals.h"

void umn__mirror_lock(struct umn_mirror *m)
{
	sigset_t old;
	int err;

	if (m->signal_safe)
		umn__block_signals(&old);
	err = pthread_mutex_lock(&m->lock);
	UMN_BUG_ON(err);
	if (m->signal_safe)
		m->held_mask = old;
}

/* For a walk that may not block: false, and nothing held, if taken. */
bool umn__mirror_trylock(struct umn_mirror *m)
{
	sigset_t old;

	if (m->signal_safe)
		umn__block_signals(&old);
	if (pthread_mutex_trylock(&m->lock) == 0) {
		if (m->signal_safe)
			m->held_mask = old;
		return true;
	}
	if (m->signal_safe)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	return false;
}

void umn__mirror_unlock(struct umn_mirror *m)
{
	sigset_t old;
	int err;

	if (m->signal_safe)
		old = m->held_mask;
	err = pthread_mutex_unlock(&m->lock);
	UMN_BUG_ON(err);
	if (m->signal_safe)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
}
