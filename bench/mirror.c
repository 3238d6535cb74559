// SPDX-License-Identifier: MIT
/*
 * mirror — what the device mirror costs (include/umn/mirror.h).
 *
 * Two figures, each against a baseline measured in the same run:
 *
 *   device reads with every entry present (umn_mirror_read() of 64 KiB
 *   spans over 16 MiB of mirrored memory, where both are bound by memory
 *   bandwidth, and over 256 KiB of it, in cache, where the mirror's
 *   per-page lock and lookup show) against a plain memcpy of the same
 *   bytes (target: within 2x);
 *
 *   a device fault (umn_mirror_fault() of a fresh page, 4 KiB and 2 MiB
 *   chunks) against one process_vm_readv() of the same size: the 4 KiB
 *   page it copies, and the whole 2 MiB chunk; beside them, one read of
 *   /proc/self/maps, which every fault makes and which dominates its cost.
 *
 * And what UMN_MIRROR_SIGNAL_SAFE costs: the in-cache device reads again
 * with a mirror that blocks signals while it holds its lock.
 *
 * The mirror is of umn_mm_process() when the monitor runs here, of a space
 * from umn_mm_new() otherwise (the mirror's work is the same).  Best of
 * BENCH_RUNS.  A few seconds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <umn/mirror.h>
#include <umn/umn.h>

#include "bench.h"

#define READ_BYTES (16ul << 20)
#define SMALL_BYTES (256ul << 10)
#define READ_SPAN (64ul << 10)
#define READ_ROUNDS 16
#define FAULT_PAGES 512 /* 2 MiB of fresh pages per run */

static size_t pg;

static void *map_filled(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	memset(p, 0x5a, len);
	return p;
}

/* ns per byte-span pass: device reads through the mirror, entries present. */
static double mirror_reads(struct umn_mirror *m, const char *src, char *dst,
			   size_t bytes, int rounds)
{
	uint64_t t0 = bench_now_ns();

	for (int r = 0; r < rounds; r++)
		for (size_t off = 0; off < bytes; off += READ_SPAN)
			if (umn_mirror_read(m, (uintptr_t)src + off, dst + off,
					    READ_SPAN)) {
				fprintf(stderr, "umn_mirror_read failed\n");
				exit(1);
			}
	bench_consume((uint64_t)(unsigned char)dst[bytes - 1]);
	return (double)(bench_now_ns() - t0) / rounds * READ_BYTES / bytes;
}

static BENCH_NOINLINE void copy_span(char *dst, const char *src, size_t n)
{
	memcpy(dst, src, n);
	__asm__ __volatile__("" : : "r"(dst) : "memory");
}

static double plain_memcpy(const char *src, char *dst, size_t bytes,
			   int rounds)
{
	uint64_t t0 = bench_now_ns();

	for (int r = 0; r < rounds; r++)
		for (size_t off = 0; off < bytes; off += READ_SPAN)
			copy_span(dst + off, src + off, READ_SPAN);
	bench_consume((uint64_t)(unsigned char)dst[bytes - 1]);
	return (double)(bench_now_ns() - t0) / rounds * READ_BYTES / bytes;
}

/* ns per device fault over fresh pages, with @chunk-byte regions. */
static double faults(struct umn_mm *mm, size_t chunk)
{
	struct umn_mirror_config cfg = { .chunk = chunk };
	struct umn_mirror *m = umn_mirror_new(mm, &cfg);
	size_t len = FAULT_PAGES * pg;
	char *buf = map_filled(len);
	uint64_t t0, t;

	if (!m) {
		perror("umn_mirror_new");
		exit(1);
	}
	t0 = bench_now_ns();
	for (size_t i = 0; i < FAULT_PAGES; i++) {
		int err = umn_mirror_fault(m, (uintptr_t)buf + i * pg,
					   UMN_MIRROR_READ);

		if (err) {
			fprintf(stderr, "umn_mirror_fault: %s\n",
				strerror(-err));
			exit(1);
		}
	}
	t = bench_now_ns() - t0;
	umn_mirror_free(m);
	munmap(buf, len);
	return (double)t / FAULT_PAGES;
}

/* ns per process_vm_readv() of @size bytes of this process. */
static double vm_readv(size_t size, int calls)
{
	char *src = map_filled(size), *dst = map_filled(size);
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < calls; i++) {
		struct iovec l = { dst, size }, r = { src, size };

		if (process_vm_readv(getpid(), &l, 1, &r, 1, 0) !=
		    (ssize_t)size) {
			perror("process_vm_readv");
			exit(1);
		}
	}
	t0 = bench_now_ns() - t0;
	bench_consume((uint64_t)(unsigned char)dst[size - 1]);
	munmap(src, size);
	munmap(dst, size);
	return (double)t0 / calls;
}

/* ns per open + read + close of /proc/self/maps, what every fault does. */
static double maps_read(int calls)
{
	char buf[16384];
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < calls; i++) {
		int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
		ssize_t n;

		if (fd < 0) {
			perror("/proc/self/maps");
			exit(1);
		}
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			bench_consume((uint64_t)n);
		close(fd);
	}
	return (double)(bench_now_ns() - t0) / calls;
}

static double min_d(double a, double b) { return a < b ? a : b; }

/* The in-cache reads, plain and UMN_MIRROR_SIGNAL_SAFE, in the same run. */
static void signal_safe_reads(struct umn_mm *mm, const char *src, char *dst)
{
	struct umn_mirror_config cfg = { .flags = UMN_MIRROR_SIGNAL_SAFE };
	struct umn_mirror *plain = umn_mirror_new(mm, NULL);
	struct umn_mirror *safe = umn_mirror_new(mm, &cfg);
	int rounds = READ_ROUNDS * (int)(READ_BYTES / SMALL_BYTES);
	double p = 1e30, q = 1e30;

	if (!plain || !safe) {
		perror("umn_mirror_new");
		exit(1);
	}
	mirror_reads(plain, src, dst, SMALL_BYTES, 1);
	mirror_reads(safe, src, dst, SMALL_BYTES, 1);
	for (int run = 0; run < BENCH_RUNS; run++) {
		p = min_d(p, mirror_reads(plain, src, dst, SMALL_BYTES,
					  rounds));
		q = min_d(q, mirror_reads(safe, src, dst, SMALL_BYTES,
					  rounds));
	}
	printf("    %5lu KiB, UMN_MIRROR_SIGNAL_SAFE %6.1f ns against %6.1f ns "
	       "plain: %.2fx (two sigprocmask calls a page)\n",
	       SMALL_BYTES >> 10, q * pg / READ_BYTES, p * pg / READ_BYTES,
	       q / p);
	umn_mirror_free(safe);
	umn_mirror_free(plain);
}

int main(void)
{
	struct umn_mm *mm = umn_mm_process();
	const char *space = "umn_mm_process()";
	struct umn_mirror *m;
	struct umn_mirror_stats st;
	char *src, *dst;
	double f4 = 1e30, f2m = 1e30;
	double r4 = 1e30, r2m = 1e30, mp = 1e30;

	pg = (size_t)sysconf(_SC_PAGESIZE);
	if (!mm) {
		mm = umn_mm_new();
		space = "umn_mm_new() (no process monitor here)";
	}
	if (!mm) {
		perror("umn_mm_new");
		return 1;
	}
	printf("mirror: device mirror costs, space %s, best of %d\n", space,
	       BENCH_RUNS);

	src = map_filled(READ_BYTES);
	dst = map_filled(READ_BYTES);
	m = umn_mirror_new(mm, NULL);
	if (!m) {
		perror("umn_mirror_new");
		return 1;
	}
	mirror_reads(m, src, dst, READ_BYTES, 1); /* fault every page in */
	umn_mirror_stats(m, &st);
	printf("  device read in %lu KiB spans, every entry present (%lu "
	       "entries, %lu regions after %lu faults); ns per 4 KiB\n",
	       READ_SPAN >> 10, st.entries, st.regions, st.faults);
	for (int w = 0; w < 2; w++) {
		/* 16 MiB: memory-bound; 256 KiB: in cache, the per-page cost shows */
		size_t bytes = w ? SMALL_BYTES : READ_BYTES;
		int rounds = READ_ROUNDS * (int)(READ_BYTES / bytes);
		double dev = 1e30, cpy = 1e30;

		for (int run = 0; run < BENCH_RUNS; run++) {
			dev = min_d(dev, mirror_reads(m, src, dst, bytes,
						      rounds));
			cpy = min_d(cpy, plain_memcpy(src, dst, bytes, rounds));
		}
		printf("    %5lu KiB: umn_mirror_read %6.1f ns (%5.2f GB/s), "
		       "memcpy %6.1f ns (%5.2f GB/s): %.2fx (target <= 2x: %s)\n",
		       bytes >> 10, dev * pg / READ_BYTES, READ_BYTES / dev,
		       cpy * pg / READ_BYTES, READ_BYTES / cpy, dev / cpy,
		       dev / cpy <= 2.0 ? "met" : "MISSED");
	}
	umn_mirror_free(m);
	signal_safe_reads(mm, src, dst);
	munmap(src, READ_BYTES);
	munmap(dst, READ_BYTES);

	for (int run = 0; run < BENCH_RUNS; run++) {
		f4 = min_d(f4, faults(mm, 4096));
		f2m = min_d(f2m, faults(mm, 2ul << 20));
		r4 = min_d(r4, vm_readv(pg, 2000));
		r2m = min_d(r2m, vm_readv(2ul << 20, 50));
		mp = min_d(mp, maps_read(500));
	}
	printf("  device fault of a fresh page (%d pages), one process_vm_readv"
	       " of the same size beside it\n", FAULT_PAGES);
	printf("    fault, 4 KiB chunks  %8.0f ns   readv 4 KiB %6.0f ns  "
	       "(%.1fx)\n", f4, r4, f4 / r4);
	printf("    fault, 2 MiB chunks  %8.0f ns   readv 2 MiB %6.0f ns  "
	       "(%.2fx; %.1fx the 4 KiB readv a fault makes)\n",
	       f2m, r2m, f2m / r2m, f2m / r4);
	printf("    one read of /proc/self/maps %6.0f ns: a fault reads it "
	       "once (up to the line it needs), twice when it clips the chunk "
	       "it inserts\n", mp);
	return 0;
}
