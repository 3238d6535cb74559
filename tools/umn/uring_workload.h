/* SPDX-License-Identifier: MIT */
/*
 * uring_workload.h — the stale-registration failure with a real io_uring,
 * as `umn demo uring` shows it and tests/uring/uring_stale.c checks it.
 *
 * A program keeps a few buffers alive, replaces one at a time (free and
 * malloc, or munmap and mmap: the kernel hands the same addresses back),
 * and reads a file into its buffers with READ_FIXED through a registration
 * cache in front of io_uring's buffer table.  Every byte read is compared
 * with the file.  Two caches, the same backend (umn/rcache_uring.h):
 *
 *   URING_CACHE_NAIVE  keyed by address, never told about unmaps: what a
 *                      cache without memory hooks does.  A buffer at a
 *                      reused address gets the old registration, and the
 *                      read lands in the old, freed pages.
 *   URING_CACHE_UMN    umn's cache on umn_mm_process(): the unmap inside
 *                      free() invalidates the registration first.
 */
#ifndef UMN_TOOLS_URING_WORKLOAD_H
#define UMN_TOOLS_URING_WORKLOAD_H

#include <stddef.h>

enum uring_cache { URING_CACHE_NAIVE, URING_CACHE_UMN };
enum uring_alloc { URING_ALLOC_MALLOC, URING_ALLOC_MMAP };

struct uring_workload {
	enum uring_cache cache;
	enum uring_alloc alloc;
	unsigned steps;                 /* buffers made, one replaced per step */
	unsigned live;                  /* buffers alive at once, at most 16 */
	unsigned reads_per_step;        /* the new buffer first, then any */
	size_t min_len, max_len;        /* buffer sizes, above glibc's mmap
					 * threshold (set to 128 KiB here) */
	unsigned long seed;             /* sizes, offsets and choices */
};

struct uring_result {
	unsigned long buffers;          /* buffers made */
	unsigned long reused;           /* of them, over pages a freed buffer had */
	unsigned long reads;            /* READ_FIXED completed in full */
	unsigned long reads_lost;       /* of them, with a byte not in the buffer */
	unsigned long long bytes_verified;
	unsigned long long bytes_lost;  /* bytes that differ from the file */
	unsigned long registrations;    /* slots filled (system calls) */
	unsigned long invalidated;      /* umn: regions an unmap invalidated */
	double seconds;                 /* the loop (allocation, free, get, read,
					 * put), less poisoning and checking */
	char error[512];                /* why the run failed or could not start */
};

/* The demo's and tests' workload: 4 buffers of 160 KiB to 1 MiB. */
void uring_workload_defaults(struct uring_workload *w, enum uring_cache cache,
			     enum uring_alloc alloc);

/*
 * 0 if a run can go here: io_uring fixed buffers work, RLIMIT_MEMLOCK
 * allows a run's registrations (the soft limit is raised if needed and
 * allowed) and, for URING_CACHE_UMN, the process monitor is installed.
 * Else -ENOTSUP or -EPERM, and @why says what is missing.
 */
int uring_workload_usable(enum uring_cache cache, char *why, size_t size);

/*
 * Run @w once.  0: the run finished and @res says what the reads found
 * (lost data is a result, not an error).  Negative errno: the run could not
 * start or broke off; @res->error says why.  -ENOTSUP, -EPERM: as from
 * uring_workload_usable() (a reason to skip, not a bug).
 */
int uring_workload_run(const struct uring_workload *w, struct uring_result *res);

#endif /* UMN_TOOLS_URING_WORKLOAD_H */
