/* SPDX-License-Identifier: MIT */
/*
 * umn/mirror.h — an on-demand device page-table mirror of a umn_mm.
 *
 * The seed's in-kernel user, in userspace.  A device access at a host
 * virtual address with no valid device entry is a device fault:
 * umn_mirror_fault() finds or creates the subscription (a "region") that
 * covers an aligned chunk around the address, clipped to the mapping that
 * holds it, runs the sequence protocol (umn_read_begin, read the host page
 * and its permissions, take the mirror lock, umn_read_retry) and installs
 * the device entry for that one page.  The region's ->invalidate() zaps the
 * device entries in the range and then, for an unmap or a remap, trims the
 * region with umn_interval_update(), splits it by inserting a second one,
 * or drops it with umn_interval_put() — from inside the callback.  CLEAR
 * (madvise) and PROTECTION (mprotect) only zap: the next access refaults
 * and reads zeros, or the new permissions from /proc/self/maps.
 *
 * The device is either the built-in software device (device memory holding
 * copies of host pages, a page table per page, read/write/atomic add at
 * host addresses), or any device behind struct umn_mirror_device_ops.
 * Host pages are read with process_vm_readv() on the own process, so an
 * access to unmapped memory is an error (-EFAULT), never a crash.
 *
 * The software device is not coherent with CPU writes: its copy of a page
 * is taken at the device fault, like a device cache.  CPU writes to a
 * mirrored page after that are not seen by device reads until the page is
 * invalidated; device writes go through to the host page and the copy,
 * and device atomic adds read the host word, not the copy.
 *
 * fork(): in the child, a mirror made before the fork is stale.  Its
 * regions watch nothing there (the child's process space starts over
 * empty, umn_mm_atfork()), and its lock may be held by a thread of the
 * parent that the child does not have.  Every call on it returns -ESTALE
 * without touching it, umn_mirror_free() included (its memory is the
 * child's copy of the parent's, gone when the child exits or execs).  A
 * mirror made in the child works.  Only fork() is detected (a
 * pthread_atfork() handler); a child made by a raw clone() or
 * syscall(SYS_fork) must not use the parent's mirrors, as with the space.
 */
#ifndef UMN_MIRROR_H
#define UMN_MIRROR_H

#include <stddef.h>
#include <stdint.h>

#include <umn/umn.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct umn_mirror;

/* Device entry permissions (struct umn_mirror_device_ops, umn_mirror_fault). */
#define UMN_MIRROR_READ  1u
#define UMN_MIRROR_WRITE 2u

/**
 * struct umn_mirror_device_ops - What a device gives the mirror.
 * @install: set the device entry of the page at @addr (page-aligned) to
 *           @data, a copy of the host page taken under the sequence
 *           protocol, with permissions @prot (UMN_MIRROR_READ, |WRITE).
 *           Called under the mirror lock, outside any ->invalidate().
 *           Must not call into umn, nor unmap, remap or re-protect memory,
 *           nor free (free() may give heap pages back with madvise or
 *           munmap, and their invalidation, should the device mirror
 *           them, waits for the mirror lock); allocate from a pool filled
 *           beforehand, as the software device does.
 * @zap:     remove the device entries of [@start, @end).  Called under the
 *           mirror lock from ->invalidate(): it must not block, allocate or
 *           free (the invalidation may come from inside malloc or free).
 */
struct umn_mirror_device_ops {
	int (*install)(void *dev, uintptr_t addr, const void *data,
		       unsigned prot);
	void (*zap)(void *dev, uintptr_t start, uintptr_t end);
};

/*
 * Flag for umn_mirror_config.flags: invalidations may come from signal
 * handlers.  Every holder of the mirror lock blocks signals while it holds
 * it, so a handler that unmaps mirrored memory on a thread inside a device
 * access runs once the lock is dropped, instead of waiting in
 * ->invalidate() for the lock its own thread holds.  Costs two sigprocmask
 * calls per lock, and device accesses take it once a page.  Without it, a
 * blockable invalidation from a signal handler that interrupted a holder
 * of the lock deadlocks (one that is not blockable gets -EAGAIN).
 */
#define UMN_MIRROR_SIGNAL_SAFE 1u

/**
 * struct umn_mirror_config - How to build a mirror.
 * @chunk: bytes a device fault registers around the faulting address, a
 *         power of two and a multiple of the page size; 0 for 2 MiB.
 * @ops:   the device; NULL for the built-in software device.
 * @dev:   passed to @ops.
 * @flags: 0 or UMN_MIRROR_SIGNAL_SAFE.
 */
struct umn_mirror_config {
	size_t chunk;
	const struct umn_mirror_device_ops *ops;
	void *dev;
	unsigned flags;
};

/**
 * struct umn_mirror_stats - What a mirror did since it was made.
 * @faults:        device faults handled (successful or not).
 * @fault_errors:  device faults that returned an error.
 * @retries:       sequence-protocol retries.
 * @maps_reads:    reads of /proc/self/maps by device faults (one a fault
 *                 into a region, two when the fault inserts a region
 *                 larger than the mapping and clips it).
 * @inserted:      regions inserted on a device fault.
 * @updated:       regions trimmed with umn_interval_update().
 * @splits:        regions split in two (a second region inserted).
 * @puts:          regions dropped with umn_interval_put().
 * @released:      ->release() calls.
 * @invalidations: ->invalidate() calls.
 * @zapped:        device entries removed by invalidations.
 * @accesses:      software-device reads, writes and atomic adds (pages).
 * @regions:       regions live now.
 * @entries:       device entries installed now (software device only).
 */
struct umn_mirror_stats {
	unsigned long faults, fault_errors, retries, maps_reads;
	unsigned long inserted, updated, splits, puts, released;
	unsigned long invalidations, zapped, accesses;
	unsigned long regions, entries;
};

/**
 * struct umn_mirror_region - The range a live region watches.
 * @start: first address.
 * @end:   one past the last address.
 */
struct umn_mirror_region {
	uintptr_t start, end;
};

/**
 * umn_mirror_new() - Create a mirror of a space for a device.
 * @mm:  the space, usually umn_mm_process(); a space from umn_mm_new() when
 *       the caller drives the invalidations itself (as under
 *       ThreadSanitizer, where the process monitor cannot run).  Host pages
 *       are always this process's memory.
 * @cfg: NULL for the software device with 2 MiB chunks.
 *
 * Context: any thread, not from inside a callback.  Allocates.
 * Return: the mirror, or NULL with errno set to EINVAL (NULL @mm, bad
 *         chunk size, ops without install or zap, an unknown flag) or
 *         ENOMEM.
 */
struct umn_mirror *umn_mirror_new(struct umn_mm *mm,
				  const struct umn_mirror_config *cfg);

/**
 * umn_mirror_free() - Remove every region and free the mirror.
 * @m: the mirror.
 *
 * Removes the live regions (waiting for their callbacks), waits for the
 * releases of those already put, zaps every device entry and frees the
 * software device's memory.
 *
 * Context: any thread, outside the callbacks of the space and with no
 *          device access in progress on @m.  Waits.
 * Return: 0; -EINVAL if @m is NULL; -EDEADLK from inside a callback of the
 *         space, -ESTALE in the child of a fork() (nothing is freed then).
 */
int umn_mirror_free(struct umn_mirror *m);

/**
 * umn_mirror_fault() - Handle a device fault: mirror one host page.
 * @m:      the mirror.
 * @addr:   any address in the page.
 * @access: UMN_MIRROR_READ, or UMN_MIRROR_READ | UMN_MIRROR_WRITE.
 *
 * Finds or creates the region covering @addr, then runs the sequence
 * protocol and installs the device entry of the page with the permissions
 * of its mapping, read from /proc/self/maps after umn_read_begin() (once;
 * twice when the fault creates a region and clips it to the mapping).  A
 * fault that fails leaves no region of its own behind.
 *
 * Context: a device thread, not inside a callback and not while holding a
 *          lock that an invalidation of the space may take.  May wait for
 *          an invalidation in progress; allocates.
 * Return: 0; -EINVAL for a NULL @m or bad @access; -EFAULT if the page is
 *         not mapped; -EACCES if its mapping does not allow @access;
 *         -ENOMEM; -ESTALE in the child of a fork(); -EDEADLK if it would
 *         have to wait for a walk of the space that the calling thread is
 *         inside of (a callback, or between umn_invalidate_range_start()
 *         and _end()); or an error from ->install().
 */
int umn_mirror_fault(struct umn_mirror *m, uintptr_t addr, unsigned access);

/**
 * umn_mirror_read() - A software-device read at a host address.
 * @m:    a mirror with the software device.
 * @addr: host virtual address.
 * @buf:  where the bytes go.
 * @len:  bytes; may cross pages.
 *
 * Served from the device copies; a page with no entry is faulted in first.
 *
 * Context: any thread (a device thread), not inside a callback.
 * Return: 0; -EINVAL (NULL argument, zero or wrapping length); -ENOTSUP if
 *         @m has another device; -ESTALE in the child of a fork(); -EFAULT
 *         or -EACCES from the device fault of a page that is not mapped or
 *         not readable, -EDEADLK from one inside a walk of the space, as
 *         for umn_mirror_fault() (bytes of earlier pages may have been
 *         copied).
 */
int umn_mirror_read(struct umn_mirror *m, uintptr_t addr, void *buf,
		    size_t len);

/**
 * umn_mirror_write() - A software-device write at a host address.
 * @m:    a mirror with the software device.
 * @addr: host virtual address.
 * @buf:  the bytes.
 * @len:  bytes; may cross pages.
 *
 * Goes through to the host page (process_vm_writev) and to the device copy,
 * under the mirror lock, so an invalidation sees it done or not begun.
 *
 * Context: any thread (a device thread), not inside a callback.
 * Return: 0; -EINVAL; -ENOTSUP if @m has another device; -ESTALE in the
 *         child of a fork(); -EFAULT if a page is not mapped; -EACCES if
 *         one is not writable; -EDEADLK from a fault inside a walk of the
 *         space, as for umn_mirror_fault() (earlier pages may have been
 *         written).
 */
int umn_mirror_write(struct umn_mirror *m, uintptr_t addr, const void *buf,
		     size_t len);

/**
 * umn_mirror_atomic_add() - A software-device atomic add of a 64-bit word.
 * @m:    a mirror with the software device.
 * @addr: host virtual address, 8-byte aligned.
 * @add:  the addend.
 * @old:  if not NULL, the value before the add.
 *
 * Works on the host word as it is at the call, not on the device's copy
 * of the page (which CPU stores since the fault are not in): under the
 * mirror lock, reads the host word, adds, and writes the sum to the host
 * page and to the copy.  So it is atomic with respect to the other device
 * accesses of @m, and a CPU store that finished before the call is never
 * lost; a CPU store to the word while the add runs may be (the CPU does
 * not see the device's atomics, as with a device on a bus that is not
 * coherent), so do not mix the two on one word without your own ordering.
 *
 * Context: any thread (a device thread), not inside a callback.
 * Return: 0; -EINVAL (NULL @m, unaligned @addr); -ENOTSUP; -ESTALE in
 *         the child of a fork(); -EFAULT; -EACCES; -EDEADLK, as for
 *         umn_mirror_fault().
 */
int umn_mirror_atomic_add(struct umn_mirror *m, uintptr_t addr, uint64_t add,
			  uint64_t *old);

/**
 * umn_mirror_stats() - Counters of a mirror.
 * @m:     the mirror.
 * @stats: filled in.
 *
 * Context: any thread, not inside a callback of the space (takes the
 *          mirror lock).
 * Return: 0; -EINVAL if an argument is NULL; -ESTALE in the child of a
 *         fork().
 */
int umn_mirror_stats(struct umn_mirror *m, struct umn_mirror_stats *stats);

/**
 * umn_mirror_regions() - The ranges of the live regions.
 * @m:   the mirror.
 * @out: array of @max entries, or NULL to count only.
 * @max: entries @out holds.
 *
 * A region is live from its insert until it is put; its range is the one
 * its last update asked for.  At most @max ranges are written, in no order.
 *
 * Context: any thread, not inside a callback of the space.
 * Return: the number of live regions (may exceed @max); -EINVAL if @m is
 *         NULL or @out is NULL with a non-zero @max; -ESTALE in the child
 *         of a fork().
 */
long umn_mirror_regions(struct umn_mirror *m, struct umn_mirror_region *out,
			size_t max);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* UMN_MIRROR_H */
