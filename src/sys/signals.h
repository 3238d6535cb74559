/* SPDX-License-Identifier: MIT */
/*
 * Blocking signals around a lock that a signal handler could want: the
 * holder blocks them from before it takes the lock until after it drops it,
 * so no handler on its own thread can begin work that would wait for that
 * lock.  Left open: glibc's internal signals (pthread_sigmask keeps them
 * open anyway) and the synchronous faults, whose handlers would otherwise
 * never run and the process be killed instead; neither comes from umn's
 * own code.  Used by the core (UMN_MM_SIGNAL_SAFE) and the mirror
 * (UMN_MIRROR_SIGNAL_SAFE).
 */
#ifndef UMN_SYS_SIGNALS_H
#define UMN_SYS_SIGNALS_H

#include <pthread.h>
#include <signal.h>

#include "sys/debug.h"

/* Block what can be blocked; the mask before goes to @old. */
static inline void umn__block_signals(sigset_t *old)
{
	sigset_t all;
	int err;

	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGFPE);
	err = pthread_sigmask(SIG_BLOCK, &all, old);
	UMN_BUG_ON(err);
}

#endif
