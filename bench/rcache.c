/* SPDX-License-Identifier: MIT */
/*
 * rcache — umn_rcache_get() + umn_rcache_put() of a cached region (a hit),
 * beside a baseline built here, and the cost of an invalidation that hits
 * one cached region.
 *
 * The baseline is the classic registration cache: one mutex around a
 * sorted array of regions, found by binary search, with the reference
 * count changed under the mutex in get and in put (the shape of UCX's
 * ucs_rcache and libfabric's MR cache, minus their page tables and LRU
 * lists).  Both caches hold the same regions (n of them, one page each,
 * a page apart so that none merge) in a space the bench drives itself, and
 * register with a backend that does nothing: what is measured is the cache.
 *
 * Rows: n = 1, 1,000 and 100,000 cached regions; "one" (each thread gets
 * its own region over and over; with n = 1 two threads share it) or
 * "random" (a uniformly random region each time); 1 or 2 threads.  Each
 * thread does the same number of get+put pairs; the time is from the first
 * thread's start to the last one's finish, best of RUNS runs that kept every
 * thread on its CPU (cpu% column).
 *
 * When Debian's libucx-dev is installed, UCX's ucs_rcache is measured on
 * the same workload at the end of the run (libucs is loaded then, with
 * dlopen, because loading it patches libc).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <umn/rcache.h>

#include "bench.h"

#define MAX_THREADS   2
#define TARGET_RUN_NS 100000000ull /* a run lasts about this long */
#define RUNS          3            /* best of */
#define CONCURRENT_PCT 90.0        /* cpu% of a run whose threads all ran */
#define CALIB_PAIRS   200000ull
#define NSIZES        3

static const size_t sizes[NSIZES] = { 1, 1000, 100000 };
static uintptr_t page;

/* Region i covers [addr(i), addr(i) + page). */
static uintptr_t addr(size_t i)
{
	return (uintptr_t)0x100000000000ull + i * 2 * page;
}

/* ---- the baseline: a mutex around a sorted array --------------------- */

struct base_region {
	uintptr_t start, end;
	unsigned long refs;
};

struct base_cache {
	_Alignas(BENCH_CACHELINE) pthread_mutex_t lock;
	struct base_region *r;
	size_t n;
};

static BENCH_NOINLINE struct base_region *base_get(struct base_cache *c,
						   uintptr_t a, size_t len)
{
	struct base_region *found = NULL;
	size_t lo = 0, hi;

	pthread_mutex_lock(&c->lock);
	hi = c->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->r[mid].start <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo && a + len <= c->r[lo - 1].end) {
		found = &c->r[lo - 1];
		found->refs++;
	}
	pthread_mutex_unlock(&c->lock);
	return found;
}

static BENCH_NOINLINE void base_put(struct base_cache *c,
				    struct base_region *r)
{
	pthread_mutex_lock(&c->lock);
	r->refs--;
	pthread_mutex_unlock(&c->lock);
}

/* ---- umn ------------------------------------------------------------ */

static int noop_reg(struct umn_rcache *rc, struct umn_region *r)
{
	return 0;
}

static void noop_dereg(struct umn_rcache *rc, struct umn_region *r)
{
}

static const struct umn_rcache_ops noop_ops = {
	.reg = noop_reg,
	.dereg = noop_dereg,
};

/* ---- the workload --------------------------------------------------- */

enum variant { UMN, BASE, UCX, NVARIANTS };
static const char *const variant_name[NVARIANTS] = { "umn", "mutex", "ucx" };

struct caches {
	struct umn_rcache *umn;
	struct base_cache *base;
	void *ucx;
};

struct work {
	enum variant v;
	struct caches *c;
	size_t n;
	bool random;
	int threads;
};

typedef void *ucx_get_fn(void *rcache, uintptr_t a, size_t len);
typedef void ucx_put_fn(void *rcache, void *region);
static ucx_get_fn *ucx_get;
static ucx_put_fn *ucx_put;

/* @pairs get+put pairs; region @fixed, or random ones if @random. */
static uint64_t loop(const struct work *w, size_t fixed, uint64_t seed,
		     uint64_t pairs)
{
	uint64_t misses = 0;

	for (uint64_t i = 0; i < pairs; i++) {
		size_t k = w->random ? bench_rand_below(&seed, w->n) : fixed;
		uintptr_t a = addr(k) + 64;

		if (w->v == UMN) {
			struct umn_region *r;

			misses += umn_rcache_get(w->c->umn, (void *)a, 128, &r);
			umn_rcache_put(w->c->umn, r);
		} else if (w->v == BASE) {
			struct base_region *r = base_get(w->c->base, a, 128);

			misses += !r;
			base_put(w->c->base, r);
		} else {
			void *r = ucx_get(w->c->ucx, a, 128);

			misses += !r;
			ucx_put(w->c->ucx, r);
		}
	}
	return misses;
}

struct worker {
	_Alignas(BENCH_CACHELINE) pthread_t thread;
	const struct work *w;
	atomic_int *arrived;
	size_t fixed;
	uint64_t seed, pairs, t0, t1, cpu_ns, misses;
};

static void *worker_main(void *arg)
{
	struct worker *k = arg;
	uint64_t cpu0;

	/* A spinning start line: a thread woken from a barrier can start
	 * milliseconds after the other on a VM. */
	atomic_fetch_add(k->arrived, 1);
	while (atomic_load(k->arrived) < k->w->threads)
		;
	cpu0 = bench_thread_cpu_ns();
	k->t0 = bench_now_ns();
	k->misses = loop(k->w, k->fixed, k->seed, k->pairs);
	k->t1 = bench_now_ns();
	k->cpu_ns = bench_thread_cpu_ns() - cpu0;
	return NULL;
}

/*
 * One run: wall ns of @pairs per thread; *@pct is the threads' CPU time
 * over threads x wall time (below ~90%, a thread was off its CPU).
 */
static uint64_t run_once(const struct work *w, uint64_t pairs, double *pct)
{
	struct worker k[MAX_THREADS];
	atomic_int arrived = 0;
	uint64_t t0 = UINT64_MAX, t1 = 0, misses = 0, cpu = 0;

	for (int i = 0; i < w->threads; i++) {
		k[i] = (struct worker){
			.w = w, .arrived = &arrived, .pairs = pairs,
			/* Own regions: far apart, on lines of their own. */
			.fixed = (size_t)i * (w->n / 2),
			.seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1),
		};
		if (pthread_create(&k[i].thread, NULL, worker_main, &k[i])) {
			perror("pthread_create");
			exit(1);
		}
	}
	for (int i = 0; i < w->threads; i++) {
		pthread_join(k[i].thread, NULL);
		t0 = k[i].t0 < t0 ? k[i].t0 : t0;
		t1 = k[i].t1 > t1 ? k[i].t1 : t1;
		misses += k[i].misses;
		cpu += k[i].cpu_ns;
	}
	*pct = 100.0 * (double)cpu / ((double)(t1 - t0) * w->threads);
	if (misses) {
		fprintf(stderr, "%s: %llu gets missed a cached region\n",
			variant_name[w->v], (unsigned long long)misses);
		exit(1);
	}
	return t1 - t0;
}

struct result {
	double ns_pair;   /* one thread's cost of a pair (wall / pairs) */
	double mpairs;    /* millions of pairs per second, all threads */
	double cpu_pct;   /* of the run kept */
};

/*
 * Best of RUNS runs in which every thread kept its CPU (the machine may be
 * busy with something else: a 2-thread run that shared one CPU measures
 * nothing); up to RUNS * 4 tries, then the best run whatever its cpu%.
 */
static struct result measure(const struct work *w)
{
	double pct;
	uint64_t ns = run_once(w, CALIB_PAIRS, &pct);
	uint64_t pairs = ns ? TARGET_RUN_NS * CALIB_PAIRS / ns : CALIB_PAIRS;
	uint64_t best = UINT64_MAX, best_any = UINT64_MAX;
	double best_pct = 0, any_pct = 0;
	int good = 0;

	pairs = pairs < CALIB_PAIRS ? CALIB_PAIRS : pairs;
	for (int i = 0; i < RUNS * 4 && good < RUNS; i++) {
		ns = run_once(w, pairs, &pct);
		if (ns < best_any) {
			best_any = ns;
			any_pct = pct;
		}
		if (pct < CONCURRENT_PCT)
			continue;
		good++;
		if (ns < best) {
			best = ns;
			best_pct = pct;
		}
	}
	if (!good) {
		best = best_any;
		best_pct = any_pct;
	}
	return (struct result){
		.ns_pair = (double)best / (double)pairs,
		.mpairs = (double)pairs * w->threads * 1e3 / (double)best,
		.cpu_pct = best_pct,
	};
}

/* ---- filling the caches --------------------------------------------- */

static struct umn_mm *mm;

static struct umn_rcache *umn_fill(size_t n)
{
	struct umn_rcache_config cfg = { .mm = mm, .ops = &noop_ops };
	struct umn_rcache *rc;
	struct umn_region *r;

	if (umn_rcache_new(&cfg, &rc)) {
		fprintf(stderr, "umn_rcache_new failed\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		if (umn_rcache_get(rc, (void *)addr(i), page, &r)) {
			fprintf(stderr, "umn_rcache_get failed\n");
			exit(1);
		}
		umn_rcache_put(rc, r);
	}
	return rc;
}

static struct base_cache *base_fill(size_t n)
{
	struct base_cache *c = bench_alloc_aligned(sizeof(*c));

	pthread_mutex_init(&c->lock, NULL);
	c->n = n;
	c->r = calloc(n, sizeof(*c->r));
	if (!c->r) {
		perror("calloc");
		exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		c->r[i].start = addr(i);
		c->r[i].end = addr(i) + page;
	}
	return c;
}

static void base_free(struct base_cache *c)
{
	pthread_mutex_destroy(&c->lock);
	free(c->r);
	free(c);
}

/* ---- invalidation --------------------------------------------------- */

#define INVAL_BATCH 1000

/*
 * ns per umn_invalidate() of one random cached region's page, and per get
 * that registers it again (deregistering the old one first), among @n;
 * beside the same umn_invalidate() hitting a plain subscription that only
 * calls umn_set_seq(), among @n of them.
 */
static void measure_invalidation(size_t n)
{
	struct umn_rcache *rc = umn_fill(n);
	struct umn_mm *pmm = umn_mm_new();
	struct umn_interval *subs = calloc(n, sizeof(*subs));
	uint64_t seed = 42, inval = UINT64_MAX, reget = UINT64_MAX,
		 plain = UINT64_MAX;
	size_t batch = n < INVAL_BATCH ? n : INVAL_BATCH;
	size_t *pick = calloc(batch, sizeof(*pick));

	if (!pmm || !subs || !pick) {
		perror("invalidation setup");
		exit(1);
	}
	for (size_t i = 0; i < n; i++)
		umn_interval_insert(&subs[i], pmm, addr(i), page, &bench_plain_ops);
	for (int run = 0; run < BENCH_RUNS * 4; run++) {
		for (size_t i = 0; i < batch; i++) /* distinct when n > batch */
			pick[i] = n > batch ? (bench_rand_below(&seed, n / batch)
					       * batch + i) % n : i;
		uint64_t t0 = bench_now_ns();

		for (size_t i = 0; i < batch; i++)
			umn_invalidate(mm, addr(pick[i]), addr(pick[i]) + page,
				       UMN_EVENT_UNMAP);
		uint64_t t1 = bench_now_ns();

		for (size_t i = 0; i < batch; i++) {
			struct umn_region *r;

			umn_rcache_get(rc, (void *)addr(pick[i]), page, &r);
			umn_rcache_put(rc, r);
		}
		uint64_t t2 = bench_now_ns();

		for (size_t i = 0; i < batch; i++)
			umn_invalidate(pmm, addr(pick[i]), addr(pick[i]) + page,
				       UMN_EVENT_UNMAP);
		uint64_t t3 = bench_now_ns();

		inval = t1 - t0 < inval ? t1 - t0 : inval;
		reget = t2 - t1 < reget ? t2 - t1 : reget;
		plain = t3 - t2 < plain ? t3 - t2 : plain;
	}
	printf("%8zu %14.1f %14.1f %10.2fx %16.1f\n", n,
	       (double)inval / batch, (double)plain / batch,
	       (double)inval / (double)plain, (double)reget / batch);
	for (size_t i = 0; i < n; i++)
		umn_interval_remove(&subs[i]);
	umn_mm_free(pmm);
	free(subs);
	free(pick);
	umn_rcache_free(rc);
}

/* ---- UCX's ucs_rcache, when its header is here ---------------------- */

#if defined(__has_include)
#if __has_include(<ucs/memory/rcache.h>)
#define HAVE_UCX 1
#endif
#endif

#ifdef HAVE_UCX
#include <ucs/memory/rcache.h>

typedef ucs_status_t ucx_create_fn(const ucs_rcache_params_t *params,
				   const char *name,
				   ucs_stats_node_t *stats_parent,
				   ucs_rcache_t **rcache_p);
typedef ucs_status_t ucx_rget_fn(ucs_rcache_t *rcache, void *address,
				 size_t length, int prot, void *arg,
				 ucs_rcache_region_t **region_p);
typedef void ucx_rput_fn(ucs_rcache_t *rcache, ucs_rcache_region_t *region);
typedef void ucx_destroy_fn(ucs_rcache_t *rcache);

static ucx_rget_fn *ucx_rget;
static ucx_rput_fn *ucx_rput;

static ucs_status_t ucx_mem_reg(void *context, ucs_rcache_t *rcache,
				void *arg, ucs_rcache_region_t *region,
				uint16_t flags)
{
	return UCS_OK;
}

static void ucx_mem_dereg(void *context, ucs_rcache_t *rcache,
			  ucs_rcache_region_t *region)
{
}

static void ucx_dump(void *context, ucs_rcache_t *rcache,
		     ucs_rcache_region_t *region, char *buf, size_t max)
{
	if (max)
		buf[0] = '\0';
}

static const ucs_rcache_ops_t ucx_ops = {
	.mem_reg = ucx_mem_reg,
	.mem_dereg = ucx_mem_dereg,
	.dump_region = ucx_dump,
};

static void *ucx_get_one(void *rcache, uintptr_t a, size_t len)
{
	ucs_rcache_region_t *r;

	if (ucx_rget(rcache, (void *)a, len, 3 /* read | write */, NULL,
		     &r) != UCS_OK)
		return NULL;
	return r;
}

static void ucx_put_one(void *rcache, void *region)
{
	ucx_rput(rcache, region);
}

static void *ucx_fill(void *lib, size_t n)
{
	ucx_create_fn *create = (ucx_create_fn *)dlsym(lib, "ucs_rcache_create");
	ucs_rcache_params_t p;
	ucs_rcache_t *rc;

	memset(&p, 0, sizeof(p));
	p.region_struct_size = sizeof(ucs_rcache_region_t);
	p.alignment = page;
	p.max_alignment = page;
	p.ucm_events = 0; /* the bench drives nothing through ucm */
	p.ucm_event_priority = 1000;
	p.ops = &ucx_ops;
	p.flags = UCS_RCACHE_FLAG_NO_PFN_CHECK;
	p.max_regions = (unsigned long)-1;
	p.max_size = (size_t)-1;
	if (!create || create(&p, "bench", NULL, &rc) != UCS_OK) {
		fprintf(stderr, "ucs_rcache_create failed\n");
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		ucx_put_one(rc, ucx_get_one(rc, addr(i), page));
	return rc;
}

static void *ucx_load(void)
{
	void *lib = dlopen("libucs.so.0", RTLD_NOW | RTLD_GLOBAL);

	if (!lib) {
		printf("\nUCX: not measured (%s)\n", dlerror());
		return NULL;
	}
	ucx_rget = (ucx_rget_fn *)dlsym(lib, "ucs_rcache_get");
	ucx_rput = (ucx_rput_fn *)dlsym(lib, "ucs_rcache_region_put");
	if (!ucx_rget || !ucx_rput) {
		printf("\nUCX: not measured (no ucs_rcache_get/_put)\n");
		return NULL;
	}
	ucx_get = ucx_get_one;
	ucx_put = ucx_put_one;
	return lib;
}

static void ucx_free(void *lib, void *rc)
{
	ucx_destroy_fn *destroy =
		(ucx_destroy_fn *)dlsym(lib, "ucs_rcache_destroy");

	if (destroy)
		destroy(rc);
}
#endif

/* ---- report --------------------------------------------------------- */

struct row {
	size_t n;
	bool random;
	int threads;
	struct result res[NVARIANTS];
};

#define NROWS (NSIZES * 2 * 2)

static void print_rows(const struct row *rows, bool ucx)
{
	printf("%8s %-6s %7s %10s %5s %10s %9s %10s %10s", "regions", "which",
	       "threads", "umn ns", "cpu%", "mutex ns", "x mutex", "x 1thread",
	       "mutex x1t");
	if (ucx)
		printf(" %9s %9s %9s", "ucx ns", "x ucx", "ucx x1t");
	printf("\n");
	for (int i = 0; i < NROWS; i++) {
		const struct row *r = &rows[i];
		const struct row *one = &rows[i - (r->threads == 2)];

		printf("%8zu %-6s %7d %10.2f %4.0f%% %10.2f %8.2fx %9.2fx "
		       "%9.2fx", r->n, r->random ? "random" : "one", r->threads,
		       r->res[UMN].ns_pair, r->res[UMN].cpu_pct,
		       r->res[BASE].ns_pair,
		       r->res[UMN].mpairs / r->res[BASE].mpairs,
		       r->res[UMN].mpairs / one->res[UMN].mpairs,
		       r->res[BASE].mpairs / one->res[BASE].mpairs);
		if (ucx)
			printf(" %9.2f %8.2fx %8.2fx", r->res[UCX].ns_pair,
			       r->res[UMN].mpairs / r->res[UCX].mpairs,
			       r->res[UCX].mpairs / one->res[UCX].mpairs);
		printf("\n");
	}
}

static const char *verdict(bool met)
{
	return met ? "met" : "MISSED";
}

static void print_verdicts(const struct row *rows)
{
	/* Rows: size-major, then one/random, then 1/2 threads. */
	const struct row *one1 = &rows[0], *own2 = &rows[4 + 1];
	const struct row *own1 = &rows[4];
	const struct row *rnd1 = &rows[2 * 4 + 2];
	double scale = own2->res[UMN].mpairs / own1->res[UMN].mpairs;

	printf("\nhit, 1 thread, 1 region: %.2f ns (target <= 30): %s\n",
	       one1->res[UMN].ns_pair, verdict(one1->res[UMN].ns_pair <= 30));
	printf("hit, 2 threads on their own regions (1,000 cached): %.2fx 1 "
	       "thread (target >= 1.8): %s\n", scale, verdict(scale >= 1.8));
	printf("random hit among 100,000: %.2f ns (target <= 150): %s\n",
	       rnd1->res[UMN].ns_pair, verdict(rnd1->res[UMN].ns_pair <= 150));
	/* umn never sleeps: a umn run below CONCURRENT_PCT lost its CPU.  The
	 * locked caches sleep on their locks, so theirs say nothing. */
	for (int i = 0; i < NROWS; i++) {
		if (rows[i].res[UMN].cpu_pct < CONCURRENT_PCT) {
			printf("note: no umn run of row %d kept every thread on "
			       "its CPU (cpu%% < %.0f): the machine was busy; "
			       "run again\n", i + 1, CONCURRENT_PCT);
			break;
		}
	}
}

int main(void)
{
	struct row rows[NROWS];
	int nv = 2;

	page = (uintptr_t)sysconf(_SC_PAGESIZE);
	mm = umn_mm_new();
	if (!mm) {
		perror("umn_mm_new");
		return 1;
	}
	printf("rcache: get+put of a cached region (ns per pair, one "
	       "thread's view), best of %d runs\n\n", RUNS);
	for (int s = 0, i = 0; s < NSIZES; s++) {
		struct caches c = { .umn = umn_fill(sizes[s]),
				    .base = base_fill(sizes[s]) };

		for (int rnd = 0; rnd < 2; rnd++) {
			for (int t = 1; t <= 2; t++, i++) {
				rows[i] = (struct row){ .n = sizes[s],
							.random = rnd,
							.threads = t };
				for (int v = 0; v < nv; v++) {
					struct work w = { (enum variant)v, &c,
							  sizes[s], rnd, t };

					rows[i].res[v] = measure(&w);
				}
			}
		}
		umn_rcache_free(c.umn);
		base_free(c.base);
	}
#ifdef HAVE_UCX
	void *lib = ucx_load();

	if (lib) {
		for (int s = 0, i = 0; s < NSIZES; s++) {
			struct caches c = { .ucx = ucx_fill(lib, sizes[s]) };

			if (!c.ucx)
				break;
			for (int rnd = 0; rnd < 2; rnd++) {
				for (int t = 1; t <= 2; t++, i++) {
					struct work w = { UCX, &c, sizes[s],
							  rnd, t };

					rows[i].res[UCX] = measure(&w);
				}
			}
			ucx_free(lib, c.ucx);
			nv = 3;
		}
	}
#endif
	print_rows(rows, nv == 3);
	print_verdicts(rows);
	printf("\ninvalidation of one cached region's page (ns per call), "
	       "beside a subscription\nthat only calls umn_set_seq(); and the "
	       "get that registers it again\n");
	printf("%8s %14s %14s %11s %16s\n", "regions", "rcache inval",
	       "plain inval", "x plain", "re-get (miss)");
	for (int s = 0; s < NSIZES; s++)
		measure_invalidation(sizes[s]);
	umn_mm_free(mm);
	return 0;
}
