// SPDX-License-Identifier: MIT
/*
 * uring_workload — buffers replaced one at a time, each read into with
 * READ_FIXED through a registration cache, every byte checked (see
 * uring_workload.h).  Single-threaded: one read in flight at a time, its
 * region held from before the SQE is prepared until its completion is
 * reaped.
 *
 * Each read first fills its buffer with POISON, a byte the file never
 * holds, then reads a random stretch of the file into all of it: a byte
 * that still differs from the file afterwards did not arrive.  The naive
 * cache's lookups go by address only, so a buffer over a freed buffer's
 * pages hits a registration of those pages, and the kernel writes there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <umn/monitor.h>
#include <umn/rcache.h>
#include <umn/rcache_uring.h>

#include "uring_workload.h"

#define FILE_LEN (8u << 20)
#define SLOTS 64                        /* the ring's buffer table */
#define CACHE_REGIONS 16                /* both caches keep at most this */
#define CACHE_BYTES (4u << 20)          /* and this, well under 8 MiB of
					 * RLIMIT_MEMLOCK with what is held */
#define MEMLOCK_NEED (2 * CACHE_BYTES)  /* what a run pins stays under it */
#define CAP_IPC_LOCK_BIT 14
#define MAX_LIVE 16
#define FREED_KEPT 64                   /* freed ranges remembered, for `reused` */
#define POISON 0xa5

struct naive_entry {
	uintptr_t start, end;
	unsigned slot;
	unsigned long used;             /* clock at the last hit: LRU */
};

/* A cache keyed by address that nobody tells about unmaps. */
struct naive {
	struct umn_rcache_uring *ur;
	struct naive_entry e[CACHE_REGIONS];
	unsigned n;
	unsigned long clock;
	size_t bytes;
};

struct buf {
	char *p;
	size_t len;
};

struct run {
	const struct uring_workload *w;
	struct uring_result *res;
	size_t page;
	uint64_t rng;
	int fd;
	unsigned char *expect;          /* the file's contents */
	bool ring_up;
	struct io_uring ring;
	struct umn_rcache_uring *ur;
	struct umn_rcache *rc;          /* URING_CACHE_UMN */
	struct naive naive;             /* URING_CACHE_NAIVE */
	struct buf live[MAX_LIVE];
	uintptr_t freed[FREED_KEPT][2];
	unsigned nfreed;
	double checking;                /* seconds spent poisoning and checking */
};

__attribute__((format(printf, 3, 4)))
static int fail(struct run *r, int err, const char *fmt, ...)
{
	va_list ap;

	if (r->res->error[0])
		return err;     /* keep the first reason */
	va_start(ap, fmt);
	vsnprintf(r->res->error, sizeof(r->res->error), fmt, ap);
	va_end(ap);
	return err;
}

static uint64_t rnd(struct run *r)
{
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 7;
	r->rng ^= r->rng << 17;
	return r->rng;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void uring_workload_defaults(struct uring_workload *w, enum uring_cache cache,
			     enum uring_alloc alloc)
{
	*w = (struct uring_workload){
		.cache = cache, .alloc = alloc, .steps = 300, .live = 4,
		.reads_per_step = 2, .min_len = 160 << 10, .max_len = 1 << 20,
		.seed = 0x9e3779b97f4a7c15ul,
	};
}

/* ---- the naive cache ---------------------------------------------------- */

static void naive_evict(struct naive *nc)
{
	unsigned lru = 0;

	for (unsigned i = 1; i < nc->n; i++)
		if (nc->e[i].used < nc->e[lru].used)
			lru = i;
	umn_rcache_uring_dereg(nc->ur, nc->e[lru].slot);
	nc->bytes -= nc->e[lru].end - nc->e[lru].start;
	nc->e[lru] = nc->e[--nc->n];
}

static int naive_get(struct run *r, const struct buf *b, unsigned *slot)
{
	struct naive *nc = &r->naive;
	uintptr_t start = (uintptr_t)b->p & ~(r->page - 1);
	uintptr_t end = ((uintptr_t)b->p + b->len + r->page - 1) & ~(r->page - 1);
	struct naive_entry *e;
	int ret;

	nc->clock++;
	for (unsigned i = 0; i < nc->n; i++) {
		if (nc->e[i].start <= start && end <= nc->e[i].end) {
			nc->e[i].used = nc->clock;
			*slot = nc->e[i].slot;
			return 0;
		}
	}
	while (nc->n && (nc->n == CACHE_REGIONS ||
			 nc->bytes + (end - start) > CACHE_BYTES))
		naive_evict(nc);
	e = &nc->e[nc->n];
	ret = umn_rcache_uring_reg(nc->ur, (const void *)start, end - start,
				   &e->slot);
	if (ret)
		return ret;
	*e = (struct naive_entry){ start, end, e->slot, nc->clock };
	nc->n++;
	nc->bytes += end - start;
	r->res->registrations++;
	*slot = e->slot;
	return 0;
}

static void naive_flush(struct naive *nc)
{
	while (nc->n)
		naive_evict(nc);
}

/* ---- umn's cache -------------------------------------------------------- */

static int umn_cache_new(struct run *r)
{
	struct umn_rcache_config cfg = {
		.mm = umn_mm_process(),
		.max_regions = CACHE_REGIONS,
		.max_bytes = CACHE_BYTES,
	};
	int ret;

	umn_rcache_uring_config(r->ur, &cfg);
	ret = umn_rcache_new(&cfg, &r->rc);
	return ret ? fail(r, ret, "umn_rcache_new: %d", ret) : 0;
}

/* ---- buffers and the file ----------------------------------------------- */

static int buf_make(struct run *r, struct buf *b)
{
	const struct uring_workload *w = r->w;
	uintptr_t start, end;

	b->len = w->min_len + rnd(r) % (w->max_len - w->min_len + 1);
	if (w->alloc == URING_ALLOC_MALLOC) {
		b->p = malloc(b->len);
	} else {
		b->p = mmap(NULL, b->len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (b->p == MAP_FAILED)
			b->p = NULL;
	}
	if (!b->p)
		return fail(r, -ENOMEM, "no memory for a %zu-byte buffer", b->len);
	r->res->buffers++;
	start = (uintptr_t)b->p & ~(r->page - 1);
	end = (uintptr_t)b->p + b->len;
	for (unsigned i = 0; i < FREED_KEPT && i < r->nfreed; i++) {
		if (start < r->freed[i][1] && r->freed[i][0] < end) {
			r->res->reused++;
			break;
		}
	}
	return 0;
}

static void buf_drop(struct run *r, struct buf *b)
{
	uintptr_t *f;

	if (!b->p)
		return;
	f = r->freed[r->nfreed++ % FREED_KEPT];
	f[0] = (uintptr_t)b->p & ~(r->page - 1);
	f[1] = (uintptr_t)b->p + b->len;
	if (r->w->alloc == URING_ALLOC_MALLOC)
		free(b->p);
	else
		munmap(b->p, b->len);
	b->p = NULL;
}

/* A file of FILE_LEN bytes, none of them POISON, unlinked at once. */
static int file_make(struct run *r)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int n = snprintf(path, sizeof(path), "%s/umn-uring-XXXXXX",
			 dir && dir[0] ? dir : "/tmp");

	if (n < 0 || (size_t)n >= sizeof(path))
		return fail(r, -ENAMETOOLONG, "TMPDIR is too long");
	r->expect = malloc(FILE_LEN);
	if (!r->expect)
		return fail(r, -ENOMEM, "no memory for the file's contents");
	for (size_t i = 0; i < FILE_LEN; i++) {
		unsigned char c = (unsigned char)(rnd(r) >> 32);

		r->expect[i] = c == POISON ? c ^ 1 : c;
	}
	r->fd = mkstemp(path);
	if (r->fd < 0)
		return fail(r, -errno, "mkstemp %s: %s", path, strerror(errno));
	unlink(path);
	for (size_t done = 0; done < FILE_LEN;) {
		ssize_t k = pwrite(r->fd, r->expect + done, FILE_LEN - done,
				   (off_t)done);

		if (k <= 0)
			return fail(r, k < 0 ? -errno : -EIO,
				    "writing the test file: %s", strerror(errno));
		done += (size_t)k;
	}
	return 0;
}

/* ---- one read ------------------------------------------------------------ */

static int read_fixed(struct run *r, const struct buf *b, size_t off,
		      unsigned slot)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	struct io_uring_cqe *cqe;
	int ret;

	if (!sqe)
		return fail(r, -EBUSY, "no free SQE");
	io_uring_prep_read_fixed(sqe, r->fd, b->p, (unsigned)b->len,
				 (__u64)off, (int)slot);
	ret = io_uring_submit(&r->ring);
	if (ret != 1)
		return fail(r, ret < 0 ? ret : -EIO, "io_uring_submit: %d", ret);
	do {
		ret = io_uring_wait_cqe(&r->ring, &cqe);
	} while (ret == -EINTR);
	if (ret)
		return fail(r, ret, "io_uring_wait_cqe: %d", ret);
	ret = cqe->res;
	io_uring_cqe_seen(&r->ring, cqe);
	if (ret != (int)b->len)
		return fail(r, ret < 0 ? ret : -EIO, "READ_FIXED of %zu bytes "
			    "into slot %u returned %d", b->len, slot, ret);
	return 0;
}

static void verify(struct run *r, const struct buf *b, size_t off)
{
	const unsigned char *want = r->expect + off;
	const unsigned char *got = (const unsigned char *)b->p;
	unsigned long long lost = 0;

	r->res->reads++;
	r->res->bytes_verified += b->len;
	if (!memcmp(got, want, b->len))
		return;
	for (size_t i = 0; i < b->len; i++)
		lost += got[i] != want[i];
	r->res->reads_lost++;
	r->res->bytes_lost += lost;
}

static int read_one(struct run *r, const struct buf *b)
{
	size_t off = rnd(r) % (FILE_LEN - b->len + 1);
	struct umn_region *region = NULL;
	double t = now();
	unsigned slot;
	int ret;

	memset(b->p, POISON, b->len);
	r->checking += now() - t;
	if (r->rc) {
		ret = umn_rcache_get(r->rc, b->p, b->len, &region);
		if (!ret)
			slot = (unsigned)umn_rcache_uring_slot(region);
	} else {
		ret = naive_get(r, b, &slot);
	}
	if (ret)
		return fail(r, ret, "registering %zu bytes at %p: %d%s", b->len,
			    (void *)b->p, ret, ret == -ENOMEM ? " (RLIMIT_MEMLOCK "
			    "too low? try ulimit -l 65536)" : "");
	ret = read_fixed(r, b, off, slot);
	if (region && umn_rcache_put(r->rc, region) && !ret)
		ret = fail(r, -EIO, "umn_rcache_put failed");
	if (!ret) {
		t = now();
		verify(r, b, off);
		r->checking += now() - t;
	}
	return ret;
}

/* ---- the run ------------------------------------------------------------- */

static int loop(struct run *r)
{
	const struct uring_workload *w = r->w;
	double t0 = now();
	int ret = 0;

	for (unsigned s = 0; s < w->steps && !ret; s++) {
		struct buf *b = &r->live[rnd(r) % w->live];

		buf_drop(r, b);
		ret = buf_make(r, b);
		for (unsigned k = 0; k < w->reads_per_step && !ret; k++) {
			if (k)
				b = &r->live[rnd(r) % w->live];
			if (b->p)
				ret = read_one(r, b);
		}
	}
	r->res->seconds = now() - t0 - r->checking;
	return ret;
}

/* Whether the process has CAP_IPC_LOCK: then nothing it pins is charged. */
static bool can_lock_freely(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	unsigned long long caps = 0;
	char line[256];

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			break;
	fclose(f);
	return caps >> CAP_IPC_LOCK_BIT & 1;
}

/* Registered buffers count against RLIMIT_MEMLOCK: raise the soft limit
 * if it is too low for a run and the hard one allows, else say so. */
static int memlock_check(char *why, size_t size)
{
	struct rlimit rl;

	if (can_lock_freely() || getrlimit(RLIMIT_MEMLOCK, &rl) ||
	    rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= MEMLOCK_NEED)
		return 0;
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= MEMLOCK_NEED) {
		rl.rlim_cur = MEMLOCK_NEED;
		if (!setrlimit(RLIMIT_MEMLOCK, &rl))
			return 0;
	}
	snprintf(why, size, "RLIMIT_MEMLOCK is %llu KiB, and a run registers "
		 "up to %u KiB of buffers (ulimit -l %u, or CAP_IPC_LOCK)",
		 (unsigned long long)rl.rlim_cur >> 10, MEMLOCK_NEED >> 10,
		 MEMLOCK_NEED >> 10);
	return -EPERM;
}

int uring_workload_usable(enum uring_cache cache, char *why, size_t size)
{
	struct umn_monitor_info info;
	int ret = umn_rcache_uring_probe(why, size);

	if (!ret)
		ret = memlock_check(why, size);
	if (ret || cache != URING_CACHE_UMN || umn_mm_process())
		return ret;
	ret = errno == EPERM ? -EPERM : -ENOTSUP;
	umn_monitor_query(&info);
	snprintf(why, size, "no process monitor: %s", info.reason);
	return ret;
}

static int setup(struct run *r)
{
	int ret;

	ret = uring_workload_usable(r->w->cache, r->res->error,
				    sizeof(r->res->error));
	if (ret)
		return ret;
	r->res->error[0] = '\0';
	/* Fixed, so that glibc keeps serving these sizes with mmap and
	 * freeing them with munmap (it raises its threshold otherwise). */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	ret = file_make(r);
	if (ret)
		return ret;
	ret = io_uring_queue_init(8, &r->ring, 0);
	if (ret)
		return fail(r, ret, "io_uring_queue_init: %d", ret);
	r->ring_up = true;
	ret = umn_rcache_uring_new(&r->ring, SLOTS, &r->ur);
	if (ret)
		return fail(r, ret, "umn_rcache_uring_new: %d", ret);
	r->naive.ur = r->ur;
	return r->w->cache == URING_CACHE_UMN ? umn_cache_new(r) : 0;
}

/* Frees what setup() made; the first error is the one returned. */
static int teardown(struct run *r)
{
	struct umn_rcache_stats st;
	int ret = 0, err;

	for (unsigned i = 0; i < MAX_LIVE; i++)
		buf_drop(r, &r->live[i]);
	if (r->rc) {
		if (!umn_rcache_stats(r->rc, &st)) {
			r->res->registrations = (unsigned long)st.regs;
			r->res->invalidated = (unsigned long)st.invalidated;
		}
		err = umn_rcache_free(r->rc);
		if (err)
			ret = fail(r, err, "umn_rcache_free: %d", err);
	}
	naive_flush(&r->naive);
	err = r->ur ? umn_rcache_uring_free(r->ur) : 0;
	if (err && !ret)
		ret = fail(r, err, "umn_rcache_uring_free: %d (slots still in "
			   "use after the cache was freed)", err);
	if (r->ring_up && !err)
		io_uring_queue_exit(&r->ring);
	if (r->fd >= 0)
		close(r->fd);
	free(r->expect);
	return ret;
}

int uring_workload_run(const struct uring_workload *w, struct uring_result *res)
{
	struct run r = { .w = w, .res = res, .fd = -1 };
	int ret, ret2;

	memset(res, 0, sizeof(*res));
	if (!w->steps || !w->live || w->live > MAX_LIVE || !w->min_len ||
	    w->min_len > w->max_len || w->max_len > FILE_LEN / 2) {
		snprintf(res->error, sizeof(res->error), "bad workload");
		return -EINVAL;
	}
	r.page = (size_t)sysconf(_SC_PAGESIZE);
	r.rng = w->seed ? w->seed : 1;
	ret = setup(&r);
	if (!ret)
		ret = loop(&r);
	ret2 = teardown(&r);
	return ret ? ret : ret2;
}
