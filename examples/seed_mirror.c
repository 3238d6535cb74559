// SPDX-License-Identifier: MIT
/*
 * seed_mirror — the scenario of the 2019 review thread, in userspace.
 *
 * A "device" mirrors host pages on demand.  It registers a region (a
 * subscription) for an aligned chunk around each device fault, with no
 * explicit register call from the application.  When part of a region is
 * unmapped, its ->invalidate() zaps the device entries and then, from inside
 * the callback: trims the region with umn_interval_update() (head or tail
 * unmapped), splits it by inserting a second region (middle unmapped), or
 * drops it with umn_interval_put() (all unmapped).  No stale region is left.
 *
 * The space here is driven by the program itself (umn_invalidate), standing
 * in for munmap; the process monitor will feed the same calls from real
 * unmaps.
 *
 * Build: cc -std=c11 seed_mirror.c $(pkg-config --cflags --libs umn)
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <umn/umn.h>

#define PAGE   0x1000ul
#define CHUNK  (16 * PAGE)
#define NPAGES 64 /* the "host" address space: [0, NPAGES * PAGE) */

struct region {
	struct umn_interval sub; /* first: container_of is a cast */
	struct device *dev;
	struct region *next;     /* the device's list, under dev->lock */
};

struct device {
	pthread_mutex_t lock;     /* the driver lock ->invalidate() takes */
	struct umn_mm *mm;
	unsigned long host[NPAGES];   /* what the host pages hold */
	unsigned long mirror[NPAGES]; /* device copies; 0 = no entry */
	struct region *list;      /* every region not yet released */
	struct region *spare;     /* preallocated, so callbacks never malloc */
	int regions, faults, invalidations, trims, splits, puts;
};

static bool region_invalidate(struct umn_interval *sub,
			      const struct umn_range *range,
			      unsigned long cur_seq);
static void region_release(struct umn_interval *sub);

static const struct umn_interval_ops region_ops = {
	.invalidate = region_invalidate,
	.release = region_release,
};

static bool region_invalidate(struct umn_interval *sub,
			      const struct umn_range *range,
			      unsigned long cur_seq)
{
	struct region *r = (struct region *)sub;
	struct device *dev = r->dev;
	uintptr_t start = umn_interval_start(sub), end = umn_interval_end(sub);
	uintptr_t lo = range->start > start ? range->start : start;
	uintptr_t hi = range->end < end ? range->end : end;

	pthread_mutex_lock(&dev->lock);
	umn_set_seq(sub, cur_seq);
	dev->invalidations++;
	for (uintptr_t a = lo; a < hi; a += PAGE)
		dev->mirror[a / PAGE] = 0;
	if (range->event == UMN_EVENT_UNMAP) {
		if (lo == start && hi == end) {
			umn_interval_put(sub); /* release() frees it later */
			dev->puts++;
		} else if (lo == start) {
			umn_interval_update(sub, hi, end - hi);
			dev->trims++;
		} else if (hi == end) {
			umn_interval_update(sub, start, lo - start);
			dev->trims++;
		} else if (dev->spare) {
			struct region *tail = dev->spare;

			dev->spare = NULL;
			umn_interval_insert(&tail->sub, dev->mm, hi, end - hi,
					    &region_ops);
			tail->next = dev->list;
			dev->list = tail;
			umn_interval_update(sub, start, lo - start);
			dev->splits++;
			dev->regions++;
		}
		/* Without a spare the region keeps watching its hole: spurious
		 * invalidations are allowed, missed ones never. */
	}
	pthread_mutex_unlock(&dev->lock);
	return true;
}

static void region_release(struct umn_interval *sub)
{
	struct region *r = (struct region *)sub;

	struct device *dev = r->dev;

	pthread_mutex_lock(&dev->lock);
	for (struct region **p = &dev->list; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			break;
		}
	}
	dev->regions--;
	pthread_mutex_unlock(&dev->lock);
	free(r);
}

/* A real driver keeps an index; a list will do for a few regions. */
static struct region *region_covering(struct device *dev, uintptr_t addr)
{
	struct region *r;

	pthread_mutex_lock(&dev->lock);
	for (r = dev->list; r; r = r->next)
		if (umn_interval_start(&r->sub) <= addr &&
		    addr < umn_interval_end(&r->sub))
			break;
	pthread_mutex_unlock(&dev->lock);
	return r;
}

/* A device access to @addr with no entry: register, then mirror the page. */
static int device_fault(struct device *dev, uintptr_t addr)
{
	struct region *r = region_covering(dev, addr);

	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return -ENOMEM;
		r->dev = dev;
		int err = umn_interval_insert(&r->sub, dev->mm,
					      addr & ~(CHUNK - 1), CHUNK,
					      &region_ops);
		if (err) {
			free(r);
			return err;
		}
		pthread_mutex_lock(&dev->lock);
		r->next = dev->list;
		dev->list = r;
		dev->regions++;
		pthread_mutex_unlock(&dev->lock);
	}
	dev->faults++;
	for (;;) { /* the sequence protocol */
		unsigned long seq = umn_read_begin(&r->sub);
		unsigned long val = dev->host[addr / PAGE]; /* "read the page" */

		pthread_mutex_lock(&dev->lock);
		if (umn_read_retry(&r->sub, seq)) {
			pthread_mutex_unlock(&dev->lock);
			continue;
		}
		dev->mirror[addr / PAGE] = val;
		pthread_mutex_unlock(&dev->lock);
		return 0;
	}
}

static void show(const struct device *dev, const char *what)
{
	printf("%-34s regions %d  faults %d  invalidations %d  trims %d  "
	       "splits %d  puts %d\n", what, dev->regions, dev->faults,
	       dev->invalidations, dev->trims, dev->splits, dev->puts);
}

static int check(bool ok, const char *what)
{
	if (!ok)
		fprintf(stderr, "seed_mirror: %s\n", what);
	return !ok;
}

int main(void)
{
	struct device dev = { .lock = PTHREAD_MUTEX_INITIALIZER };

	dev.mm = umn_mm_new();
	if (!dev.mm)
		return perror("umn_mm_new"), 1;
	for (int i = 0; i < NPAGES; i++)
		dev.host[i] = 1000 + i;
	dev.spare = calloc(1, sizeof(*dev.spare));
	if (!dev.spare)
		return perror("calloc"), 1;
	dev.spare->dev = &dev;

	/* Device faults at 0x3000 and 0x23000 register two 64 KiB chunks. */
	int bad = check(!device_fault(&dev, 0x3000) &&
			!device_fault(&dev, 0x23000), "device_fault failed");
	show(&dev, "two device faults:");

	/* Unmapping the head of the first chunk trims it from inside the
	 * callback; unmapping that head again reaches nobody. */
	umn_invalidate(dev.mm, 0x0, 0x4000, UMN_EVENT_UNMAP);
	show(&dev, "unmap head [0x0, 0x4000):");
	umn_invalidate(dev.mm, 0x0, 0x4000, UMN_EVENT_UNMAP);
	show(&dev, "unmap head again:");
	bad |= check(dev.invalidations == 1 && dev.mirror[3] == 0,
		     "the trimmed head still reached the device");

	/* Unmapping the middle of the second chunk splits it in two. */
	umn_invalidate(dev.mm, 0x24000, 0x28000, UMN_EVENT_UNMAP);
	show(&dev, "unmap middle [0x24000, 0x28000):");
	bad |= check(dev.regions == 3 && dev.splits == 1, "no split");

	/* Unmapping everything puts every region; release() frees them. */
	umn_invalidate(dev.mm, 0x0, NPAGES * PAGE, UMN_EVENT_UNMAP);
	show(&dev, "unmap all:");
	bad |= check(dev.regions == 0 && dev.puts == 3 && !dev.list,
		     "a region was left behind");

	int err = umn_mm_free(dev.mm);

	printf("umn_mm_free: %d (no subscription left behind)\n", err);
	free(dev.spare);
	return bad || err ? 1 : 0;
}
