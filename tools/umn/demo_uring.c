// SPDX-License-Identifier: MIT
/*
 * demo_uring — `umn demo uring`: the failure umn ends, with a real
 * io_uring, shown twice: through a cache that is never told about unmaps,
 * and through umn's.  The workload is uring_workload.c, the same one
 * tests/uring/uring_stale.c checks.
 *
 * Built without liburing (UMN_HAVE_URING=0), it only says how to get it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

#ifndef UMN_HAVE_URING
#define UMN_HAVE_URING 0
#endif

#if UMN_HAVE_URING

#include "uring_workload.h"

#define MIB (1024.0 * 1024.0)

static void usage(FILE *f)
{
	fprintf(f, "usage: umn demo uring [--mmap] [--steps N]\n"
		"  --mmap     buffers from mmap/munmap instead of malloc/free\n"
		"  --steps N  buffers to make (default 300)\n");
}

static int parse(int argc, char **argv, struct uring_workload *w)
{
	for (int i = 1; i < argc; i++) {
		char *end;

		if (!strcmp(argv[i], "--mmap")) {
			w->alloc = URING_ALLOC_MMAP;
		} else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
			unsigned long n = strtoul(argv[++i], &end, 10);

			if (*end || !n || n > 1000000)
				return -1;
			w->steps = (unsigned)n;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			exit(0);
		} else {
			return -1;
		}
	}
	return 0;
}

static void row(const char *name, const struct uring_result *r)
{
	printf("%-22s %7lu %6lu %9.1f MiB %6lu %9.1f MiB %13lu %8.0f MiB/s\n",
	       name, r->buffers, r->reads, (double)r->bytes_verified / MIB,
	       r->reads_lost, (double)r->bytes_lost / MIB, r->registrations,
	       r->seconds > 0 ? (double)r->bytes_verified / MIB / r->seconds : 0);
}

static void intro(const struct uring_workload *w)
{
	bool m = w->alloc == URING_ALLOC_MALLOC;

	printf("%u buffers %s, %u alive at a time, %zu to %zu KiB each;\n",
	       w->steps, m ? "malloc'ed and freed" : "mmap'ed and munmap'ed",
	       w->live, w->min_len >> 10, w->max_len >> 10);
	printf("%s\n", m ? "glibc maps and unmaps them, and the kernel hands "
	       "their addresses out again." : "the kernel hands their "
	       "addresses out again.");
	printf("After each %s, %u READ_FIXED reads of a file into live "
	       "buffers, through a\nregistration cache in front of io_uring's "
	       "buffer table; every byte checked.\n\n", m ? "malloc" : "mmap",
	       w->reads_per_step);
	printf("%-22s %7s %6s %13s %6s %13s %13s %14s\n", "cache", "buffers",
	       "reads", "verified", "lost", "lost bytes", "registrations",
	       "throughput");
}

static void verdict(const struct uring_result *naive,
		    const struct uring_result *umn)
{
	printf("\nnaive: %lu of %lu reads reported success, yet their data "
	       "never reached the\n       buffer: the kernel wrote it into "
	       "the pages of a buffer freed before.\n", naive->reads_lost,
	       naive->reads);
	if (umn->reads_lost)
		printf("umn:   %lu reads lost data. This is a bug.\n",
		       umn->reads_lost);
	else
		printf("umn:   every byte arrived; free() and munmap() "
		       "invalidated %lu registrations\n       before they "
		       "could be used.\n", umn->invalidated);
	printf("throughput: bytes read per second of malloc/mmap, free/munmap, "
	       "get, READ_FIXED\nand put (filling and checking the buffers "
	       "not counted).\n");
	if (!naive->reads_lost)
		printf("(no address came back at a registered spot this time: "
		       "try more --steps)\n");
}

static int run(const char *name, struct uring_workload *w,
	       enum uring_cache cache, struct uring_result *res)
{
	int ret;

	w->cache = cache;
	ret = uring_workload_run(w, res);
	if (ret == -ENOTSUP || ret == -EPERM || ret == -ENOSYS) {
		printf("umn demo uring: cannot run here: %s\n", res->error);
		return 77;
	}
	if (ret) {
		fprintf(stderr, "umn demo uring: %s run failed: %s\n", name,
			res->error);
		return 2;
	}
	row(name, res);
	return 0;
}

int umn_demo_uring(int argc, char **argv)
{
	struct uring_workload w;
	struct uring_result naive, umn;
	int ret;

	uring_workload_defaults(&w, URING_CACHE_NAIVE, URING_ALLOC_MALLOC);
	if (parse(argc, argv, &w)) {
		usage(stderr);
		return 2;
	}
	ret = uring_workload_usable(URING_CACHE_UMN, naive.error,
				    sizeof(naive.error));
	if (ret) {
		printf("umn demo uring: cannot run here: %s\n", naive.error);
		return 77;
	}
	intro(&w);
	ret = run("naive (never told)", &w, URING_CACHE_NAIVE, &naive);
	if (!ret)
		ret = run("umn (umn_mm_process)", &w, URING_CACHE_UMN, &umn);
	if (ret)
		return ret;
	verdict(&naive, &umn);
	return umn.reads_lost ? 1 : 0;
}

#else /* !UMN_HAVE_URING */

int umn_demo_uring(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "umn demo uring: this umn was built without liburing; "
		"install it (Debian: apt-get install liburing-dev) and "
		"rebuild\n");
	return 77;
}

#endif
