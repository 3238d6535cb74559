// SPDX-License-Identifier: MIT
/*
 * process — the process space: made and fed once, on first use.
 *
 * States: not installed → installed (a space, fed by the chosen source, or
 * shared with another copy of umn) or failed (NULL and an errno, for good).
 * The first caller installs under install_lock; `done` publishes the result
 * to every later caller, which then takes no lock.
 *
 * Order of the install: make the space, give it to the wrappers, then patch
 * libc.  A thread that reaches a wrapper the moment its entry is patched
 * finds the space already there.  A failed patch leaves libc as it was and
 * the wrappers without a space.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/export.h"
#include "monitor/monitor.h"
#include "sys/atomic.h"

#ifndef UMN_VERSION
#define UMN_VERSION "0"
#endif

static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
/* 0 until the install is over; pairs with the acquire in umn_mm_process()
 * and umn_monitor_query().  The fields below are written before it, under
 * install_lock, and never after. */
static _Atomic int done;
static struct umn_mm *process_mm;
static int install_errno;
static struct umn_monitor_info info;

void umn__why(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/* Two copies of umn share wrappers only if their cores are the same. */
static void monitor_abi(char abi[64])
{
	snprintf(abi, 64, "umn-%s-p%d-mm%zu-sub%zu-range%zu", UMN_VERSION,
		 UMN__CORE_PROTOCOL, umn__mm_size(),
		 sizeof(struct umn_interval), sizeof(struct umn_range));
}

/*
 * What needs the dynamic loader is done when this object is loaded, not at
 * install: a fork() while another thread is inside the loader leaves its
 * lock held in the child, so a child that installs must not need it.
 *
 * - libc's entry points, looked up in the libc the process loaded (not
 *   whatever the global scope resolves first: a sanitizer's interceptor);
 * - this object made RTLD_NODELETE: once installed, the wrappers jump into
 *   its code for the rest of the process's life, so it must never be
 *   unloaded (dlclose of a libumn.so, or of a library umn is linked into
 *   statically).
 */
static bool loaded; /* monitor_load() ran; written before any thread */

static void monitor_load_now(void)
{
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	Dl_info dl;

	umn__monitor_hooks_resolve(libc);
	if (libc)
		dlclose(libc);
	if (dladdr((void *)umn_mm_process, &dl) && dl.dli_fname)
		dlopen(dl.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
	loaded = true;
}

__attribute__((constructor)) static void monitor_load(void)
{
	if (!loaded)
		monitor_load_now();
}

/*
 * The space the child of a fork() must start over: set before the patch
 * (a fork may come while the install is under way) and kept after a
 * failed one.  Written under install_lock, read by the fork handler on the
 * only thread of the child.
 */
static struct umn_mm *fork_mm;

static void fork_child(void)
{
	if (fork_mm)
		umn_mm_atfork(fork_mm, UMN_FORK_CHILD);
}

static enum umn_monitor_source requested_source(const char *env)
{
	if (!env || !*env || !strcmp(env, "patch"))
		return UMN_MONITOR_PATCH;
	if (!strcmp(env, "off"))
		return UMN_MONITOR_OFF;
	if (!strcmp(env, "uffd"))
		return UMN_MONITOR_UFFD;
	return UMN_MONITOR_NONE;
}

/* Patch libc to feed @mm.  Returns the space to use, or NULL with -errno. */
static struct umn_mm *install_patch(struct umn_mm *mm, int *err)
{
	struct umn__monitor_shared mine = { .mm = mm, .info = &info,
					    .calls = umn__monitor_calls() };
	const struct umn__monitor_shared *shared;

	/* Another constructor of the same object may come first (a preload
	 * that installs from its own): then look up here. */
	if (!loaded)
		monitor_load_now();
	memcpy(mine.magic, UMN__SHARED_MAGIC, sizeof(UMN__SHARED_MAGIC));
	monitor_abi(mine.abi);
	umn__monitor_set_mm(mm);
	*err = umn__arch_patch(&mine, &shared, info.reason, sizeof(info.reason));
	if (shared && shared->calls == umn__monitor_calls()) {
		/*
		 * Our own island: this is the child of a fork() that came
		 * after the parent had patched, before its install returned.
		 * The space is the one the parent published, emptied by the
		 * fork handler; the wrappers go on feeding it.
		 */
		umn__monitor_set_mm(shared->mm);
		return shared->mm;
	}
	if (*err || shared)
		umn__monitor_set_mm(NULL);
	if (*err)
		return NULL;
	if (shared) {
		info.shared = true;
		umn__monitor_share_calls(shared->calls);
		return shared->mm;
	}
	for (int i = 0; i < HOOK_COUNT; i++)
		info.chained += umn__monitor_hooks[i].chain != NULL;
	return mm;
}

static void install(void)
{
	const char *env = getenv("UMN_MONITOR");
	struct umn_mm *mm, *use = NULL;
	int err = 0;

	info.requested = requested_source(env);
	if (info.requested == UMN_MONITOR_UFFD) {
		umn__why(info.reason, sizeof(info.reason),
			 "UMN_MONITOR=uffd: the userfaultfd source is not "
			 "implemented yet (patch or off)\n");
		err = -ENOTSUP;
		goto out;
	}
	if (info.requested == UMN_MONITOR_NONE) {
		umn__why(info.reason, sizeof(info.reason),
			 "UMN_MONITOR=%s: unknown source (patch or off)\n", env);
		err = -EINVAL;
		goto out;
	}
	mm = umn_mm_new_flags(UMN_MM_SIGNAL_SAFE);
	if (!mm) {
		umn__why(info.reason, sizeof(info.reason),
			 "no memory for the process space\n");
		err = -ENOMEM;
		goto out;
	}
	/*
	 * Pinned before the wrappers can see it.  Kept even if the patch
	 * fails or another copy's space is used instead: a patch that failed
	 * part-way was undone, but a thread may have entered a wrapper
	 * meanwhile (one small allocation, once).
	 */
	umn__mm_pin(mm);
	if (info.requested == UMN_MONITOR_OFF) {
		umn__why(info.reason, sizeof(info.reason),
			 "UMN_MONITOR=off: nothing feeds the process space\n");
		use = mm;
	}
	/* Before the wrappers can reach @mm: a fork from now on must find it
	 * to empty it in the child. */
	fork_mm = mm;
	if (pthread_atfork(NULL, NULL, fork_child))
		umn__why(info.reason, sizeof(info.reason),
			 "pthread_atfork failed: a forked child would inherit "
			 "the parent's subscriptions\n");
	if (info.requested == UMN_MONITOR_PATCH)
		use = install_patch(mm, &err);
	/* Another copy's space: that copy empties it itself. */
	fork_mm = use && !info.shared ? use : NULL;
	process_mm = use;
	if (use)
		info.source = info.requested;
out:
	info.error = -err;
	install_errno = -err;
}

/*
 * A fork() while another thread installs copies install_lock held by a
 * thread the child does not have: the child starts with it free.  If the
 * install was part-way, the child's own install then finds entry points
 * patched and others not, and fails with ENOEXEC instead of hanging.
 */
static void install_lock_child(void)
{
	pthread_mutex_init(&install_lock, NULL);
}

static void install_lock_once(void)
{
	pthread_atfork(NULL, NULL, install_lock_child);
}

struct umn_mm *umn_mm_process(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	/* Pairs with the release store below. */
	if (!atomic_load_acquire(&done)) {
		pthread_once(&once, install_lock_once);
		pthread_mutex_lock(&install_lock);
		if (!atomic_load_relaxed(&done)) { /* install_lock held */
			install();
			atomic_store_release(&done, 1);
		}
		pthread_mutex_unlock(&install_lock);
	}
	if (!process_mm)
		errno = install_errno;
	return process_mm;
}

int umn_monitor_query(struct umn_monitor_info *out)
{
	if (!out)
		return -EINVAL;
	/* Pairs with the release store in umn_mm_process(). */
	if (!atomic_load_acquire(&done)) {
		memset(out, 0, sizeof(*out));
		snprintf(out->reason, sizeof(out->reason),
			 "not installed: umn_mm_process() was not called\n");
		return 0;
	}
	*out = info;
	return 0;
}
