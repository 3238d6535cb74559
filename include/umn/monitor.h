/* SPDX-License-Identifier: MIT */
/*
 * umn/monitor.h — the process monitor: what feeds umn_mm_process().
 *
 * umn_mm_process() (umn.h) installs the monitor on first use.  The monitor
 * rewrites the entry points of libc's munmap, mremap, madvise, mprotect,
 * pkey_mprotect, brk, shmdt, mmap and syscall so that each call brackets the
 * real system call with umn_invalidate_range_start() and
 * umn_invalidate_range_end() on the calling thread:
 *
 *   munmap, shmdt, brk shrinking, mmap MAP_FIXED   UMN_EVENT_UNMAP
 *   mremap moving or shrinking (the old pages)     UMN_EVENT_REMAP
 *   madvise DONTNEED, FREE, REMOVE, DONTNEED_LOCKED UMN_EVENT_CLEAR
 *   mprotect, pkey_mprotect                         UMN_EVENT_PROTECTION
 *
 * libc's own callers (free, realloc, malloc_trim, thread-stack reuse) reach
 * the same entry points, so they are seen too.  Not seen: calls the dynamic
 * loader makes with its own code (loading and unloading libraries), and
 * system calls made without libc (inline `syscall` instructions).
 *
 * The environment variable UMN_MONITOR picks the source, read once at
 * install: "patch" (the default) or "off" (the process space exists but
 * nothing feeds it).  "uffd", the userfaultfd source that will also see
 * unmaps no libc call makes, is not implemented yet: ENOTSUP.
 */
#ifndef UMN_MONITOR_H
#define UMN_MONITOR_H

#include <umn/umn.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

enum umn_monitor_source {
	UMN_MONITOR_NONE = 0,   /* not installed, or the install failed */
	UMN_MONITOR_OFF,        /* UMN_MONITOR=off: installed, feeds nothing */
	UMN_MONITOR_PATCH,      /* libc entry points patched in place */
	UMN_MONITOR_UFFD,       /* userfaultfd: not implemented yet */
};

struct umn_monitor_info {
	enum umn_monitor_source source;    /* what feeds the space now */
	enum umn_monitor_source requested; /* what UMN_MONITOR asked for */
	int error;          /* errno of a failed install, else 0 */
	unsigned chained;   /* entry points chained to another patcher */
	bool shared;        /* wrappers of another umn copy are used */
	char reason[1024];  /* one line per entry point, or what failed */
};

/**
 * umn_monitor_query() - Which source feeds the process space, and why.
 * @info: filled in.
 *
 * Before umn_mm_process() was first called, @info->source is
 * UMN_MONITOR_NONE and @info->reason says so.  After a failed install it
 * is UMN_MONITOR_NONE with @info->error and @info->reason saying what
 * failed (for example which entry point did not look as expected).  After
 * a successful one, @info->reason has a line per entry point saying how it
 * was hooked: patched, chained to another patcher's jump, or shared with
 * another copy of umn in the process.
 *
 * Context: any thread.  Never blocks.
 * Return: 0, or -EINVAL if @info is NULL.
 */
int umn_monitor_query(struct umn_monitor_info *info);

/**
 * umn_monitor_call_name() - The libc call an invalidation came from.
 * @range: the range passed to ->invalidate().
 *
 * For a range the monitor began, the name of the intercepted libc function
 * ("munmap", "mremap", "madvise", "mprotect", "pkey_mprotect", "brk",
 * "shmdt", "mmap"), prefixed with "syscall:" when it came through libc's
 * syscall().
 *
 * Context: any thread, including inside ->invalidate().
 * Return: a static string, or NULL if @range did not come from the monitor.
 */
const char *umn_monitor_call_name(const struct umn_range *range);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* UMN_MONITOR_H */
