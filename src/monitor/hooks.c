// SPDX-License-Identifier: MIT
/*
 * hooks — the wrappers libc's patched entry points lead to.
 *
 * Each wrapper works out which pages the call is about to take away or
 * change (SPEC §4), walks the process space over them with
 * umn_invalidate_range_start() on the calling thread, makes the system call
 * itself (or calls the other patcher it chains to), ends the walk, and
 * returns as libc's function would, errno included.
 *
 *   munmap, shmdt, brk shrinking, mmap MAP_FIXED   UNMAP
 *     (MAP_HUGETLB: the length rounded to the huge page)
 *   mremap moving or shrinking: the old pages      REMAP
 *     (and MREMAP_FIXED: the destination, UNMAP)
 *   madvise DONTNEED, FREE, REMOVE, DONTNEED_LOCKED,
 *     GUARD_INSTALL                                CLEAR
 *   mprotect, pkey_mprotect                        PROTECTION
 *
 * What may run here: this file runs inside free(), inside other wrappers
 * (a callback that frees memory) and inside signal handlers.  It calls no
 * libc function the monitor wraps, allocates nothing, and takes no lock of
 * its own; the core takes the process space's lock only around its own
 * bookkeeping, with signals blocked (UMN_MM_SIGNAL_SAFE), never across a
 * callback.  Calls the walks could not cover (a bad range) pass through: the
 * kernel refuses them too.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#include "monitor/monitor.h"
#include "sys/atomic.h"
#include "sys/raw_syscall.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_FREE
#define MADV_FREE 8
#endif
#ifndef MADV_REMOVE
#define MADV_REMOVE 9
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif
#ifndef MREMAP_MAYMOVE
#define MREMAP_MAYMOVE 1
#endif
#ifndef MREMAP_FIXED
#define MREMAP_FIXED 2
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef SYS_pkey_mprotect
#define SYS_pkey_mprotect 329
#endif

#define PAGE_MASK_LO 4095ul  /* the smallest page; larger ones are multiples */

/*
 * The process space, or NULL until the monitor publishes it.  Written once,
 * before any entry point is patched; pairs with the acquire in mon_mm().
 */
static struct umn_mm *_Atomic mon_space;

/*
 * glibc's break, which its brk() keeps and sbrk() reads: a wrapper that
 * replaces brk() must keep it too.  Weak: another libc may not have it.
 * In a static program too, where dlsym finds nothing.
 */
extern void *__curbrk __attribute__((weak));

void umn__monitor_set_mm(struct umn_mm *mm)
{
	/* Pairs with the acquire load in mon_mm(). */
	atomic_store_release(&mon_space, mm);
}

static struct umn_mm *mon_mm(void)
{
	return atomic_load_acquire(&mon_space);
}

/* A call as umn_monitor_call_name() reports it: range.owner points here. */
struct mon_call {
	char name[24];
};

/* Direct calls, then the same calls made through syscall(). */
static const struct mon_call mon_calls[2][HOOK_COUNT] = {
	{ { "munmap" }, { "mremap" }, { "madvise" }, { "mprotect" },
	  { "pkey_mprotect" }, { "brk" }, { "shmdt" }, { "mmap" },
	  { "syscall" } },
	{ { "syscall:munmap" }, { "syscall:mremap" }, { "syscall:madvise" },
	  { "syscall:mprotect" }, { "syscall:pkey_mprotect" },
	  { "syscall:brk" }, { "syscall:shmdt" }, { "syscall:mmap" },
	  { "syscall" } },
};

/* When sharing another copy's wrappers, the ranges they begin point into
 * that copy's table. */
static const void *_Atomic mon_shared_calls;

const void *umn__monitor_calls(void)
{
	return mon_calls;
}

void umn__monitor_share_calls(const void *calls)
{
	atomic_store_release(&mon_shared_calls, calls);
}

static const char *call_in(const struct mon_call *first, const void *owner)
{
	/* Compare as integers: range->owner may point anywhere. */
	if (!first || (uintptr_t)owner < (uintptr_t)first ||
	    (uintptr_t)owner >= (uintptr_t)(first + 2 * HOOK_COUNT))
		return NULL;
	return ((const struct mon_call *)owner)->name;
}

const char *umn_monitor_call_name(const struct umn_range *range)
{
	const char *name;

	if (!range)
		return NULL;
	name = call_in(&mon_calls[0][0], range->owner);
	/* Pairs with the release in umn__monitor_share_calls(). */
	return name ? name
		    : call_in(atomic_load_acquire(&mon_shared_calls),
			      range->owner);
}

/* A walk the wrapper may or may not have begun. */
struct mon_walk {
	struct umn_range range;
	bool begun;
};

static void mon_begin(struct mon_walk *w, bool via, enum umn__hook_id id,
		      enum umn_event event, uintptr_t start, uintptr_t end)
{
	struct umn_mm *mm = mon_mm();

	w->begun = false;
	start &= ~PAGE_MASK_LO;
	end = (end + PAGE_MASK_LO) & ~PAGE_MASK_LO;
	if (!mm || end <= start) /* nothing to cover, or the range wraps */
		return;
	w->range = (struct umn_range){
		.mm = mm, .start = start, .end = end, .event = event,
		.flags = UMN_RANGE_BLOCKABLE,
		.owner = (void *)(uintptr_t)&mon_calls[via][id],
	};
	w->begun = umn_invalidate_range_start(&w->range) == 0;
}

static void mon_end(struct mon_walk *w)
{
	if (w->begun)
		umn_invalidate_range_end(&w->range);
}

/* [start, start + len), or an empty range if it wraps. */
static uintptr_t mon_end_of(uintptr_t start, size_t len)
{
	return start + len < start ? start : start + len;
}

/*
 * The call itself, as libc's function returns it: -1 with *@err set, or the
 * result.  Through another patcher's function when the entry chained to
 * one (it sets errno), else the raw system call.
 */
static long mon_real(bool via, enum umn__hook_id id, long nr, long a, long b,
		     long c, long d, long e, long f, int *err)
{
	void *chain = umn__monitor_hooks[via ? HOOK_SYSCALL : id].chain;
	long ret;

	if (chain) {
		int saved = errno;

		if (via)
			ret = ((long (*)(long, ...))chain)(nr, a, b, c, d, e, f);
		else
			ret = ((long (*)(long, long, long, long, long, long))
				       chain)(a, b, c, d, e, f);
		if (id == HOOK_MMAP || id == HOOK_MREMAP || via)
			*err = ret == -1 ? errno : 0;
		else
			*err = (int)ret == -1 ? errno : 0;
		errno = saved;
		return *err ? -1 : ret;
	}
	ret = umn__sys6(nr, a, b, c, d, e, f);
	*err = umn__sys_error(ret);
	return *err ? -1 : ret;
}

/*
 * End the walks, then set errno: callbacks run between the system call and
 * the return, and whatever they do to errno is not the caller's.
 */
static long mon_return(long ret, int err, int saved_errno)
{
	errno = err ? err : saved_errno;
	return ret;
}

static long mon_munmap(bool via, uintptr_t addr, size_t len)
{
	int saved = errno, err;
	struct mon_walk w;

	mon_begin(&w, via, HOOK_MUNMAP, UMN_EVENT_UNMAP, addr,
		  mon_end_of(addr, len));
	long ret = mon_real(via, HOOK_MUNMAP, SYS_munmap, (long)addr,
			    (long)len, 0, 0, 0, 0, &err);
	mon_end(&w);
	return mon_return(ret, err, saved);
}

static long mon_madvise(bool via, uintptr_t addr, size_t len, int advice)
{
	int saved = errno, err;
	struct mon_walk w = { .begun = false };

	/* GUARD_INSTALL (Linux 6.13) throws the contents away too. */
	if (advice == MADV_DONTNEED || advice == MADV_FREE ||
	    advice == MADV_REMOVE || advice == MADV_DONTNEED_LOCKED ||
	    advice == MADV_GUARD_INSTALL)
		mon_begin(&w, via, HOOK_MADVISE, UMN_EVENT_CLEAR, addr,
			  mon_end_of(addr, len));
	long ret = mon_real(via, HOOK_MADVISE, SYS_madvise, (long)addr,
			    (long)len, advice, 0, 0, 0, &err);
	mon_end(&w);
	return mon_return(ret, err, saved);
}

static long mon_mprotect(bool via, enum umn__hook_id id, long nr,
			 uintptr_t addr, size_t len, int prot, int pkey)
{
	int saved = errno, err;
	struct mon_walk w;

	mon_begin(&w, via, id, UMN_EVENT_PROTECTION, addr,
		  mon_end_of(addr, len));
	long ret = mon_real(via, id, nr, (long)addr, (long)len, prot, pkey, 0,
			    0, &err);
	mon_end(&w);
	return mon_return(ret, err, saved);
}

/*
 * mremap: the old pages leave when the mapping moves (or may: MAYMOVE),
 * the tail leaves when it shrinks in place, and MREMAP_FIXED first unmaps
 * whatever was at the destination.  old_size 0 duplicates a shared mapping
 * and takes nothing away.
 */
static long mon_mremap(bool via, uintptr_t old, size_t old_size,
		       size_t new_size, int flags, uintptr_t new_addr)
{
	int saved = errno, err;
	struct mon_walk src = { .begun = false }, dst = { .begun = false };

	if (flags & MREMAP_FIXED)
		mon_begin(&dst, via, HOOK_MREMAP, UMN_EVENT_UNMAP, new_addr,
			  mon_end_of(new_addr, new_size));
	if (old_size && (flags & (MREMAP_MAYMOVE | MREMAP_FIXED)))
		mon_begin(&src, via, HOOK_MREMAP, UMN_EVENT_REMAP, old,
			  mon_end_of(old, old_size));
	else if (new_size < old_size)
		mon_begin(&src, via, HOOK_MREMAP, UMN_EVENT_REMAP,
			  mon_end_of(old, new_size), mon_end_of(old, old_size));
	long ret = mon_real(via, HOOK_MREMAP, SYS_mremap, (long)old,
			    (long)old_size, (long)new_size, flags,
			    (long)new_addr, 0, &err);
	mon_end(&src);
	mon_end(&dst);
	return mon_return(ret, err, saved);
}

static long mon_mmap(bool via, uintptr_t addr, size_t len, int prot, int flags,
		     int fd, long off)
{
	int saved, err;
	struct mon_walk w = { .begun = false };

	/* Most mmaps take nothing away: straight to the kernel. */
	if (!(flags & MAP_FIXED) || (flags & MAP_FIXED_NOREPLACE)) {
		long ret = mon_real(via, HOOK_MMAP, SYS_mmap, (long)addr,
				    (long)len, prot, flags, fd, off, &err);

		if (err)
			errno = err;
		return ret;
	}
	saved = errno;

	/*
	 * Spurious when nothing was mapped there: allowed, and cheaper than
	 * asking the kernel.  MAP_HUGETLB rounds the length up to its page
	 * size (in the flags, or 2 MiB, the usual default).
	 */
	if (flags & MAP_HUGETLB) {
		unsigned shift = ((unsigned)flags >> MAP_HUGE_SHIFT) & 0x3f;
		size_t huge = (size_t)1 << (shift ? shift : 21);

		len = len + huge - 1 < len ? len : (len + huge - 1) & ~(huge - 1);
	}
	mon_begin(&w, via, HOOK_MMAP, UMN_EVENT_UNMAP, addr, mon_end_of(addr, len));
	long ret = mon_real(via, HOOK_MMAP, SYS_mmap, (long)addr, (long)len,
			    prot, flags, fd, off, &err);
	mon_end(&w);
	return mon_return(ret, err, saved);
}

/*
 * shmdt takes only the address: the pages leaving are the segment's
 * mappings from there on, as /proc/self/maps shows them (gaps included;
 * spurious over a gap is allowed).
 */
static long mon_shmdt(bool via, uintptr_t addr)
{
	int saved = errno, err;
	struct mon_walk w = { .begun = false };
	struct umn__mapping m;

	if (umn__maps_shm(addr, &m) == 0)
		mon_begin(&w, via, HOOK_SHMDT, UMN_EVENT_UNMAP, addr, m.end);
	long ret = mon_real(via, HOOK_SHMDT, SYS_shmdt, (long)addr, 0, 0, 0, 0,
			    0, &err);
	mon_end(&w);
	return mon_return(ret, err, saved);
}

/*
 * brk: the pages between the new break and the old one leave when it
 * shrinks.  The kernel returns the break it ended with; libc's brk() keeps
 * it in __curbrk and fails with ENOMEM short of the request, while
 * syscall(SYS_brk) returns it as it is.
 */
static long mon_brk(bool via, uintptr_t addr)
{
	int saved = errno;
	struct mon_walk w = { .begun = false };
	uintptr_t old = (uintptr_t)umn__sys1(SYS_brk, 0);
	void *chain = umn__monitor_hooks[via ? HOOK_SYSCALL : HOOK_BRK].chain;
	long ret;

	if (addr && addr < old)
		mon_begin(&w, via, HOOK_BRK, UMN_EVENT_UNMAP, addr, old);
	if (chain) {
		ret = via ? ((long (*)(long, ...))chain)(SYS_brk, addr)
			  : ((int (*)(void *))chain)((void *)addr);
		saved = ret == -1 ? errno : saved;
		mon_end(&w);
		errno = saved;
		return ret;
	}
	uintptr_t now = (uintptr_t)umn__sys1(SYS_brk, addr);

	if (!via && &__curbrk)
		__curbrk = (void *)now;
	mon_end(&w);
	if (via)
		return mon_return((long)now, 0, saved);
	return mon_return(now < addr ? -1 : 0, now < addr ? ENOMEM : 0, saved);
}

/* The wrappers the entry points lead to, with libc's signatures. */
static int hook_munmap(void *addr, size_t len)
{
	return (int)mon_munmap(false, (uintptr_t)addr, len);
}

static void *hook_mremap(void *old, size_t old_size, size_t new_size,
			 int flags, ...)
{
	uintptr_t new_addr = 0;

	/* As glibc: the fifth argument is there with FIXED or DONTUNMAP. */
	if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) {
		va_list ap;

		va_start(ap, flags);
		new_addr = (uintptr_t)va_arg(ap, void *);
		va_end(ap);
	}
	return (void *)mon_mremap(false, (uintptr_t)old, old_size, new_size,
				  flags, new_addr);
}

static int hook_madvise(void *addr, size_t len, int advice)
{
	return (int)mon_madvise(false, (uintptr_t)addr, len, advice);
}

static int hook_mprotect(void *addr, size_t len, int prot)
{
	return (int)mon_mprotect(false, HOOK_MPROTECT, SYS_mprotect,
				 (uintptr_t)addr, len, prot, 0);
}

static int hook_pkey_mprotect(void *addr, size_t len, int prot, int pkey)
{
	return (int)mon_mprotect(false, HOOK_PKEY_MPROTECT, SYS_pkey_mprotect,
				 (uintptr_t)addr, len, prot, pkey);
}

static int hook_brk(void *addr)
{
	return (int)mon_brk(false, (uintptr_t)addr);
}

static int hook_shmdt(const void *addr)
{
	return (int)mon_shmdt(false, (uintptr_t)addr);
}

static void *hook_mmap(void *addr, size_t len, int prot, int flags, int fd,
		       off_t off)
{
	return (void *)mon_mmap(false, (uintptr_t)addr, len, prot, flags, fd,
				(long)off);
}

/*
 * syscall() with a number the monitor watches; the entry stub (entry.S)
 * passes every other number straight to the kernel, or to the patcher
 * syscall() chained to, without a C frame.
 */
long umn__monitor_syscall(long nr, long a, long b, long c, long d, long e,
			  long f);
long umn__monitor_syscall(long nr, long a, long b, long c, long d, long e,
			  long f)
{
	switch (nr) {
	case SYS_munmap:
		return mon_munmap(true, (uintptr_t)a, (size_t)b);
	case SYS_mremap:
		return mon_mremap(true, (uintptr_t)a, (size_t)b, (size_t)c,
				  (int)d, (uintptr_t)e);
	case SYS_madvise:
		return mon_madvise(true, (uintptr_t)a, (size_t)b, (int)c);
	case SYS_mprotect:
		return mon_mprotect(true, HOOK_MPROTECT, nr, (uintptr_t)a,
				    (size_t)b, (int)c, 0);
	case SYS_pkey_mprotect:
		return mon_mprotect(true, HOOK_PKEY_MPROTECT, nr, (uintptr_t)a,
				    (size_t)b, (int)c, (int)d);
	case SYS_brk:
		return mon_brk(true, (uintptr_t)a);
	case SYS_shmdt:
		return mon_shmdt(true, (uintptr_t)a);
	case SYS_mmap:
		return mon_mmap(true, (uintptr_t)a, (size_t)b, (int)c, (int)d,
				(int)e, f);
	}
	int err;
	long ret = mon_real(true, HOOK_SYSCALL, nr, a, b, c, d, e, f, &err);

	return mon_return(ret, err, errno);
}

/* entry.S: syscall() failed; set errno from the kernel's -errno. */
long umn__monitor_syscall_error(long raw);
long umn__monitor_syscall_error(long raw)
{
	errno = (int)-raw;
	return -1;
}

struct umn__hook umn__monitor_hooks[HOOK_COUNT] = {
	[HOOK_MUNMAP] = { "munmap", SYS_munmap, NULL, (void *)hook_munmap, NULL },
	[HOOK_MREMAP] = { "mremap", SYS_mremap, NULL, (void *)hook_mremap, NULL },
	[HOOK_MADVISE] = { "madvise", SYS_madvise, NULL, (void *)hook_madvise,
			   NULL },
	[HOOK_MPROTECT] = { "mprotect", SYS_mprotect, NULL,
			    (void *)hook_mprotect, NULL },
	[HOOK_PKEY_MPROTECT] = { "pkey_mprotect", SYS_pkey_mprotect, NULL,
				 (void *)hook_pkey_mprotect, NULL },
	[HOOK_BRK] = { "brk", SYS_brk, NULL, (void *)hook_brk, NULL },
	[HOOK_SHMDT] = { "shmdt", SYS_shmdt, NULL, (void *)hook_shmdt, NULL },
	[HOOK_MMAP] = { "mmap", SYS_mmap, NULL, (void *)hook_mmap, NULL },
	/* The arch code supplies the stub syscall()'s entry leads to. */
	[HOOK_SYSCALL] = { "syscall", -1, NULL, NULL, NULL },
};

/*
 * Find libc's own entry points: from the libc the process loaded, not
 * whatever the global scope resolves first (a sanitizer's interceptor, an
 * LD_PRELOAD'ed wrapper).  In a static program, the ones linked in.
 */
void umn__monitor_hooks_resolve(void *libc)
{
	static void *const linked[HOOK_COUNT] = {
		[HOOK_MUNMAP] = (void *)munmap,
		[HOOK_MREMAP] = (void *)mremap,
		[HOOK_MADVISE] = (void *)madvise,
		[HOOK_MPROTECT] = (void *)mprotect,
		[HOOK_PKEY_MPROTECT] = (void *)pkey_mprotect,
		[HOOK_BRK] = (void *)brk,
		[HOOK_SHMDT] = (void *)shmdt,
		[HOOK_MMAP] = (void *)mmap,
		[HOOK_SYSCALL] = (void *)syscall,
	};

	for (int i = 0; i < HOOK_COUNT; i++)
		umn__monitor_hooks[i].libc =
			libc ? dlsym(libc, umn__monitor_hooks[i].name) : linked[i];
}
