/* SPDX-License-Identifier: MIT */
/*
 * demo_mirror.h — `umn demo mirror`, and the workload it runs, which
 * tests/mirror/process_concurrent and user_concurrent check.
 *
 * Device threads read, write and atomically add through a software-device
 * mirror while CPU threads mmap, fill, partially munmap, mremap, madvise and
 * mprotect "slots" of a reserved arena, re-using the same addresses all the
 * time.  Every device access is checked against what the host memory holds.
 *
 * Each slot has a reader-writer lock: a CPU thread changes a slot under it
 * as writer; a device thread takes it as reader for the accesses whose
 * result it checks exactly.  Other device reads take no slot lock and race
 * with the changes: they may read any generation of the slot's content at
 * least as new as the one published when they began, or zeros, or fail;
 * a value from an older generation is a stale read (a missed or late
 * invalidation).
 */
#ifndef UMN_TOOLS_DEMO_MIRROR_H
#define UMN_TOOLS_DEMO_MIRROR_H

#include <stdbool.h>
#include <stddef.h>

#include <umn/mirror.h>

struct mirror_workload_config {
	struct umn_mm *mm;       /* umn_mm_process(), or a space of umn_mm_new() */
	bool user_driven;        /* bracket each change with range_start/_end */
	int device_threads, cpu_threads;
	double seconds;
	size_t slots, slot_pages;
	size_t chunk;            /* the mirror's; 0 for 2 MiB */
	unsigned seed;
};

struct mirror_workload_result {
	unsigned long reads, racy_reads, writes, adds;
	unsigned long stale;     /* wrong values or results: must be 0 */
	unsigned long adds_lost; /* host word != adds counted: must be 0 */
	unsigned long retired;   /* slots whose hole someone else mapped */
	unsigned long cpu_ops[5];/* map+fill, munmap, mremap, madvise, mprotect */
	long regions_end;        /* live regions before the arena is unmapped */
	long regions_unmapped;   /* ... of them over unmapped memory: 0 */
	long regions_after;      /* live regions once it is unmapped: 0 */
	struct umn_mirror_stats st;
	double seconds;
	char first_stale[160];   /* what the first stale read was */
};

/*
 * Run the workload.  Returns 0 when it ran (check stale, adds_lost and the
 * regions in @res), or -errno if something could not be set up.
 */
int mirror_workload_run(const struct mirror_workload_config *cfg,
			struct mirror_workload_result *res);

/*
 * umn demo mirror [--seconds S] [--chunk BYTES] [--threads D,C]: the
 * workload over the process space, and a table.  With --bench instead:
 * device read throughput against memcpy, and the cost of a device fault
 * against the process_vm_readv it needs, measured in the same run.  0 when no read was
 * stale, 1 when one was, 2 on bad usage or a failed run, 77 when the
 * process monitor is unavailable here.
 */
int umn_demo_mirror(int argc, char **argv);

#endif /* UMN_TOOLS_DEMO_MIRROR_H */
