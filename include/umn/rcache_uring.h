/* SPDX-License-Identifier: MIT */
/*
 * umn/rcache_uring.h — io_uring fixed buffers as a registration cache
 * backend (libumn_uring; link with -lumn_uring -lumn -luring).
 *
 * A region of the cache (umn/rcache.h) is one slot of a ring's registered
 * buffer table.  The table is registered once, empty (sparse), when the
 * backend is made; a region's ->reg() fills a free slot with its pages
 * (IORING_REGISTER_BUFFERS_UPDATE), its ->dereg() empties the slot again,
 * and only then can the slot serve another region.  umn_rcache_uring_slot()
 * gives the slot to put in an SQE's buf_index:
 *
 *	struct umn_rcache_uring *ur;
 *	struct umn_rcache_config cfg = { .mm = umn_mm_process() };
 *	struct umn_rcache *rc;
 *	struct umn_region *r;
 *
 *	umn_rcache_uring_new(&ring, 64, &ur);
 *	umn_rcache_uring_config(ur, &cfg);
 *	umn_rcache_new(&cfg, &rc);
 *
 *	umn_rcache_get(rc, buf, len, &r);
 *	io_uring_prep_read_fixed(sqe, fd, buf, len, off, umn_rcache_uring_slot(r));
 *	... submit, wait for the completion ...
 *	umn_rcache_put(rc, r);
 *
 *	umn_rcache_free(rc);
 *	umn_rcache_uring_free(ur);
 *	io_uring_queue_exit(&ring);
 *
 * Hold the region from before the SQE is prepared until its completion has
 * been reaped: once put, the slot may be emptied and given to other pages.
 *
 * Kernel: sparse tables need Linux 5.19; from 5.13 on the table is
 * registered with empty placeholders instead; before 5.13 a registered
 * buffer cannot be replaced, and umn_rcache_uring_new() fails with
 * -ENOTSUP.  Registered pages are charged to RLIMIT_MEMLOCK unless the
 * process has CAP_IPC_LOCK.  A ring made with IORING_SETUP_SINGLE_ISSUER
 * accepts registrations only from its submitter thread: use the cache and
 * run its deferred deregistrations on that thread.
 */
#ifndef UMN_RCACHE_URING_H
#define UMN_RCACHE_URING_H

#include <stddef.h>

#include <umn/rcache.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

struct io_uring;                /* liburing's; not needed to include this */
struct umn_rcache_uring;        /* one ring's buffer table and its slots */

/* The most slots a table may have (the kernel's IORING_MAX_REG_BUFFERS). */
#define UMN_RCACHE_URING_MAX_SLOTS 16384u

/**
 * umn_rcache_uring_probe() - Whether this kernel and process can use the backend.
 * @reason: filled with one line saying what works or what failed; may be
 *          NULL if @size is 0.
 * @size:   bytes at @reason.
 *
 * Makes a throwaway ring, registers a sparse table of one slot, fills the
 * slot with one page, empties it and closes the ring.  When io_uring is
 * refused, @reason says by what: /proc/sys/kernel/io_uring_disabled, or a
 * seccomp filter (a container's default profile), or a kernel built
 * without io_uring.
 *
 * Context: any thread.  Makes system calls; allocates.
 * Return: 0 if the backend works here; -ENOTSUP if the kernel lacks
 * io_uring or cannot replace registered buffers (before Linux 5.13);
 * -EPERM if io_uring is disabled or filtered for this process; -ENOMEM if
 * the page could not be registered (RLIMIT_MEMLOCK); another negative errno
 * from io_uring_setup(2) or io_uring_register(2).
 */
int umn_rcache_uring_probe(char *reason, size_t size);

/**
 * umn_rcache_uring_new() - Register an empty buffer table on a ring.
 * @ring:     a ring made with io_uring_queue_init(); it must have no
 *            registered buffers yet, and must outlive the backend.
 * @nr_slots: slots in the table, 1 to UMN_RCACHE_URING_MAX_SLOTS.  Each
 *            region cached, held or waiting for its deregistration takes
 *            one.
 * @out:      set to the new backend on success.
 *
 * The table is registered sparse (Linux 5.19), or with empty placeholders
 * on Linux 5.13 to 5.18.  Slot indexes are 0 to @nr_slots - 1.
 *
 * Context: any thread (the submitter, for an IORING_SETUP_SINGLE_ISSUER
 *          ring).  Makes system calls; allocates.
 * Return: 0; -EINVAL if @ring or @out is NULL or @nr_slots is out of range;
 * -ENOMEM; -EBUSY if @ring already has registered buffers; -ENOTSUP if
 * the kernel cannot replace registered buffers (before Linux 5.13);
 * another negative errno from io_uring_register(2).
 */
int umn_rcache_uring_new(struct io_uring *ring, unsigned nr_slots,
			 struct umn_rcache_uring **out);

/**
 * umn_rcache_uring_free() - Unregister the buffer table and free the backend.
 * @ur: a backend whose slots are all empty: free the cache that uses it
 *      (umn_rcache_free()) and umn_rcache_uring_dereg() every slot taken
 *      with umn_rcache_uring_reg() first.
 *
 * Call it before io_uring_queue_exit() of the ring.
 *
 * Context: any thread (the submitter, for an IORING_SETUP_SINGLE_ISSUER
 *          ring).  Makes a system call, which waits for requests still
 *          using the table.
 * Return: 0; -EINVAL if @ur is NULL; -EBUSY if a slot is still in use
 * (nothing is freed then).
 */
int umn_rcache_uring_free(struct umn_rcache_uring *ur);

/**
 * umn_rcache_uring_config() - Make a cache configuration use this backend.
 * @ur:  the backend.
 * @cfg: a configuration for umn_rcache_new(); this sets its ops, ctx and
 *       region_data_size, and, if it is 0, max_regions to half the slots
 *       (the cache counts valid regions, held or not; the other half is for
 *       invalid regions still held or waiting for their ->dereg); and, if
 *       it is 0 or more than 1 GiB, max_region_bytes to 1 GiB, the most
 *       the kernel registers in one buffer, so that merging never makes a
 *       region the kernel refuses.  Set the rest (mm, alignment,
 *       max_bytes, flags) yourself.
 *
 * A slot goes to another region only after the ->dereg of the region that
 * had it, which the cache runs after that region's last umn_rcache_put().
 * With no slot free, umn_rcache_get() evicts the cache's unused regions
 * (freeing their slots) and tries again; with still none, it fails with
 * -ENOSPC.  A get of more
 * than 1 GiB fails with -EFAULT (the kernel's limit).  One backend serves
 * one cache.
 *
 * Context: any thread.  Never blocks.
 * Return: 0, or -EINVAL if @ur or @cfg is NULL.
 */
int umn_rcache_uring_config(struct umn_rcache_uring *ur,
			    struct umn_rcache_config *cfg);

/**
 * umn_rcache_uring_slot() - The table slot holding a region's pages.
 * @region: a region held from a cache configured by
 *          umn_rcache_uring_config().
 *
 * The index to give io_uring_prep_read_fixed() or
 * io_uring_prep_write_fixed(), with an address inside
 * [umn_region_start(), umn_region_end()).  It stays valid while @region
 * is held, even after an invalidation of its pages (the I/O then goes to
 * the pages registered, not to what is mapped there now).
 *
 * Context: any thread.  Never blocks.
 * Return: the slot (0 or more), or -EINVAL if @region is NULL or comes from
 *         a cache not set up with umn_rcache_uring_config().
 */
int umn_rcache_uring_slot(struct umn_region *region);

/**
 * umn_rcache_uring_reg() - Register pages in a free slot, outside any cache.
 * @ur:   the backend.
 * @addr: first byte.
 * @len:  bytes, at least 1 and at most 1 GiB (the kernel's limit).
 * @slot: set to the slot on success.
 *
 * For buffers that live as long as the ring, sharing the table with the
 * cache, and for a cache of your own.  Nothing watches these pages: if they
 * are unmapped, the slot keeps the old pages until
 * umn_rcache_uring_dereg().
 *
 * Context: any thread (the submitter, for an IORING_SETUP_SINGLE_ISSUER
 *          ring).  Makes a system call, which pins the pages.
 * Return: 0; -EINVAL if an argument is NULL or @len is 0; -EOVERFLOW if
 * @addr + @len wraps; -ENOSPC if no slot is free; -EFAULT if the pages
 * cannot be pinned (not mapped, or larger than 1 GiB); -ENOMEM
 * (RLIMIT_MEMLOCK); -ENOTSUP (EOPNOTSUPP, the same value on Linux) for
 * file mappings this kernel will not pin; another negative errno from
 * io_uring_register(2).
 */
int umn_rcache_uring_reg(struct umn_rcache_uring *ur, const void *addr,
			 size_t len, unsigned *slot);

/**
 * umn_rcache_uring_dereg() - Empty a slot taken with umn_rcache_uring_reg().
 * @ur:   the backend.
 * @slot: the slot; free for reuse once this returns.
 *
 * Requests already submitted with @slot keep their pages until they
 * complete (the kernel holds them).
 *
 * Context: any thread (the submitter, for an IORING_SETUP_SINGLE_ISSUER
 *          ring).  Makes a system call.
 * Return: 0; -EINVAL if @ur is NULL or @slot is out of range; -ENOENT if
 * @slot was not taken with umn_rcache_uring_reg() (free, or the cache's).
 */
int umn_rcache_uring_dereg(struct umn_rcache_uring *ur, unsigned slot);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* UMN_RCACHE_URING_H */
