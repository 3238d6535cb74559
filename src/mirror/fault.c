// SPDX-License-Identifier: MIT
/*
 * fault — a mirror's life and its device faults.
 *
 * A device fault at @page, with the sequence protocol of the core:
 *
 *   find or insert the LIVE region holding @page     (mirror lock)
 *   seq = umn_read_begin(region)                     (no lock: may wait)
 *   /proc/self/maps: @page's permissions, and is the whole region mapped?
 *   process_vm_readv() of the host page
 *   mirror lock; same region, still LIVE, !umn_read_retry(region, seq)?
 *       no  -> unlock, start over
 *       yes -> install the entry; unlock
 *
 * Why the region is checked against /proc/self/maps after read_begin: its
 * range was chosen from an earlier read of the maps, and an unmap between
 * that read and the insert reached no subscription (or the insert was
 * deferred behind the walk of that very unmap).  read_begin returns only
 * once the insert is applied, so every unmap after it reaches the region;
 * what the maps show after read_begin is therefore all the region will
 * ever miss.  A region not wholly mapped then is dropped and the fault
 * starts over with a new one, so no region is left over unmapped memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "mirror/mirror.h"
#include "sys/debug.h"

#define DEFAULT_CHUNK (2ul << 20)

atomic_ulong umn__mirror_forks;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static int fork_registered;         /* written once, under fork_once */

/* The only thread of a new child: every mirror it inherited is stale. */
static void fork_child(void)
{
	atomic_fetch_add_explicit(&umn__mirror_forks, 1, memory_order_relaxed);
}

static void fork_register(void)
{
	fork_registered = pthread_atfork(NULL, NULL, fork_child) == 0;
}

struct umn_mirror *umn_mirror_new(struct umn_mm *mm,
				  const struct umn_mirror_config *cfg)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t chunk = cfg && cfg->chunk ? cfg->chunk : DEFAULT_CHUNK;
	struct umn_mirror *m;

	if (!mm || page <= 0 || chunk & (chunk - 1) || chunk < (size_t)page ||
	    (cfg && cfg->ops && (!cfg->ops->install || !cfg->ops->zap))) {
		errno = EINVAL;
		return NULL;
	}
	pthread_once(&fork_once, fork_register);
	m = fork_registered ? calloc(1, sizeof(*m)) : NULL;
	if (!m) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	m->forks = atomic_load_relaxed(&umn__mirror_forks);
	m->mm = mm;
	m->page = (size_t)page;
	m->chunk = chunk;
	if (cfg && cfg->ops) {
		m->ops = cfg->ops;
		m->dev = cfg->dev;
	}
	return m;
}

int umn_mirror_free(struct umn_mirror *m)
{
	int err;

	if (!m)
		return -EINVAL;
	if (umn__mirror_stale(m))
		return -ESTALE;
	err = umn_synchronize(m->mm);
	if (err)
		return err;
	for (;;) {
		struct region *r;

		pthread_mutex_lock(&m->lock);
		r = m->regions;
		if (r) {
			m->regions = r->next;
			m->st.regions--;
			r->state = REGION_DEAD;
			umn__mirror_zap_locked(m, r->start, r->end);
		}
		pthread_mutex_unlock(&m->lock);
		if (!r)
			break;
		/* LIVE until now, so inserted and neither put nor removed;
		 * not inside a callback of the space (synchronize said so). */
		err = umn_interval_remove(&r->sub);
		UMN_BUG_ON(err);
	}
	err = umn_synchronize(m->mm); /* the releases of the regions put */
	UMN_BUG_ON(err);
	if (m->ops)
		m->ops->zap(m->dev, 0, UINTPTR_MAX);
	umn__mirror_swdev_free(m);
	for (struct region *r = m->all_regions, *next; r; r = next) {
		next = r->all;
		free(r);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
	return 0;
}

/* The chunk around @page, clipped to its mapping and to the neighbours. */
static int region_create(struct umn_mirror *m, uintptr_t page,
			 struct region **out, unsigned long *gen)
{
	struct maps_result res;
	uintptr_t start = page & ~(m->chunk - 1), end = start + m->chunk;
	struct region *r;
	int err = umn__mirror_maps(page, 0, 0, &res);

	if (err)
		return err;
	if (!res.found)
		return -EFAULT;
	if (end < start)
		end = UINTPTR_MAX & ~(m->page - 1);
	start = start > res.start ? start : res.start;
	end = end < res.end ? end : res.end;
	pthread_mutex_lock(&m->lock);
	r = umn__mirror_region_find_locked(m, page);
	if (!r) {
		for (struct region *q = m->regions; q; q = q->next) {
			if (q->end <= page && q->end > start)
				start = q->end;
			if (q->start > page && q->start < end)
				end = q->start;
		}
		err = umn__mirror_region_add_locked(m, start, end, &r);
	}
	if (!err) {
		*out = r;
		*gen = r->gen;
	}
	pthread_mutex_unlock(&m->lock);
	return err;
}

static int region_get(struct umn_mirror *m, uintptr_t page,
		      struct region **out, unsigned long *gen)
{
	struct region *r;
	int err = umn__mirror_region_prealloc(m);

	if (err)
		return err;
	pthread_mutex_lock(&m->lock);
	r = umn__mirror_region_find_locked(m, page);
	if (r) {
		*out = r;
		*gen = r->gen;
	}
	pthread_mutex_unlock(&m->lock);
	return r ? 0 : region_create(m, page, out, gen);
}

static bool same_live_locked(struct region *r, unsigned long gen)
{
	return r->gen == gen && r->state == REGION_LIVE;
}

/*
 * Steps 2-3 of the fault: after read_begin, the permissions and the host
 * page.  Returns 1 when the region must be dropped and the fault retried,
 * 0 or -errno otherwise (the error stands only if the retry check passes).
 */
static int fault_read(struct umn_mirror *m, struct region *r,
		      unsigned long gen, uintptr_t page, unsigned access,
		      struct entry *e)
{
	struct maps_result res;
	uintptr_t start, end;
	bool live;
	int err;

	pthread_mutex_lock(&m->lock);
	live = same_live_locked(r, gen);
	start = r->start;
	end = r->end;
	pthread_mutex_unlock(&m->lock);
	/*
	 * An invalidation between the lookup and read_begin may have trimmed
	 * @page out of the region: an entry installed for it would then be
	 * watched by no region at all.  Look again.
	 */
	if (!live || page < start || page >= end)
		return 1;
	err = umn__mirror_maps(page, start, end, &res);
	if (err)
		return err;
	if (!res.covered) {
		umn__mirror_region_drop(m, r, gen);
		return res.found ? 1 : -EFAULT;
	}
	if ((access & ~res.prot) != 0)
		return -EACCES;
	e->prot = res.prot;
	return umn__mirror_host_read(page, e->data, m->page);
}

static int fault_install_locked(struct umn_mirror *m, struct entry **e,
				uintptr_t page)
{
	int err = 0;

	if (m->ops) {
		err = m->ops->install(m->dev, page, (*e)->data, (*e)->prot);
		return err;
	}
	*e = umn__mirror_install_locked(m, *e, page, (*e)->prot);
	return 0;
}

int umn_mirror_fault(struct umn_mirror *m, uintptr_t addr, unsigned access)
{
	uintptr_t page;
	struct entry *e;
	int err;

	if (!m || (access != UMN_MIRROR_READ &&
		   access != (UMN_MIRROR_READ | UMN_MIRROR_WRITE)))
		return -EINVAL;
	if (umn__mirror_stale(m))
		return -ESTALE;
	page = addr & ~(m->page - 1);
	e = umn__mirror_entry_get(m);
	if (!e)
		return -ENOMEM;
	for (;;) {
		struct region *r;
		unsigned long gen, seq;

		err = region_get(m, page, &r, &gen);
		if (err == -EAGAIN)
			continue; /* the pool ran dry under us: refill it */
		if (err)
			break;
		seq = umn_read_begin(&r->sub);
		err = fault_read(m, r, gen, page, access, e);
		if (err == 1)
			continue;
		pthread_mutex_lock(&m->lock);
		if (!same_live_locked(r, gen) || umn_read_retry(&r->sub, seq)) {
			m->st.retries++;
			pthread_mutex_unlock(&m->lock);
			continue;
		}
		if (!err)
			err = fault_install_locked(m, &e, page);
		pthread_mutex_unlock(&m->lock);
		break;
	}
	pthread_mutex_lock(&m->lock);
	m->st.faults++;
	if (err)
		m->st.fault_errors++;
	if (e)
		umn__mirror_entry_put_locked(m, e);
	pthread_mutex_unlock(&m->lock);
	return err;
}

int umn_mirror_stats(struct umn_mirror *m, struct umn_mirror_stats *stats)
{
	if (!m || !stats)
		return -EINVAL;
	if (umn__mirror_stale(m))
		return -ESTALE;
	pthread_mutex_lock(&m->lock);
	*stats = m->st;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

long umn_mirror_regions(struct umn_mirror *m, struct umn_mirror_region *out,
			size_t max)
{
	long n = 0;

	if (!m || (!out && max))
		return -EINVAL;
	if (umn__mirror_stale(m))
		return -ESTALE;
	pthread_mutex_lock(&m->lock);
	for (struct region *r = m->regions; r; r = r->next, n++) {
		if ((size_t)n < max) {
			out[n].start = r->start;
			out[n].end = r->end;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return n;
}
