/* SPDX-License-Identifier: MIT */
/*
 * The device mirror's private state.
 *
 * One lock, umn_mirror.lock, the "driver lock" of the seed (lock.c, which
 * blocks signals while it is held on request): every
 * ->invalidate() of a region takes it, and so does every device access and
 * the install step of a device fault.  It guards the region list, the
 * region pool, every region's fields, the software device's page table and
 * its free entries, and the counters.  Nothing under it calls
 * umn_read_begin() (which may wait for an ->invalidate() that needs it) or
 * allocates (malloc may grow a heap with mprotect, whose invalidation would
 * need it again); allocation happens before taking it.
 *
 * A region's states, all under the lock:
 *
 *   FREE  in the pool (m->pool); not inserted, or released.
 *   LIVE  inserted (perhaps deferred), on m->regions, [start, end) is the
 *         range its last insert or update asked for.  Device faults inside
 *         it use it.
 *   DEAD  put (or being removed by umn_mirror_free): off m->regions,
 *         waiting for ->release(), which moves it to FREE.
 *
 * A LIVE region is checked once a device fault, after its read_begin,
 * found its whole range mapped in /proc/self/maps (or clipped it to what
 * was), and so is a tail split from a checked region.  A fault inserts a
 * region unchecked, over the chunk around its page with no look at the
 * maps, and answers for it: it checks it, or drops it before it returns.
 * So an unchecked region is never split (a tail would have no fault to
 * answer for it): a middle unmap keeps its larger side.
 *
 * Region memory is never freed before umn_mirror_free(), so a device fault
 * may keep a pointer to a region it looked up, unlocked, and check under
 * the lock that it is still the same LIVE region (gen changes each time it
 * goes back to the pool).  Nothing is freed inside a callback either: the
 * invalidation may come from inside free() (glibc trimming its heap), and
 * freeing there would re-enter the allocator.  Zapped device entries go to
 * a free list, released regions to the pool.
 *
 * Fork: the child's copy of a mirror is stale (its regions are not in the
 * child's space, which started over), and its lock may be held by a thread
 * the child does not have.  umn__mirror_forks counts the forks that made
 * this process (a pthread_atfork() child handler adds one); a mirror
 * remembers the count it was made under, and every entry point compares
 * the two before it takes the lock: -ESTALE in a child.
 */
#ifndef UMN_SRC_MIRROR_H
#define UMN_SRC_MIRROR_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <umn/mirror.h>

#include "sys/atomic.h"

enum region_state { REGION_FREE, REGION_LIVE, REGION_DEAD };

struct region {
	struct umn_interval sub;
	struct umn_mirror *m;
	struct region *next;        /* on m->regions or m->pool */
	struct region *all;         /* every region allocated, to free them */
	uintptr_t start, end;       /* the range asked for; under the lock */
	bool checked;               /* "checked", above; under the lock */
	enum region_state state;
	unsigned long gen;          /* bumped when it returns to the pool */
};

/* A software-device page: its entry in the page table and its memory. */
struct entry {
	struct entry *next;         /* hash chain, or the free list */
	struct entry *all;          /* every entry allocated */
	uintptr_t page;
	unsigned prot;
	unsigned char data[];       /* page size */
};

#define SWDEV_BUCKETS 4096u

struct umn_mirror {
	pthread_mutex_t lock;
	bool signal_safe;           /* UMN_MIRROR_SIGNAL_SAFE (lock.c) */
	sigset_t held_mask;         /* the holder's mask before it locked */
	struct umn_mm *mm;
	unsigned long forks;        /* umn__mirror_forks when it was made */
	size_t page, chunk;
	const struct umn_mirror_device_ops *ops; /* NULL: the software device */
	void *dev;
	struct region *regions;     /* LIVE */
	struct region *pool;        /* FREE */
	struct region *all_regions;
	struct entry *table[SWDEV_BUCKETS];
	struct entry *free_entries;
	struct entry *all_entries;
	struct umn_mirror_stats st;
};

/* lock.c: the mirror lock; with UMN_MIRROR_SIGNAL_SAFE, signals blocked. */
void umn__mirror_lock(struct umn_mirror *m);
bool umn__mirror_trylock(struct umn_mirror *m);
void umn__mirror_unlock(struct umn_mirror *m);

/* fault.c: is @m a copy made by fork(), unusable here? */
extern atomic_ulong umn__mirror_forks;

static inline bool umn__mirror_stale(const struct umn_mirror *m)
{
	/*
	 * Relaxed: the count changes only in the child handler, on the only
	 * thread of a new child, before any other code of the child runs;
	 * threads the child makes later are ordered after it by
	 * pthread_create().  In the parent it never changes.
	 */
	return atomic_load_relaxed(&umn__mirror_forks) != m->forks;
}

/* region.c */
struct region *umn__mirror_region_find_locked(struct umn_mirror *m,
					      uintptr_t addr);
int umn__mirror_region_prealloc(struct umn_mirror *m);
int umn__mirror_region_add_locked(struct umn_mirror *m, uintptr_t start,
				  uintptr_t end, struct region **out);
void umn__mirror_region_drop(struct umn_mirror *m, struct region *r,
			     unsigned long gen, bool checked_too);
void umn__mirror_region_clip_locked(struct region *r, uintptr_t page,
				    uintptr_t lo, uintptr_t hi);

/* maps.c: the mapping holding @page, and whether [start, end) is mapped. */
struct maps_result {
	bool found;                 /* a mapping holds @page */
	uintptr_t start, end;       /* that mapping */
	unsigned prot;              /* its UMN_MIRROR_READ / _WRITE */
	bool covered;               /* [start, end) asked is all mapped */
};
int umn__mirror_maps(uintptr_t page, uintptr_t start, uintptr_t end,
		     struct maps_result *res);

/* swdev.c: the software device, all under the lock. */
struct entry *umn__mirror_entry_get(struct umn_mirror *m);
void umn__mirror_entry_put_locked(struct umn_mirror *m, struct entry *e);
struct entry *umn__mirror_install_locked(struct umn_mirror *m, struct entry *e,
					 uintptr_t page, unsigned prot);
void umn__mirror_zap_locked(struct umn_mirror *m, uintptr_t start,
			    uintptr_t end);
void umn__mirror_swdev_free(struct umn_mirror *m);
int umn__mirror_host_read(uintptr_t addr, void *buf, size_t len);

#endif /* UMN_SRC_MIRROR_H */
