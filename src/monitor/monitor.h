/* SPDX-License-Identifier: MIT */
/*
 * monitor.h — the monitor's parts and the contract between them.
 *
 *   process.c   umn_mm_process(): picks the source, installs it once, the
 *               fork handlers, umn_monitor_query()
 *   hooks.c     the wrappers: each brackets the real system call with a
 *               walk of the process space on the calling thread
 *   maps.c      /proc/self/maps, read with raw system calls
 *   arch/<arch>/patch.c   rewrites libc's entry points to reach the
 *               wrappers (x86-64), or says it cannot (generic)
 *
 * Everything a wrapper runs may run inside free(), inside a signal handler
 * or inside another wrapper: no libc call that the monitor wraps, no
 * allocation, no lock but the process space's own (which blocks signals,
 * UMN_MM_SIGNAL_SAFE).
 */
#ifndef UMN_MONITOR_MONITOR_H
#define UMN_MONITOR_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <umn/monitor.h>

/* The entry points, in the order of umn__monitor_hooks[]. */
enum umn__hook_id {
	HOOK_MUNMAP,
	HOOK_MREMAP,
	HOOK_MADVISE,
	HOOK_MPROTECT,
	HOOK_PKEY_MPROTECT,
	HOOK_BRK,
	HOOK_SHMDT,
	HOOK_MMAP,
	HOOK_SYSCALL,
	HOOK_COUNT
};

/*
 * One entry point.  The arch code fills in `chain` when the entry already
 * jumped to another patcher: the wrapper then calls `chain` (with libc's
 * signature) where it would make the system call, so the other patcher
 * keeps seeing every call.  Written before the entry is patched and never
 * again, so wrappers read it without ordering.
 */
struct umn__hook {
	const char *name;       /* libc's symbol */
	long nr;                /* its system call, or -1 (syscall) */
	void *libc;             /* libc's entry point */
	void *wrapper;          /* where the patched entry leads */
	void *chain;            /* another patcher's function, or NULL */
};

extern struct umn__hook umn__monitor_hooks[HOOK_COUNT];

/* hooks.c */
void umn__monitor_hooks_resolve(void *libc_handle);
void umn__monitor_set_mm(struct umn_mm *mm);
const void *umn__monitor_calls(void);          /* this copy's call names */
void umn__monitor_share_calls(const void *calls); /* the sharer's */

/*
 * What another copy of umn finds at the start of the page its wrappers are
 * reached through, so that it uses them and their space instead of
 * patching again.  `abi` must match exactly.
 */
#define UMN__SHARED_MAGIC "umn-monitor-v2"
struct umn__monitor_shared {
	char magic[16];
	char abi[64];
	struct umn_mm *mm;
	const struct umn_monitor_info *info;
	const void *calls;      /* its umn_monitor_call_name() table */
};

/*
 * The arch contract.  Patch every hook in umn__monitor_hooks[] or none.
 * On success returns 0 and either patched (set *@shared = NULL) or found
 * another umn copy's wrappers on every entry (set *@shared to its page).
 * On failure returns a negative errno and nothing is changed.  Either way
 * appends to @why (a line per entry point, or what failed).
 */
int umn__arch_patch(const struct umn__monitor_shared *mine,
		    const struct umn__monitor_shared **shared,
		    char *why, size_t why_len);

/* maps.c, from /proc/self/maps: 0, or -errno (ENOENT: no such mapping). */
struct umn__mapping {
	uintptr_t start, end;
	unsigned prot;          /* PROT_* of the first mapping */
};
/* The mapping containing @addr. */
int umn__maps_find(uintptr_t addr, struct umn__mapping *out);
/* What shmdt(@addr) would detach: from the first System V segment mapping
 * ending after @addr to the end of that segment's last mapping. */
int umn__maps_shm(uintptr_t addr, struct umn__mapping *out);

/* A formatted line into a fixed buffer: no allocation. */
void umn__why(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* UMN_MONITOR_MONITOR_H */
