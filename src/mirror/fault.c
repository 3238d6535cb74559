// SPDX-License-Identifier: MIT
/*
 * fault — a mirror's life and its device faults.
 *
 * A device fault at @page, with the sequence protocol of the core:
 *
 *   find the LIVE region holding @page, or insert one      (mirror lock)
 *     over the aligned chunk around it, clipped to the live
 *     neighbours, if mincore() says @page is mapped at all
 *   seq = umn_read_begin(region)                           (no lock: may wait)
 *   /proc/self/maps: @page's mapping and permissions; is the region all
 *     mapped (and, unchecked, inside @page's mapping)?  If not, clip it to
 *     @page's mapping and start over
 *   process_vm_readv() of the host page
 *   mirror lock; same region, still LIVE, !umn_read_retry(region, seq)?
 *       no  -> unlock, start over
 *       yes -> the region is checked; install the entry; unlock
 *
 * Why the region's range is settled by a read of the maps after
 * read_begin: read_begin returns only once the insert (and any update) is
 * applied, so every unmap after it reaches the region; what the maps show
 * after read_begin is therefore all the region will ever miss.  A range
 * read from the maps before the insert could miss an unmap between the
 * two.  So a fault reads the maps once, after read_begin, for both the
 * range and the permissions; twice when it inserts a chunk wider than the
 * mapping (the clip, then the read of the clipped region).
 *
 * A region a fault inserts is that fault's to check (mirror.h): it checks
 * it, or drops it before it returns, when it fails (no entry came from
 * the region) or when the region was never checked (another one served).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
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
	    (cfg && cfg->ops && (!cfg->ops->install || !cfg->ops->zap)) ||
	    (cfg && cfg->flags & ~UMN_MIRROR_SIGNAL_SAFE)) {
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
	m->signal_safe = cfg && cfg->flags & UMN_MIRROR_SIGNAL_SAFE;
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

		umn__mirror_lock(m);
		r = m->regions;
		if (r) {
			m->regions = r->next;
			m->st.regions--;
			r->state = REGION_DEAD;
			umn__mirror_zap_locked(m, r->start, r->end);
		}
		umn__mirror_unlock(m);
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

/* What one device fault carries through its retries. */
struct fault {
	struct umn_mirror *m;
	uintptr_t page;
	unsigned access;
	struct entry *e;
	struct region *made;        /* the region it inserted, or NULL */
	unsigned long made_gen;
	unsigned long maps_reads;
	bool seen;                  /* the maps showed the region mapped */
};

/* fault_read() results besides 0 and -errno. */
#define FAULT_RETRY    1            /* start over from the lookup */
#define FAULT_UNMAPPED 2            /* the page is not mapped: -EFAULT */

/* The chunk around the page, clipped to the live neighbours. */
static int region_create_locked(struct fault *f, struct region **out)
{
	struct umn_mirror *m = f->m;
	uintptr_t start = f->page & ~(m->chunk - 1), end = start + m->chunk;

	if (end < start)
		end = UINTPTR_MAX & ~(m->page - 1);
	for (struct region *q = m->regions; q; q = q->next) {
		if (q->end <= f->page && q->end > start)
			start = q->end;
		if (q->start > f->page && q->start < end)
			end = q->start;
	}
	return umn__mirror_region_add_locked(m, start, end, out);
}

static struct region *region_find(struct fault *f, unsigned long *gen)
{
	struct region *r;

	umn__mirror_lock(f->m);
	r = umn__mirror_region_find_locked(f->m, f->page);
	if (r)
		*gen = r->gen;
	umn__mirror_unlock(f->m);
	return r;
}

/* Is the page mapped at all?  mincore() fails with ENOMEM where not. */
static bool page_mapped(const struct fault *f)
{
	unsigned char vec;

	return mincore((void *)f->page, f->m->page, &vec) == 0 ||
	       errno != ENOMEM;
}

/*
 * The LIVE region holding the page, inserted if there is none and the
 * page is mapped.  A region this fault inserted before and that lost the
 * page meanwhile (an unmap trimmed it) was never checked against the maps:
 * it is dropped.
 */
static int region_get(struct fault *f, struct region **out,
		      unsigned long *gen)
{
	struct umn_mirror *m = f->m;
	struct region *old = f->made;
	unsigned long old_gen = f->made_gen;
	int err = umn__mirror_region_prealloc(m);

	if (err)
		return err;
	*out = region_find(f, gen);
	if (*out)
		return 0;
	if (!page_mapped(f))
		return -EFAULT;
	umn__mirror_lock(m);
	*out = umn__mirror_region_find_locked(m, f->page);
	if (!*out) {
		err = region_create_locked(f, out);
		if (!err) {
			f->made = *out;
			f->made_gen = (*out)->gen;
		}
	}
	if (!err)
		*gen = (*out)->gen;
	umn__mirror_unlock(m);
	if (old && f->made != old)
		umn__mirror_region_drop(m, old, old_gen, false);
	return err;
}

static bool same_live_locked(struct region *r, unsigned long gen)
{
	return r->gen == gen && r->state == REGION_LIVE;
}

/*
 * After read_begin, the maps say the region is over memory that is not
 * all mapped (or, unchecked, over more than the page's mapping): clip it
 * to the page's mapping, which checks it.  The update makes the read
 * retry, and the next read_begin waits for it to be applied.
 */
static int fault_clip(struct fault *f, struct region *r, unsigned long gen,
		      const struct maps_result *res)
{
	struct umn_mirror *m = f->m;

	umn__mirror_lock(m);
	if (same_live_locked(r, gen))
		umn__mirror_region_clip_locked(r, f->page, res->start,
					       res->end);
	umn__mirror_unlock(m);
	return FAULT_RETRY;
}

/*
 * After read_begin: the permissions and the host page.  Returns 0 or
 * -errno (which stands only if the retry check passes), FAULT_RETRY or
 * FAULT_UNMAPPED.
 */
static int fault_read(struct fault *f, struct region *r, unsigned long gen)
{
	struct umn_mirror *m = f->m;
	struct maps_result res;
	uintptr_t start, end;
	bool live, checked;
	int err;

	umn__mirror_lock(m);
	live = same_live_locked(r, gen);
	checked = r->checked;
	start = r->start;
	end = r->end;
	umn__mirror_unlock(m);
	/*
	 * An invalidation between the lookup and read_begin may have trimmed
	 * the page out of the region: an entry installed for it would then be
	 * watched by no region at all.  Look again.
	 */
	if (!live || f->page < start || f->page >= end)
		return FAULT_RETRY;
	f->maps_reads++;
	err = umn__mirror_maps(f->page, start, end, &res);
	if (err)
		return err;
	if (!res.found) {
		umn__mirror_region_drop(m, r, gen, true);
		return FAULT_UNMAPPED;
	}
	/*
	 * An unchecked region must lie in the page's own mapping: the chunk
	 * may reach into mappings whose changes the space never hears of
	 * (on a space the caller drives, all but its own).
	 */
	if (!res.covered || (!checked && (start < res.start || end > res.end)))
		return fault_clip(f, r, gen, &res);
	f->seen = true;
	if ((f->access & ~res.prot) != 0)
		return -EACCES;
	f->e->prot = res.prot;
	return umn__mirror_host_read(f->page, f->e->data, m->page);
}

static int fault_install_locked(struct fault *f)
{
	struct umn_mirror *m = f->m;

	if (m->ops)
		return m->ops->install(m->dev, f->page, f->e->data, f->e->prot);
	f->e = umn__mirror_install_locked(m, f->e, f->page, f->e->prot);
	return 0;
}

/*
 * read_begin gave a sequence that retries already.  Either an invalidation
 * came in between, or the region went, or this thread is inside a walk or
 * a release of the space and read_begin would have had to wait for it
 * (the region was hit by the period, or its insert or update is deferred):
 * then it hands out a sequence that always retries, every pass gets the
 * same, and the period cannot end while the fault loops in it.  A region
 * that is not the same LIVE one went.  Else umn_synchronize() tells the
 * other two apart: -EDEADLK at once inside a walk, or it waits for the
 * walks in flight, as the next read_begin would.  No use reading the page
 * with this sequence: FAULT_RETRY.
 */
static int fault_seq_retries(struct fault *f, struct region *r,
			     unsigned long gen)
{
	bool live;

	umn__mirror_lock(f->m);
	live = same_live_locked(r, gen);
	f->m->st.retries++;
	umn__mirror_unlock(f->m);
	if (live && umn_synchronize(f->m->mm) == -EDEADLK)
		return -EDEADLK;
	return FAULT_RETRY;
}

/* The fault's loop; returns the region it installed through in *@used. */
static int fault_run(struct fault *f, struct region **used)
{
	struct umn_mirror *m = f->m;

	for (;;) {
		struct region *r;
		unsigned long gen, seq;
		int err = region_get(f, &r, &gen);

		if (err == -EAGAIN)
			continue; /* the pool ran dry under us: refill it */
		if (err)
			return err;
		seq = umn_read_begin(&r->sub);
		if (umn_check_retry(&r->sub, seq)) {
			err = fault_seq_retries(f, r, gen);
			if (err == FAULT_RETRY)
				continue;
			return err;
		}
		f->seen = false;
		err = fault_read(f, r, gen);
		if (err == FAULT_RETRY)
			continue;
		if (err == FAULT_UNMAPPED)
			return -EFAULT;
		umn__mirror_lock(m);
		if (!same_live_locked(r, gen) || umn_read_retry(&r->sub, seq)) {
			m->st.retries++;
			umn__mirror_unlock(m);
			continue;
		}
		/* The maps read after read_begin stands. */
		if (f->seen)
			r->checked = true;
		if (!err)
			err = fault_install_locked(f);
		umn__mirror_unlock(m);
		*used = r;
		return err;
	}
}

int umn_mirror_fault(struct umn_mirror *m, uintptr_t addr, unsigned access)
{
	struct fault f = { .m = m, .access = access };
	struct region *used = NULL;
	int err;

	if (!m || (access != UMN_MIRROR_READ &&
		   access != (UMN_MIRROR_READ | UMN_MIRROR_WRITE)))
		return -EINVAL;
	if (umn__mirror_stale(m))
		return -ESTALE;
	f.page = addr & ~(m->page - 1);
	f.e = umn__mirror_entry_get(m);
	if (!f.e)
		return -ENOMEM;
	/* The last page: no region can hold it (its end would be 0). */
	err = f.page > UINTPTR_MAX - m->page ? -EFAULT : fault_run(&f, &used);
	/*
	 * A region this fault inserted goes if the fault failed (no entry
	 * came from it), or if it was never checked (another region served).
	 */
	if (f.made && (err || used != f.made))
		umn__mirror_region_drop(m, f.made, f.made_gen, err != 0);
	umn__mirror_lock(m);
	m->st.faults++;
	m->st.maps_reads += f.maps_reads;
	if (err)
		m->st.fault_errors++;
	if (f.e)
		umn__mirror_entry_put_locked(m, f.e);
	umn__mirror_unlock(m);
	return err;
}

int umn_mirror_stats(struct umn_mirror *m, struct umn_mirror_stats *stats)
{
	if (!m || !stats)
		return -EINVAL;
	if (umn__mirror_stale(m))
		return -ESTALE;
	umn__mirror_lock(m);
	*stats = m->st;
	umn__mirror_unlock(m);
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
	umn__mirror_lock(m);
	for (struct region *r = m->regions; r; r = r->next, n++) {
		if ((size_t)n < max) {
			out[n].start = r->start;
			out[n].end = r->end;
		}
	}
	umn__mirror_unlock(m);
	return n;
}
