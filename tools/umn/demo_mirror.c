// SPDX-License-Identifier: MIT
/*
 * demo_mirror — `umn demo mirror`: device threads reading and writing
 * through umn_mirror while CPU threads change the mappings under them
 * (demo_mirror.h says what is checked and how).
 *
 * A slot's content is always written before it appears at the slot's
 * addresses: new content is filled in a scratch mapping and moved into
 * place with mremap(MREMAP_FIXED).  The software device's copies are not
 * coherent with CPU writes (umn/mirror.h), so filling the slot in place
 * would let a racing device fault copy a half-filled page.
 *
 * Addresses are re-used, never handed to someone else: a hole left by
 * munmap or mremap is reserved again with MAP_FIXED_NOREPLACE, never
 * MAP_FIXED, since another thread of the process (malloc, a sanitizer's
 * allocator) may have mapped something there meanwhile.  If one did, the
 * slot is retired: no thread touches it again, and teardown unmaps only
 * the pages that are still ours.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <umn/mirror.h>
#include <umn/monitor.h>

#include "demo_mirror.h"

#define MAX_PAGES 64

enum pstate { P_NONE, P_DATA, P_ZERO };

struct slot {
	pthread_rwlock_t lock;
	atomic_ulong gen;             /* published once the content is in place */
	unsigned char state[MAX_PAGES]; /* under lock */
	bool ro[MAX_PAGES];
	bool lost[MAX_PAGES];         /* someone else mapped there */
	atomic_bool dead;             /* retired: a page of it was lost */
	uint64_t word0;               /* host word 0 of page 0, less adds */
	atomic_ulong adds;            /* device adds to it since word0 was set */
};

struct wl {
	const struct mirror_workload_config *cfg;
	struct mirror_workload_result *res;
	struct umn_mirror *m;
	size_t pg, len, stride;
	char *arena;
	struct slot *slots;
	atomic_ulong next_gen;
	atomic_bool stop;
	atomic_ulong reads, racy, writes, adds, stale, lost, ops[5], retired;
	pthread_mutex_t note_lock;
};

struct worker {
	pthread_t thread;
	struct wl *wl;
	uint64_t rng;
	char *scratch;                /* CPU threads: a reserved slot-sized area */
};

static uint64_t rnd(struct worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

static uint64_t pattern(uint64_t gen, uintptr_t addr)
{
	return (gen << 48) ^ (uint64_t)addr;
}

static char *slot_addr(struct wl *wl, size_t s)
{
	return wl->arena + s * wl->stride;
}

/* @got and @want: values, or negative errnos. */
static void note_stale(struct wl *wl, const char *what, uintptr_t addr,
		       long got, long want)
{
	if (atomic_fetch_add(&wl->stale, 1) == 0) {
		pthread_mutex_lock(&wl->note_lock);
		snprintf(wl->res->first_stale, sizeof(wl->res->first_stale),
			 "%s %#lx: got %#lx (%ld), want %#lx (%ld)", what,
			 (unsigned long)addr, (unsigned long)got, got,
			 (unsigned long)want, want);
		pthread_mutex_unlock(&wl->note_lock);
	}
}

/* Brackets of a change for a user-driven space; the monitor's otherwise. */
struct change {
	struct umn_range r[2];
	int n;
};

static void change_begin(struct wl *wl, struct change *ch, const void *start,
			 size_t len, enum umn_event event)
{
	struct umn_range *r = &ch->r[ch->n];

	if (!wl->cfg->user_driven)
		return;
	*r = (struct umn_range){ .mm = wl->cfg->mm, .start = (uintptr_t)start,
				 .end = (uintptr_t)start + len, .event = event,
				 .flags = UMN_RANGE_BLOCKABLE };
	if (umn_invalidate_range_start(r) == 0)
		ch->n++;
}

static void change_end(struct change *ch)
{
	while (ch->n > 0)
		umn_invalidate_range_end(&ch->r[--ch->n]);
}

static void die(const char *what)
{
	perror(what);
	abort();
}

/* Reserve the hole [p, p + len) again; false if someone mapped there. */
static bool reserve(void *p, size_t len)
{
	void *q = mmap(p, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
		       MAP_FIXED_NOREPLACE, -1, 0);

	if (q != MAP_FAILED && q != p)
		munmap(q, len); /* a kernel without NOREPLACE took it as a hint */
	return q == p;
}

/*
 * Move @from's pages to @to (ours, reserved or mapped) and reserve @from
 * again: 0, 1 if @from was lost meanwhile, or -errno if mremap refused.
 */
static int move_pages(struct wl *wl, char *from, char *to, size_t len)
{
	struct change ch = { .n = 0 };
	void *p;

	change_begin(wl, &ch, from, len, UMN_EVENT_REMAP);
	change_begin(wl, &ch, to, len, UMN_EVENT_UNMAP);
	p = mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	change_end(&ch);
	if (p == MAP_FAILED)
		return -errno;
	return reserve(from, len) ? 0 : 1;
}

static void new_scratch(struct worker *w)
{
	w->scratch = mmap(NULL, w->wl->len, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w->scratch == MAP_FAILED)
		die("mmap scratch");
}

/* Move the worker's scratch pages to @to: a new scratch if the old
 * addresses were taken meanwhile; @what names a failure. */
static void move_from_scratch(struct worker *w, char *to, const char *what)
{
	switch (move_pages(w->wl, w->scratch, to, w->wl->len)) {
	case 0:
		break;
	case 1:
		new_scratch(w);
		break;
	default:
		die(what);
	}
}

static void retire(struct wl *wl, struct slot *sl, size_t lo, size_t hi)
{
	memset(sl->lost + lo, true, hi - lo);
	atomic_store(&sl->dead, true);
	atomic_fetch_add(&wl->retired, 1);
}

/* Account for the device's adds: word 0 of page 0 must be what they made. */
static void settle_word0(struct wl *wl, struct slot *sl, char *a)
{
	unsigned long adds = atomic_exchange(&sl->adds, 0);

	if (sl->state[0] == P_NONE || sl->lost[0])
		return;
	sl->word0 += adds;
	if (*(volatile uint64_t *)a != sl->word0) {
		atomic_fetch_add(&wl->lost, 1);
		sl->word0 = *(volatile uint64_t *)a;
	}
}

static void op_new(struct worker *w, struct slot *sl, char *a)
{
	struct wl *wl = w->wl;
	unsigned long gen = atomic_fetch_add(&wl->next_gen, 1);
	struct change ch = { .n = 0 };
	uint64_t *words = (uint64_t *)w->scratch;

	change_begin(wl, &ch, w->scratch, wl->len, UMN_EVENT_UNMAP);
	if (mmap(w->scratch, wl->len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != w->scratch)
		die("mmap");
	change_end(&ch);
	for (size_t i = 0; i < wl->len / 8; i++)
		words[i] = pattern(gen, (uintptr_t)a + i * 8);
	move_from_scratch(w, a, "mremap into a slot");
	memset(sl->state, P_DATA, sizeof(sl->state));
	memset(sl->ro, 0, sizeof(sl->ro));
	sl->word0 = pattern(gen, (uintptr_t)a);
	atomic_store_explicit(&sl->gen, gen, memory_order_release);
}

static void op_munmap(struct wl *wl, struct slot *sl, char *a, size_t lo,
		      size_t hi)
{
	struct change ch = { .n = 0 };
	char *p = a + lo * wl->pg;
	size_t len = (hi - lo) * wl->pg;

	change_begin(wl, &ch, p, len, UMN_EVENT_UNMAP);
	if (munmap(p, len))
		die("munmap");
	change_end(&ch);
	memset(sl->state + lo, P_NONE, hi - lo);
	if (!reserve(p, len))
		retire(wl, sl, lo, hi);
}

/* Out and back: the content stays, every device entry goes. */
static bool op_mremap(struct worker *w, struct slot *sl, char *a)
{
	struct wl *wl = w->wl;
	size_t n = wl->cfg->slot_pages;

	for (size_t i = 0; i < n; i++)
		if (sl->state[i] == P_NONE || sl->ro[i] != sl->ro[0])
			return false;
	switch (move_pages(wl, a, w->scratch, wl->len)) {
	case 0:
		break;
	case 1: /* the slot's addresses are lost: drop its content */
		retire(wl, sl, 0, n);
		if (mmap(w->scratch, wl->len, PROT_NONE, MAP_PRIVATE |
			 MAP_ANONYMOUS | MAP_FIXED, -1, 0) != w->scratch)
			die("mmap scratch");
		return true;
	default:
		return false; /* several mappings: mremap refuses, no harm */
	}
	move_from_scratch(w, a, "mremap back");
	return true;
}

static void op_madvise(struct wl *wl, struct slot *sl, char *a, size_t lo,
		       size_t hi)
{
	struct change ch = { .n = 0 };

	change_begin(wl, &ch, a + lo * wl->pg, (hi - lo) * wl->pg,
		     UMN_EVENT_CLEAR);
	if (madvise(a + lo * wl->pg, (hi - lo) * wl->pg, MADV_DONTNEED))
		die("madvise");
	change_end(&ch);
	for (size_t i = lo; i < hi; i++)
		if (sl->state[i] == P_DATA)
			sl->state[i] = P_ZERO;
	if (lo == 0)
		sl->word0 = 0;
}

static void op_mprotect(struct wl *wl, struct slot *sl, char *a, size_t lo,
			size_t hi)
{
	for (size_t i = lo; i < hi; i++) {
		struct change ch = { .n = 0 };

		if (sl->state[i] == P_NONE)
			continue;
		change_begin(wl, &ch, a + i * wl->pg, wl->pg,
			     UMN_EVENT_PROTECTION);
		if (mprotect(a + i * wl->pg, wl->pg,
			     sl->ro[i] ? PROT_READ | PROT_WRITE : PROT_READ))
			die("mprotect");
		change_end(&ch);
		sl->ro[i] = !sl->ro[i];
	}
}

static void cpu_step(struct worker *w)
{
	struct wl *wl = w->wl;
	size_t s = rnd(w) % wl->cfg->slots, n = wl->cfg->slot_pages;
	struct slot *sl = &wl->slots[s];
	char *a = slot_addr(wl, s);
	size_t lo = rnd(w) % n, hi = lo + 1 + rnd(w) % (n - lo);
	int op = (int)(rnd(w) % 5);

	if (atomic_load(&sl->dead))
		return;
	pthread_rwlock_wrlock(&sl->lock);
	if (atomic_load(&sl->dead)) { /* retired while we waited */
		pthread_rwlock_unlock(&sl->lock);
		return;
	}
	settle_word0(wl, sl, a);
	if (op == 2 && !op_mremap(w, sl, a))
		op = 0;
	if (op == 0)
		op_new(w, sl, a);
	else if (op == 1)
		op_munmap(wl, sl, a, lo, hi);
	else if (op == 3)
		op_madvise(wl, sl, a, lo, hi);
	else if (op == 4)
		op_mprotect(wl, sl, a, lo, hi);
	pthread_rwlock_unlock(&sl->lock);
	atomic_fetch_add(&wl->ops[op], 1);
}

/* What word @i of page @p holds now, under the slot's lock. */
static uint64_t expect(struct slot *sl, uintptr_t addr, size_t p)
{
	return sl->state[p] == P_DATA ? pattern(atomic_load(&sl->gen), addr) : 0;
}

static void dev_read(struct worker *w, struct slot *sl, char *a)
{
	struct wl *wl = w->wl;
	size_t p = rnd(w) % wl->cfg->slot_pages, words = wl->pg / 8;
	size_t first = rnd(w) % words, n = 1 + rnd(w) % 32;
	uintptr_t addr = (uintptr_t)a + p * wl->pg + first * 8;
	uint64_t buf[32];
	int err;

	if (n > words - first)
		n = words - first;
	err = umn_mirror_read(wl->m, addr, buf, n * 8);
	atomic_fetch_add(&wl->reads, 1);
	if (sl->state[p] == P_NONE) {
		if (err != -EACCES)
			note_stale(wl, "read", addr, err,
				   -EACCES);
		return;
	}
	if (err) {
		note_stale(wl, "read", addr, err, 0);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		uintptr_t at = addr + i * 8;

		if (p == 0 && first + i == 0)
			continue; /* word 0: the adds */
		if (buf[i] != expect(sl, at, p))
			note_stale(wl, "read", at,
				   (long)buf[i], (long)expect(sl, at, p));
	}
}

static void dev_write(struct worker *w, struct slot *sl, char *a)
{
	struct wl *wl = w->wl;
	size_t p = rnd(w) % wl->cfg->slot_pages;
	size_t i = 1 + rnd(w) % (wl->pg / 8 - 1);
	uintptr_t addr = (uintptr_t)a + p * wl->pg + i * 8;
	uint64_t v = expect(sl, addr, p);
	int want = sl->state[p] == P_NONE || sl->ro[p] ? -EACCES : 0;
	int err = umn_mirror_write(wl->m, addr, &v, sizeof(v));

	atomic_fetch_add(&wl->writes, 1);
	if (err != want)
		note_stale(wl, "write", addr, err, want);
	else if (!err && *(volatile uint64_t *)addr != v)
		note_stale(wl, "write", addr,
			   (long)*(volatile uint64_t *)addr, (long)v);
}

static void dev_add(struct worker *w, struct slot *sl, char *a)
{
	struct wl *wl = w->wl;
	int want = sl->state[0] == P_NONE || sl->ro[0] ? -EACCES : 0;
	int err = umn_mirror_atomic_add(wl->m, (uintptr_t)a, 1, NULL);

	atomic_fetch_add(&wl->adds, 1);
	if (err != want)
		note_stale(wl, "add", (uintptr_t)a, err, want);
	else if (!err)
		atomic_fetch_add(&sl->adds, 1);
}

/* No slot lock: any generation at least as new as the one published. */
static void dev_racy_read(struct worker *w, struct slot *sl, char *a)
{
	struct wl *wl = w->wl;
	unsigned long g0 = atomic_load_explicit(&sl->gen, memory_order_acquire);
	size_t p = rnd(w) % wl->cfg->slot_pages;
	size_t i = 1 + rnd(w) % (wl->pg / 8 - 1);
	uintptr_t addr = (uintptr_t)a + p * wl->pg + i * 8;
	uint64_t v, x;

	atomic_fetch_add(&wl->racy, 1);
	if (umn_mirror_read(wl->m, addr, &v, sizeof(v)) || v == 0)
		return;
	x = v ^ (uint64_t)addr;
	if ((x & ((1ull << 48) - 1)) || (x >> 48) < g0)
		note_stale(wl, "racy read", addr,
			   (long)v, (long)g0);
}

static void device_step(struct worker *w)
{
	struct wl *wl = w->wl;
	size_t s = rnd(w) % wl->cfg->slots;
	struct slot *sl = &wl->slots[s];
	char *a = slot_addr(wl, s);
	unsigned r = (unsigned)(rnd(w) % 16);

	if (r < 4) {
		if (!atomic_load(&sl->dead))
			dev_racy_read(w, sl, a);
		return;
	}
	pthread_rwlock_rdlock(&sl->lock);
	if (atomic_load(&sl->dead))
		;
	else if (r < 12)
		dev_read(w, sl, a);
	else if (r < 15)
		dev_write(w, sl, a);
	else
		dev_add(w, sl, a);
	pthread_rwlock_unlock(&sl->lock);
}

static void *device_main(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load_explicit(&w->wl->stop, memory_order_relaxed))
		device_step(w);
	return NULL;
}

static void *cpu_main(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load_explicit(&w->wl->stop, memory_order_relaxed))
		cpu_step(w);
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
	while (now() < t) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
}

/* Regions of the mirror over unmapped memory (mincore: ENOMEM). */
static long regions_unmapped(struct wl *wl, long *count)
{
	struct umn_mirror_region r[1024];
	long n = umn_mirror_regions(wl->m, r, 1024), bad = 0;
	unsigned char vec[1];

	*count = n;
	for (long i = 0; i < n && i < 1024; i++)
		for (uintptr_t a = r[i].start; a < r[i].end; a += wl->pg)
			if (mincore((void *)a, wl->pg, vec)) {
				bad++;
				break;
			}
	return bad;
}

static int setup(struct wl *wl, struct worker *cpus)
{
	const struct mirror_workload_config *cfg = wl->cfg;
	struct umn_mirror_config mc = { .chunk = cfg->chunk };
	size_t total = cfg->slots * wl->stride;

	wl->arena = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
	if (wl->arena == MAP_FAILED)
		return -errno;
	wl->slots = calloc(cfg->slots, sizeof(*wl->slots));
	wl->m = umn_mirror_new(cfg->mm, &mc);
	if (!wl->slots || !wl->m)
		return -ENOMEM;
	for (int i = 0; i < cfg->cpu_threads; i++) {
		cpus[i].scratch = mmap(NULL, wl->len, PROT_NONE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (cpus[i].scratch == MAP_FAILED)
			return -errno;
	}
	for (size_t s = 0; s < cfg->slots; s++) {
		pthread_rwlock_init(&wl->slots[s].lock, NULL);
		op_new(&cpus[0], &wl->slots[s], slot_addr(wl, s));
	}
	return 0;
}

static void teardown(struct wl *wl, struct worker *cpus)
{
	const struct mirror_workload_config *cfg = wl->cfg;
	struct change ch = { .n = 0 };

	wl->res->regions_unmapped = regions_unmapped(wl, &wl->res->regions_end);
	for (size_t s = 0; wl->arena != MAP_FAILED && s < cfg->slots; s++) {
		char *a = slot_addr(wl, s);

		for (size_t i = 0; i <= cfg->slot_pages; i++) {
			if (i < cfg->slot_pages && wl->slots[s].lost[i])
				continue; /* not ours any more */
			change_begin(wl, &ch, a + i * wl->pg, wl->pg,
				     UMN_EVENT_UNMAP);
			munmap(a + i * wl->pg, wl->pg);
			change_end(&ch);
		}
	}
	for (int i = 0; i < cfg->cpu_threads; i++) {
		if (!cpus[i].scratch || cpus[i].scratch == MAP_FAILED)
			continue;
		change_begin(wl, &ch, cpus[i].scratch, wl->len, UMN_EVENT_UNMAP);
		munmap(cpus[i].scratch, wl->len);
		change_end(&ch);
	}
	if (wl->m) {
		wl->res->regions_after = umn_mirror_regions(wl->m, NULL, 0);
		umn_mirror_stats(wl->m, &wl->res->st);
		umn_mirror_free(wl->m);
	}
	for (size_t s = 0; wl->slots && s < cfg->slots; s++)
		pthread_rwlock_destroy(&wl->slots[s].lock);
	free(wl->slots);
}

static void collect(struct wl *wl)
{
	struct mirror_workload_result *res = wl->res;

	res->reads = atomic_load(&wl->reads);
	res->racy_reads = atomic_load(&wl->racy);
	res->writes = atomic_load(&wl->writes);
	res->adds = atomic_load(&wl->adds);
	res->stale = atomic_load(&wl->stale);
	res->adds_lost = atomic_load(&wl->lost);
	res->retired = atomic_load(&wl->retired);
	for (int i = 0; i < 5; i++)
		res->cpu_ops[i] = atomic_load(&wl->ops[i]);
}

int mirror_workload_run(const struct mirror_workload_config *cfg,
			struct mirror_workload_result *res)
{
	struct wl wl = { .cfg = cfg, .res = res, .arena = MAP_FAILED };
	int nthreads = cfg->device_threads + cfg->cpu_threads;
	struct worker *workers, *cpus;
	double t0;
	int err, started = 0;

	if (!cfg->mm || cfg->slots == 0 || cfg->slot_pages == 0 ||
	    cfg->slot_pages > MAX_PAGES || cfg->cpu_threads < 1 ||
	    cfg->device_threads < 1)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	wl.pg = (size_t)sysconf(_SC_PAGESIZE);
	wl.len = cfg->slot_pages * wl.pg;
	wl.stride = wl.len + wl.pg; /* a PROT_NONE page between slots */
	atomic_init(&wl.next_gen, 1);
	pthread_mutex_init(&wl.note_lock, NULL);
	workers = calloc((size_t)nthreads, sizeof(*workers));
	if (!workers)
		return -ENOMEM;
	cpus = workers + cfg->device_threads;
	for (int i = 0; i < nthreads; i++) {
		workers[i].wl = &wl;
		workers[i].rng = (cfg->seed + 1) * 0x9e3779b97f4a7c15ull + (uint64_t)i * 7919 + 1;
	}
	err = setup(&wl, cpus);
	t0 = now();
	for (int i = 0; !err && i < nthreads; i++, started++)
		err = -pthread_create(&workers[i].thread, NULL,
				      i < cfg->device_threads ? device_main : cpu_main,
				      &workers[i]);
	if (!err)
		sleep_until(t0 + cfg->seconds);
	atomic_store(&wl.stop, true);
	for (int i = 0; i < started; i++)
		pthread_join(workers[i].thread, NULL);
	res->seconds = now() - t0;
	for (size_t s = 0; !err && s < cfg->slots; s++)
		settle_word0(&wl, &wl.slots[s], slot_addr(&wl, s));
	collect(&wl);
	teardown(&wl, cpus);
	free(workers);
	pthread_mutex_destroy(&wl.note_lock);
	return err;
}

static void usage(void)
{
	fprintf(stderr, "usage: umn demo mirror [--seconds S] [--chunk BYTES] "
		"[--threads DEVICE,CPU]\n"
		"       umn demo mirror --bench\n");
}

/*
 * --bench: what the issue asks to measure, with its baseline from the same
 * run.  Device reads with every entry present against a memcpy of the same
 * bytes; a device fault (4 KiB and 2 MiB chunks) against the
 * process_vm_readv of one page that it needs.
 */
#define BENCH_BYTES (16ul << 20)

static double bench_reads(struct umn_mirror *m, char *buf, char *dst,
			  size_t pg, int rounds)
{
	double t0 = now();

	for (int r = 0; r < rounds; r++)
		for (size_t off = 0; off < BENCH_BYTES; off += 16 * pg)
			if (umn_mirror_read(m, (uintptr_t)buf + off, dst + off,
					    16 * pg))
				return -1;
	return now() - t0;
}

static double bench_memcpy(char *buf, char *dst, int rounds)
{
	double t0 = now();

	for (int r = 0; r < rounds; r++) {
		memcpy(dst, buf, BENCH_BYTES);
		__asm__ __volatile__("" : : "r"(dst) : "memory");
	}
	return now() - t0;
}

/* Seconds per device fault over fresh pages, with @chunk-byte regions. */
static double bench_faults(struct umn_mm *mm, size_t chunk, size_t pg,
			   size_t pages)
{
	struct umn_mirror_config mc = { .chunk = chunk };
	struct umn_mirror *m = umn_mirror_new(mm, &mc);
	char *buf = mmap(NULL, pages * pg, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	double t0, t = -1;

	if (m && buf != MAP_FAILED) {
		memset(buf, 1, pages * pg);
		t0 = now();
		for (size_t i = 0; i < pages; i++)
			if (umn_mirror_fault(m, (uintptr_t)buf + i * pg,
					     UMN_MIRROR_READ))
				break;
		t = (now() - t0) / (double)pages;
	}
	if (buf != MAP_FAILED)
		munmap(buf, pages * pg);
	if (m)
		umn_mirror_free(m);
	return t;
}

static double bench_readv(size_t pg, size_t pages)
{
	char *buf = mmap(NULL, pages * pg, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *page = malloc(pg);
	double t0, t = -1;

	if (buf != MAP_FAILED && page) {
		memset(buf, 1, pages * pg);
		t0 = now();
		for (size_t i = 0; i < pages; i++) {
			struct iovec l = { page, pg }, r = { buf + i * pg, pg };

			process_vm_readv(getpid(), &l, 1, &r, 1, 0);
		}
		t = (now() - t0) / (double)pages;
	}
	if (buf != MAP_FAILED)
		munmap(buf, pages * pg);
	free(page);
	return t;
}

static int bench(struct umn_mm *mm)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), pages = 2048;
	char *buf = mmap(NULL, BENCH_BYTES, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *dst = malloc(BENCH_BYTES);
	struct umn_mirror *m = umn_mirror_new(mm, NULL);
	double dev, cpy, f4k, f2m, rv;
	const int rounds = 20;

	if (buf == MAP_FAILED || !dst || !m)
		return 2;
	memset(buf, 7, BENCH_BYTES);
	if (bench_reads(m, buf, dst, pg, 1) < 0) /* fault everything in */
		return 2;
	dev = bench_reads(m, buf, dst, pg, rounds);
	cpy = bench_memcpy(buf, dst, rounds);
	umn_mirror_free(m);
	munmap(buf, BENCH_BYTES);
	free(dst);
	f4k = bench_faults(mm, pg, pg, pages);
	f2m = bench_faults(mm, 0, pg, pages);
	rv = bench_readv(pg, pages);
	if (dev < 0 || f4k < 0 || f2m < 0 || rv < 0)
		return 2;
	printf("umn demo mirror --bench (baselines from the same run)\n\n");
	printf("  device reads, entries present   %8.2f GB/s\n",
	       rounds * (double)BENCH_BYTES / dev / 1e9);
	printf("  memcpy of the same bytes        %8.2f GB/s\n",
	       rounds * (double)BENCH_BYTES / cpy / 1e9);
	printf("  device time / memcpy time       %8.2fx (target: within 2x)\n\n",
	       dev / cpy);
	printf("  device fault, 4 KiB chunks      %8.2f us\n", f4k * 1e6);
	printf("  device fault, 2 MiB chunks      %8.2f us\n", f2m * 1e6);
	printf("  process_vm_readv of one page    %8.2f us\n", rv * 1e6);
	printf("  ratio (fault / readv), 4 KiB    %8.1f\n", f4k / rv);
	printf("  ratio (fault / readv), 2 MiB    %8.1f\n", f2m / rv);
	printf("\nMost of a fault is the read of /proc/self/maps for the "
	       "page's permissions.\n");
	return 0;
}

static void table(const struct mirror_workload_config *cfg,
		  const struct mirror_workload_result *r)
{
	const struct umn_mirror_stats *st = &r->st;
	unsigned long acc = r->reads + r->racy_reads + r->writes + r->adds;

	printf("umn demo mirror: %d device threads, %d CPU threads, %zu slots "
	       "of %zu pages, %.1f s\n\n", cfg->device_threads,
	       cfg->cpu_threads, cfg->slots, cfg->slot_pages, r->seconds);
	printf("  CPU: map+fill %lu  munmap %lu  mremap %lu  madvise %lu  "
	       "mprotect %lu\n\n", r->cpu_ops[0], r->cpu_ops[1], r->cpu_ops[2],
	       r->cpu_ops[3], r->cpu_ops[4]);
	printf("  %-34s %12lu\n", "device faults", st->faults);
	printf("  %-34s %12lu\n", "  of them errors (EFAULT/EACCES)",
	       st->fault_errors);
	printf("  %-34s %12lu\n", "  sequence retries", st->retries);
	printf("  %-34s %12lu\n", "  reads of /proc/self/maps",
	       st->maps_reads);
	printf("  %-34s %12lu\n", "subscriptions inserted", st->inserted);
	printf("  %-34s %12lu\n", "subscriptions updated (trimmed)", st->updated);
	printf("  %-34s %12lu\n", "subscriptions split", st->splits);
	printf("  %-34s %12lu\n", "subscriptions put", st->puts);
	printf("  %-34s %12lu\n", "releases", st->released);
	printf("  %-34s %12lu\n", "invalidations", st->invalidations);
	printf("  %-34s %12lu\n", "device entries zapped", st->zapped);
	printf("  %-34s %12lu\n", "device accesses checked", acc);
	printf("  %-34s %12.0f\n", "device accesses per second",
	       (double)acc / r->seconds);
	printf("  %-34s %12lu\n", "slots retired (address taken)", r->retired);
	printf("  %-34s %12lu\n", "stale reads and wrong results", r->stale);
	printf("  %-34s %12lu\n", "device adds lost", r->adds_lost);
	printf("  %-34s %12ld\n", "regions over unmapped memory",
	       r->regions_unmapped);
	printf("  %-34s %12ld\n", "regions left after unmapping all",
	       r->regions_after);
	if (r->stale)
		printf("\nfirst: %s\n", r->first_stale);
}

int umn_demo_mirror(int argc, char **argv)
{
	struct mirror_workload_config cfg = {
		.device_threads = 4, .cpu_threads = 2, .seconds = 2.0,
		.slots = 32, .slot_pages = 8, .seed = (unsigned)time(NULL),
	};
	struct mirror_workload_result res;
	int err;

	bool run_bench = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--bench"))
			run_bench = true;
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			cfg.seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
			cfg.chunk = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc &&
			 sscanf(argv[i + 1], "%d,%d", &cfg.device_threads,
				&cfg.cpu_threads) == 2)
			i++;
		else
			return usage(), 2;
	}
	if (cfg.seconds <= 0 || cfg.device_threads < 1 || cfg.cpu_threads < 1)
		return usage(), 2;
	cfg.mm = umn_mm_process();
	if (!cfg.mm) {
		struct umn_monitor_info info;

		umn_monitor_query(&info);
		fprintf(stderr, "umn demo mirror: no process monitor: %s\n%s\n",
			strerror(errno), info.reason);
		return 77;
	}
	if (run_bench)
		return bench(cfg.mm);
	err = mirror_workload_run(&cfg, &res);
	if (err) {
		fprintf(stderr, "umn demo mirror: %s\n", strerror(-err));
		return 2;
	}
	table(&cfg, &res);
	return res.stale || res.adds_lost || res.regions_unmapped ||
	       res.regions_after ? 1 : 0;
}
