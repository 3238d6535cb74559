/* SPDX-License-Identifier: MIT */
/*
 * What the rcache tests share: a fake backend that registers nothing but
 * checks how it is called (each region registered once, deregistered once,
 * never inside an invalidation), and a cache over a space the test drives
 * with umn_invalidate(), at made-up addresses (nothing is mapped there).
 */
#ifndef UMN_TESTS_RCACHE_HELPERS_H
#define UMN_TESTS_RCACHE_HELPERS_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/helpers.h"

#include <umn/rcache.h>

/* Made-up addresses: a page-aligned base far from anything real. */
#define BASE ((uintptr_t)0x40000000)

static inline uintptr_t pg(void)
{
	return (uintptr_t)sysconf(_SC_PAGESIZE);
}

/* Address of page @n from BASE. */
static inline const void *at(long n)
{
	return (const void *)(BASE + (uintptr_t)n * pg());
}

/*
 * Set around the invalidations the test thread makes: the fake backend
 * counts a ->dereg() called while it is set, which would be one called
 * inside an invalidation walk.
 */
static _Thread_local int t_in_walk;

struct fake {
	atomic_int regs, deregs, live, next_id;
	atomic_int bad_dereg;     /* deregistered twice, or never registered */
	atomic_int dereg_in_walk; /* called inside a walk of this thread */
	atomic_int fail_next;     /* the next ->reg returns -fail_next */
	/* Called inside ->reg, for tests that need to act there. */
	void (*reg_hook)(struct fake *f, struct umn_region *r);
	void *hook_arg;
};

struct fake_data {
	atomic_int registered;
	int id;
	uintptr_t start, end; /* what ->reg saw */
	unsigned long hook_word; /* free for reg_hook */
};

static inline struct fake_data *fdata(struct umn_region *r)
{
	return umn_region_data(r);
}

static inline int fake_reg(struct umn_rcache *rc, struct umn_region *r)
{
	struct fake *f = umn_rcache_ctx(rc);
	struct fake_data *d = fdata(r);
	int fail = atomic_exchange(&f->fail_next, 0);

	if (fail)
		return -fail;
	if (f->reg_hook)
		f->reg_hook(f, r);
	if (atomic_exchange(&d->registered, 1))
		atomic_fetch_add(&f->bad_dereg, 1); /* data not zeroed */
	d->id = atomic_fetch_add(&f->next_id, 1) + 1;
	d->start = umn_region_start(r);
	d->end = umn_region_end(r);
	atomic_fetch_add(&f->regs, 1);
	atomic_fetch_add(&f->live, 1);
	return 0;
}

static inline void fake_dereg(struct umn_rcache *rc, struct umn_region *r)
{
	struct fake *f = umn_rcache_ctx(rc);
	struct fake_data *d = fdata(r);

	if (!atomic_exchange(&d->registered, 0))
		atomic_fetch_add(&f->bad_dereg, 1);
	if (t_in_walk)
		atomic_fetch_add(&f->dereg_in_walk, 1);
	atomic_fetch_add(&f->deregs, 1);
	atomic_fetch_sub(&f->live, 1);
}

static const struct umn_rcache_ops fake_ops = {
	.reg = fake_reg,
	.dereg = fake_dereg,
};

/* A space and a cache over it with the fake backend. */
struct env {
	struct umn_mm *mm;
	struct umn_rcache *rc;
	struct fake f;
};

static inline void env_open_cfg(struct env *e, struct umn_rcache_config *cfg)
{
	memset(&e->f, 0, sizeof(e->f));
	e->mm = umn_mm_new();
	assert_non_null(e->mm);
	cfg->mm = e->mm;
	cfg->ops = &fake_ops;
	cfg->ctx = &e->f;
	cfg->region_data_size = sizeof(struct fake_data);
	assert_int_equal(umn_rcache_new(cfg, &e->rc), 0);
	assert_non_null(e->rc);
}

static inline void env_open(struct env *e)
{
	struct umn_rcache_config cfg = {0};

	env_open_cfg(e, &cfg);
}

/* Free everything, and check the backend saw each region once each way. */
static inline void env_close(struct env *e)
{
	assert_int_equal(umn_rcache_free(e->rc), 0);
	assert_int_equal(umn_mm_free(e->mm), 0);
	assert_int_equal(atomic_load(&e->f.live), 0);
	assert_int_equal(atomic_load(&e->f.regs), atomic_load(&e->f.deregs));
	assert_int_equal(atomic_load(&e->f.bad_dereg), 0);
	assert_int_equal(atomic_load(&e->f.dereg_in_walk), 0);
}

static inline struct umn_region *get_ok(struct env *e, long page, long pages)
{
	struct umn_region *r = NULL;

	assert_int_equal(umn_rcache_get(e->rc, at(page),
					(size_t)pages * pg(), &r), 0);
	assert_non_null(r);
	assert_true(umn_region_start(r) <= (uintptr_t)at(page));
	assert_true(umn_region_end(r) >= (uintptr_t)at(page + pages));
	assert_true(umn_region_valid(r));
	return r;
}

static inline void put_ok(struct env *e, struct umn_region *r)
{
	assert_int_equal(umn_rcache_put(e->rc, r), 0);
}

/* Invalidate pages [first, first + pages) as the test thread. */
static inline void inval(struct env *e, long first, long pages,
			 enum umn_event ev)
{
	t_in_walk = 1;
	assert_int_equal(umn_invalidate(e->mm, (uintptr_t)at(first),
					(uintptr_t)at(first + pages), ev), 0);
	t_in_walk = 0;
}

static inline struct umn_rcache_stats stats(struct env *e)
{
	struct umn_rcache_stats st;

	assert_int_equal(umn_rcache_stats(e->rc, &st), 0);
	return st;
}

/* Locked memory of the whole process, in bytes (VmLck). */
static inline long locked(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	fclose(f);
	assert_true(kb >= 0);
	return kb * 1024;
}

#endif /* UMN_TESTS_RCACHE_HELPERS_H */
