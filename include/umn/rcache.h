/* SPDX-License-Identifier: MIT */
/*
 * umn/rcache.h — a registration cache that never hands out a stale
 * registration.
 *
 * Libraries that register memory with a device or the kernel (io_uring
 * fixed buffers, RDMA memory regions, GPU host registrations, mlock pins)
 * keep the registrations in a cache, keyed by address, because registering
 * is slow.  When the program unmaps the memory and maps new memory at the
 * same address, an address-keyed cache returns the old registration and
 * the I/O lands in the old pages.  Here every cached region is a
 * subscription (umn.h) to its range of a space, usually umn_mm_process():
 * an unmap, remap, discard or protection change of any part of it makes the
 * region invalid at once, and no later umn_rcache_get() returns it.
 *
 *   struct umn_rcache_config cfg = {
 *           .mm = umn_mm_process(), .ops = umn_rcache_mlock_ops(),
 *   };
 *   struct umn_rcache *rc;
 *   struct umn_region *r;
 *
 *   umn_rcache_new(&cfg, &rc);
 *   umn_rcache_get(rc, buf, len, &r);      registered, covers [buf, buf+len)
 *   ... use the registration (umn_region_data(r)) ...
 *   umn_rcache_put(rc, r);                 stays cached, unused
 *
 * Where the backend's callbacks run.  ->reg() and ->dereg() are called one
 * at a time per cache (under the cache's mutex), on a thread that is inside
 * umn_rcache_get(), umn_rcache_put(), umn_rcache_flush() or
 * umn_rcache_free(), with no umn lock held; never from inside an
 * invalidation (the monitor's wrappers of munmap, free, ...), so they may
 * allocate, sleep and unmap memory.  An invalidation only marks the region;
 * its ->dereg() runs after its last umn_rcache_put(): in that put, or, when
 * the region was unused (or the put found the mutex busy), in the next
 * get, put or flush of the cache on any thread.  umn_rcache_flush() runs
 * every dereg that is due before it returns.
 *
 * fork(): the child's process space starts empty (umn_mm_atfork()), so
 * the regions of a cache made before the fork no longer watch anything in
 * the child.  Do not use such a cache in the child; make a new one there.
 *
 * Errors are negative errno values, success is 0.  Ranges are half-open.
 */
#ifndef UMN_RCACHE_H
#define UMN_RCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <umn/umn.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

struct umn_rcache;
struct umn_region;

/**
 * struct umn_rcache_ops - A registration backend.
 * @reg:   register [umn_region_start(@region), umn_region_end(@region)):
 *         the range is aligned and may be larger than what the caller of
 *         umn_rcache_get() asked for (merged with neighbours).  Keep what
 *         the registration needs in umn_region_data(@region) (zero-filled
 *         before the call).  Return 0, or a negative errno value that
 *         umn_rcache_get() returns (nothing is cached then, and ->dereg is
 *         not called).  -ENOSPC, -ENOMEM and -EAGAIN say "out of
 *         something": the cache then evicts its unused regions, runs the
 *         deregs that are due and, if that deregistered anything, calls
 *         ->reg once more (data zero-filled again) before it gives up.
 * @dereg: undo ->reg.  Called exactly once for every region whose ->reg
 *         succeeded, after it is invalid (invalidated, merged into a larger
 *         region, evicted or flushed) and no reference to it is held.
 *
 * Both are called one at a time per cache, never concurrently, with no umn
 * lock held, on a thread inside umn_rcache_get(), umn_rcache_put(),
 * umn_rcache_flush() or umn_rcache_free() of the cache, never from inside
 * an invalidation: they may allocate, sleep, and map or unmap memory.  They
 * must not call umn_rcache_get(), umn_rcache_put(), umn_rcache_flush() or
 * umn_rcache_free() of the same cache.
 */
struct umn_rcache_ops {
	int (*reg)(struct umn_rcache *rc, struct umn_region *region);
	void (*dereg)(struct umn_rcache *rc, struct umn_region *region);
};

/*
 * Flags for umn_rcache_config.flags.
 *
 * UMN_RCACHE_KEEP_ON_PROTECTION: a protection change (mprotect) does not
 * invalidate regions.  By default it does, as unmap, remap and discard do:
 * a registration made for writing would otherwise keep writing to pages
 * the program has made read-only, and a new registration sees the new
 * rights (and may fail on them).  Set it when the program changes
 * protections of registered memory often and the backend's registrations
 * do not depend on them (mlock pins do not).
 */
#define UMN_RCACHE_KEEP_ON_PROTECTION 1u

/* The default of umn_rcache_config.max_region_bytes: 1 GiB. */
#define UMN_RCACHE_MAX_REGION_DEFAULT ((size_t)1 << 30)

/**
 * struct umn_rcache_config - How to build a cache.  Zero means "default"
 * for every size.
 * @mm:               the space the cache watches, usually umn_mm_process().
 *                    It must outlive the cache.
 * @ops:              the backend; ->reg and ->dereg are both required.
 * @ctx:              the backend's own pointer, returned by umn_rcache_ctx().
 * @region_data_size: bytes of backend data in each region
 *                    (umn_region_data()), aligned to 16.  Default 0.
 * @alignment:        regions start and end on multiples of this; a power of
 *                    two, at least the page size.  Default: the page size.
 * @max_regions:      when the cache keeps more regions than this, unused
 *                    ones are evicted, about least recently used first (a
 *                    second-chance clock), until it
 *                    is back under the limit or none is unused.  Held
 *                    regions count but are never evicted.  Default: no
 *                    limit.
 * @max_bytes:        the same, for the sum of the regions' lengths.
 *                    Default: no limit.
 * @flags:            0 or UMN_RCACHE_KEEP_ON_PROTECTION.
 * @max_region_bytes: a miss merges its range with neighbouring regions
 *                    only while the merged region stays this long or
 *                    shorter; a range longer than this is registered
 *                    alone.  It bounds what one miss registers again: a
 *                    run of adjacent gets of n bytes each re-registers up
 *                    to this many bytes per miss, so set it smaller when
 *                    gets are small and adjacent and registering costs
 *                    in proportion to the length.  Default:
 *                    UMN_RCACHE_MAX_REGION_DEFAULT (1 GiB).
 */
struct umn_rcache_config {
	struct umn_mm *mm;
	const struct umn_rcache_ops *ops;
	void *ctx;
	size_t region_data_size;
	size_t alignment;
	size_t max_regions, max_bytes;
	unsigned flags;
	size_t max_region_bytes;
};

/**
 * struct umn_rcache_stats - What a cache did, for tests and tuning.
 * @regions:      regions cached now (valid, registered, findable by get).
 * @bytes:        their total length.
 * @misses:       gets that took the slow path (no valid region covered the
 *                range when it looked).  Hits are not counted: counting
 *                them would cost every hit a write to shared memory.
 * @regs:         successful ->reg calls.
 * @reg_errors:   ->reg calls that failed (the error went to the caller).
 * @deregs:       ->dereg calls.
 * @merged:       regions replaced by a new one that overlaps or touches
 *                them: merged into it, or, where that would pass
 *                max_region_bytes, overlapping it and dropped.
 * @invalidated:  regions made invalid by an invalidation of the space.
 * @evicted:      unused regions evicted for the limits or by flush.
 * @retried:      registrations dropped because an invalidation reached
 *                their range while ->reg ran (the get registered again).
 * @pending:      regions invalid and unused whose ->dereg has not run yet.
 */
struct umn_rcache_stats {
	size_t regions, bytes;
	uint64_t misses, regs, reg_errors, deregs, merged, invalidated,
		evicted, retried;
	size_t pending;
};

/**
 * umn_rcache_new() - Create a registration cache.
 * @cfg: the space, the backend and the limits; copied.
 * @out: set to the cache on success, to NULL on failure.
 *
 * Context: any thread, not from inside a umn callback.  Allocates.
 * Return: 0; -EINVAL if @cfg, @out, @cfg->mm, @cfg->ops, ->reg or ->dereg
 *         is NULL, @cfg->alignment is not a power of two at least the page
 *         size, or @cfg->flags has an unknown bit; -ENOMEM.
 */
int umn_rcache_new(const struct umn_rcache_config *cfg,
		   struct umn_rcache **out);

/**
 * umn_rcache_free() - Destroy a cache, deregistering everything in it.
 * @rc: the cache, with no region held.
 *
 * Evicts every region, calls the ->dereg still due, then waits with
 * umn_synchronize() until no callback of the cache can run, and frees it.
 * No other call on @rc may run concurrently or follow.
 *
 * Context: any thread, not from inside a umn callback of the cache's space
 *          and not between umn_invalidate_range_start() and _end() on it.
 *          Waits for invalidations in progress on the space.
 * Return: 0; -EINVAL if @rc is NULL; -EBUSY if a region is still held (the
 *         cache is left as it was); -EDEADLK from inside a callback of the
 *         space.
 */
int umn_rcache_free(struct umn_rcache *rc);

/**
 * umn_rcache_get() - Get a registered region covering a range.
 * @rc:   the cache.
 * @addr: first byte.
 * @len:  bytes; non-zero, and @addr + @len must not wrap.
 * @out:  set to the region, held, on success; to NULL on failure.
 *
 * Returns a valid region that covers [@addr, @addr + @len), with a
 * reference held for the caller: it stays registered, and usable by the
 * caller, until the matching umn_rcache_put(), even if an invalidation
 * reaches it meanwhile (then umn_region_valid() turns false, and no later
 * get returns it).  A hit (a valid region already covers the range) takes
 * no lock, makes no system call and allocates nothing, unless a ->dereg is
 * due (an invalidation made an unused region invalid since the last call):
 * then it first tries the cache's mutex and runs it.  A miss registers
 * the range, aligned to the cache's alignment and merged with the valid
 * regions that overlap or touch it, nearest first, as long as the result
 * stays within the config's max_region_bytes, so one registration replaces
 * them; a valid region that overlaps the range but would not fit is
 * replaced too, not merged.  The replaced regions stay usable by their
 * holders and are deregistered after their last put.  A miss never registers pages an invalidation in
 * progress is taking away: it waits for that invalidation to end (as
 * umn_read_begin() does), and if one reaches the range while ->reg runs it
 * drops that registration and registers again.  When ->reg fails with
 * -ENOSPC, -ENOMEM or -EAGAIN (out of slots, of lockable memory, ...) the
 * miss evicts every unused region of the cache, runs the due deregs, and
 * calls ->reg once more if that deregistered anything: the cache never
 * fails a get for want of what its own unused regions hold.
 *
 * Context: any thread, but not inside the backend's callbacks, and not
 *          holding a lock that any ->invalidate() of the space takes: a
 *          miss may wait for invalidations in progress.  A miss takes the
 *          cache's mutex, allocates, and calls ->reg, and may call ->dereg
 *          of regions it replaces or evicts or that are due.  Inside a umn
 *          callback of the cache's space, or between
 *          umn_invalidate_range_start() and _end() on it, a hit works (and
 *          leaves any due ->dereg to a later call) and a miss returns
 *          -EDEADLK at once: it would wait for the walk it is in, or for a
 *          thread that waits for that walk.
 * Return: 0; -EINVAL if @rc or @out is NULL or @len is 0; -EOVERFLOW if
 *         @addr + @len, or the range rounded out to the alignment, wraps;
 *         -ENOMEM; the error ->reg returned (nothing is cached); -EAGAIN if
 *         invalidations kept reaching the range while it was being
 *         registered; -EDEADLK for a miss inside a walk or release of the
 *         space.
 */
int umn_rcache_get(struct umn_rcache *rc, const void *addr, size_t len,
		   struct umn_region **out);

/**
 * umn_rcache_put() - Drop a reference taken by umn_rcache_get().
 * @rc:     the cache.
 * @region: a region of @rc that the caller holds.
 *
 * A valid region stays cached, unused, until an invalidation, a merge, the
 * limits or umn_rcache_flush() remove it.  If the region is invalid and
 * this was its last reference, its ->dereg runs here (or, if another thread
 * holds the cache's mutex, in that thread's call).  If the cache is over
 * its limits, unused regions may be evicted here.  The common case takes no
 * lock.
 *
 * Context: any thread, under the same rules as umn_rcache_get() (it may
 *          call ->dereg), but never waits for another thread: it only tries
 *          the cache's mutex.  Inside a walk or release of the cache's
 *          space it works, and leaves any due ->dereg to a later call.
 * Return: 0; -EINVAL if @rc or @region is NULL or @region belongs to
 *         another cache; -EALREADY if no reference to @region is held (every
 *         get of it was put already).  A put of a reference that another
 *         caller holds cannot be told apart from theirs: it steals it.
 */
int umn_rcache_put(struct umn_rcache *rc, struct umn_region *region);

/**
 * umn_rcache_flush() - Evict every unused region and run the due deregs.
 * @rc: the cache.
 *
 * Every region with no reference held is made invalid and deregistered
 * before this returns; so is every invalid region whose ->dereg was due.
 * Held regions stay, valid or not.
 *
 * Context: as umn_rcache_get(): takes the cache's mutex (waits for it) and
 *          calls ->dereg.  Not inside a walk or release of the cache's
 *          space (-EDEADLK).
 * Return: 0; -EINVAL if @rc is NULL; -EDEADLK from inside a walk or
 *         release of the space.
 */
int umn_rcache_flush(struct umn_rcache *rc);

/**
 * umn_rcache_ctx() - The backend pointer given in the config.
 * @rc: the cache.
 *
 * Context: any thread, including the backend's callbacks.  Lock-free.
 * Return: umn_rcache_config.ctx, or NULL if @rc is NULL.
 */
void *umn_rcache_ctx(struct umn_rcache *rc);

/**
 * umn_rcache_stats() - Counters and current size of a cache.
 * @rc:    the cache.
 * @stats: filled in.
 *
 * Context: any thread, not inside the backend's callbacks.  Takes the
 *          cache's mutex.  Not inside a walk or release of the cache's
 *          space (-EDEADLK): a miss on another thread may hold the mutex
 *          while it waits for that walk.
 * Return: 0; -EINVAL if @rc or @stats is NULL; -EDEADLK from inside a walk
 *         or release of the space.
 */
int umn_rcache_stats(struct umn_rcache *rc, struct umn_rcache_stats *stats);

/**
 * umn_region_start() - First address of a region.
 * @r: a region held, or one passed to ->reg or ->dereg.
 *
 * Context: any thread.  Lock-free.
 * Return: the start, a multiple of the cache's alignment.
 */
uintptr_t umn_region_start(const struct umn_region *r);

/**
 * umn_region_end() - One past the last address of a region.
 * @r: a region held, or one passed to ->reg or ->dereg.
 *
 * Context: any thread.  Lock-free.
 * Return: the exclusive end, a multiple of the cache's alignment.
 */
uintptr_t umn_region_end(const struct umn_region *r);

/**
 * umn_region_data() - The backend's data kept in a region.
 * @r: a region held, or one passed to ->reg or ->dereg.
 *
 * Context: any thread.  Lock-free.
 * Return: umn_rcache_config.region_data_size bytes, 16-byte aligned (NULL
 *         if that size is 0); zero-filled before ->reg.
 */
void *umn_region_data(struct umn_region *r);

/**
 * umn_region_valid() - Whether no invalidation has reached a region yet.
 * @r: a region held.
 *
 * A held region stays registered until its put, but once an invalidation
 * has reached it (or it was merged into a larger one, or flushed) it no
 * longer describes the memory at its addresses: stop using it, put it and
 * get the range again.
 *
 * Context: any thread.  Lock-free; the answer may be stale by the time it
 *          is used (an invalidation can come at any moment).
 * Return: true while the region is valid.
 */
bool umn_region_valid(const struct umn_region *r);

/**
 * umn_rcache_mlock_ops() - The mlock backend.
 *
 * ->reg pins the region's pages with mlock(2), ->dereg unpins them with
 * munlock(2).  mlock fails with -ENOMEM when a page in the range is not
 * mapped or RLIMIT_MEMLOCK would be exceeded, and with -EPERM when the
 * limit is 0 for an unprivileged process; umn_rcache_get() returns that
 * error (after evicting the unused regions and trying again, for
 * -ENOMEM).  Locks do not nest in Linux, so ->dereg unlocks only the pages
 * that no other region of the cache still registered covers (a merged
 * region and the one it replaced while that is held, or a new region over
 * memory mapped again at the same address).  Needs no region data and no
 * ctx.
 *
 * Context: any thread.  Lock-free.
 * Return: the ops, static.
 */
const struct umn_rcache_ops *umn_rcache_mlock_ops(void);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* UMN_RCACHE_H */
