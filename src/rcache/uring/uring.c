// SPDX-License-Identifier: MIT
/*
 * uring — io_uring fixed buffers as a registration cache backend.
 *
 * Owns one ring's registered buffer table: registered once, every slot
 * empty, then filled and emptied one slot at a time with
 * IORING_REGISTER_BUFFERS_UPDATE.  The kernel keeps the pages of a slot
 * pinned from the update that fills it until the update that empties it
 * (and, after that, until the requests already using them complete).
 *
 * Each slot is in one state, and moves only under ur->lock:
 *
 *   FREE  → CACHE     ->reg() of a cache region took it
 *   FREE  → USER      umn_rcache_uring_reg() took it
 *   CACHE → FREE      ->dereg(), after the slot was emptied
 *   USER  → EMPTYING  umn_rcache_uring_dereg() claimed it (a second
 *                     dereg of the slot now gets -ENOENT)
 *   EMPTYING → FREE   the same call, after the slot was emptied
 *
 * A slot leaves FREE before its update is made and returns to it only
 * after the update that empties it: no two regions ever share a slot, and
 * a region's slot is reused only after its ->dereg().  The system calls
 * are made without the lock (the kernel serializes updates of one ring).
 *
 * Never called from the monitor's wrappers: the cache calls ->reg() from
 * umn_rcache_get() and ->dereg() at its own safe points.
 */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <umn/rcache_uring.h>

#include "rcache/uring/uring.h"

enum slot_state { SLOT_FREE, SLOT_CACHE, SLOT_USER, SLOT_EMPTYING };

/* ring and nr_slots are set before the backend is returned, never after. */
struct umn_rcache_uring {
	struct io_uring *ring;
	unsigned nr_slots;
	pthread_mutex_t lock;           /* guards the three fields below */
	unsigned nfree;
	unsigned *free_slots;           /* a stack: free_slots[nfree - 1] is next */
	unsigned char *state;           /* enum slot_state, per slot */
};

/* The kernel refuses to register a buffer longer than this (-EFAULT). */
#define URING_MAX_BUF ((size_t)1 << 30)

/* What the cache keeps in each region for us (config.region_data_size). */
struct uring_region {
	unsigned slot;
};

static int slot_take(struct umn_rcache_uring *ur, enum slot_state to)
{
	int slot = -ENOSPC;

	pthread_mutex_lock(&ur->lock);
	if (ur->nfree) {
		slot = (int)ur->free_slots[--ur->nfree];
		ur->state[slot] = (unsigned char)to;
	}
	pthread_mutex_unlock(&ur->lock);
	return slot;
}

static void slot_give(struct umn_rcache_uring *ur, unsigned slot)
{
	pthread_mutex_lock(&ur->lock);
	ur->state[slot] = SLOT_FREE;
	ur->free_slots[ur->nfree++] = slot;
	pthread_mutex_unlock(&ur->lock);
}

/*
 * Put [addr, addr + len) in @slot, or empty it (addr NULL, len 0).  Tag 0:
 * the kernel posts no completion when it retires the old pages, so the
 * ring's owner never sees a CQE it did not ask for.
 */
int umn__uring_table_set(struct io_uring *ring, unsigned slot,
			 const void *addr, size_t len)
{
	struct iovec iov = { .iov_base = (void *)(uintptr_t)addr, .iov_len = len };
	__u64 tag = 0;
	int ret;

	do {
		ret = io_uring_register_buffers_update_tag(ring, slot, &iov,
							   &tag, 1);
	} while (ret == -EINTR);
	if (ret == 1)
		return 0;
	return ret < 0 ? ret : -EIO;
}

/*
 * An empty table of @nr slots: sparse (Linux 5.19), else empty placeholders
 * (5.13 to 5.18, which reject the sparse flag with -EINVAL).  -EINVAL from
 * both means a kernel that cannot replace registered buffers.
 */
int umn__uring_table_register(struct io_uring *ring, unsigned nr)
{
	struct iovec *iov;
	__u64 *tags;
	int ret = io_uring_register_buffers_sparse(ring, nr);

	if (ret != -EINVAL)
		return ret;
	iov = calloc(nr, sizeof(*iov));
	tags = calloc(nr, sizeof(*tags));
	if (!iov || !tags)
		ret = -ENOMEM;
	else
		ret = io_uring_register_buffers_tags(ring, iov, tags, nr);
	free(iov);
	free(tags);
	return ret == -EINVAL ? -ENOTSUP : ret;
}

static int uring_region_reg(struct umn_rcache *rc, struct umn_region *region)
{
	struct umn_rcache_uring *ur = umn_rcache_ctx(rc);
	struct uring_region *d = umn_region_data(region);
	uintptr_t start = umn_region_start(region);
	int slot = slot_take(ur, SLOT_CACHE);
	int ret;

	if (slot < 0)
		return slot;
	ret = umn__uring_table_set(ur->ring, (unsigned)slot,
				   (const void *)start,
				   umn_region_end(region) - start);
	if (ret) {
		slot_give(ur, (unsigned)slot);  /* a failed update left it empty */
		return ret;
	}
	d->slot = (unsigned)slot;
	return 0;
}

/*
 * Should emptying fail (the ring closed under us), the slot still goes
 * back: the next update of it replaces the old pages anyway.
 */
static void uring_region_dereg(struct umn_rcache *rc, struct umn_region *region)
{
	struct umn_rcache_uring *ur = umn_rcache_ctx(rc);
	struct uring_region *d = umn_region_data(region);

	umn__uring_table_set(ur->ring, d->slot, NULL, 0);
	slot_give(ur, d->slot);
}

static const struct umn_rcache_ops uring_rcache_ops = {
	.reg = uring_region_reg,
	.dereg = uring_region_dereg,
};

int umn_rcache_uring_new(struct io_uring *ring, unsigned nr_slots,
			 struct umn_rcache_uring **out)
{
	struct umn_rcache_uring *ur;
	int ret;

	if (!ring || !out || nr_slots == 0 ||
	    nr_slots > UMN_RCACHE_URING_MAX_SLOTS)
		return -EINVAL;
	ur = calloc(1, sizeof(*ur));
	if (!ur)
		return -ENOMEM;
	ur->free_slots = calloc(nr_slots, sizeof(*ur->free_slots));
	ur->state = calloc(nr_slots, sizeof(*ur->state));
	ret = ur->free_slots && ur->state ? 0 : -ENOMEM;
	if (!ret)
		ret = -pthread_mutex_init(&ur->lock, NULL);
	if (!ret) {
		ret = umn__uring_table_register(ring, nr_slots);
		if (ret)
			pthread_mutex_destroy(&ur->lock);
	}
	if (ret) {
		free(ur->free_slots);
		free(ur->state);
		free(ur);
		return ret;
	}
	ur->ring = ring;
	ur->nr_slots = nr_slots;
	/* Slot 0 on top, so slots are handed out from 0 up. */
	for (unsigned i = 0; i < nr_slots; i++)
		ur->free_slots[i] = nr_slots - 1 - i;
	ur->nfree = nr_slots;
	*out = ur;
	return 0;
}

int umn_rcache_uring_free(struct umn_rcache_uring *ur)
{
	unsigned nfree;

	if (!ur)
		return -EINVAL;
	pthread_mutex_lock(&ur->lock);
	nfree = ur->nfree;
	pthread_mutex_unlock(&ur->lock);
	if (nfree != ur->nr_slots)
		return -EBUSY;
	/* Nothing to do if it fails: every slot is empty, and a closed
	 * ring took its table with it. */
	io_uring_unregister_buffers(ur->ring);
	pthread_mutex_destroy(&ur->lock);
	free(ur->free_slots);
	free(ur->state);
	free(ur);
	return 0;
}

int umn_rcache_uring_config(struct umn_rcache_uring *ur,
			    struct umn_rcache_config *cfg)
{
	if (!ur || !cfg)
		return -EINVAL;
	cfg->ops = &uring_rcache_ops;
	cfg->ctx = ur;
	cfg->region_data_size = sizeof(struct uring_region);
	if (!cfg->max_regions)
		cfg->max_regions = ur->nr_slots / 2 ? ur->nr_slots / 2 : 1;
	if (!cfg->max_region_bytes || cfg->max_region_bytes > URING_MAX_BUF)
		cfg->max_region_bytes = URING_MAX_BUF;
	return 0;
}

int umn_rcache_uring_slot(struct umn_region *region)
{
	const struct uring_region *d;

	if (!region)
		return -EINVAL;
	d = umn_region_data(region);
	if (!d) /* a cache not set up by umn_rcache_uring_config() */
		return -EINVAL;
	return (int)d->slot;
}

int umn_rcache_uring_reg(struct umn_rcache_uring *ur, const void *addr,
			 size_t len, unsigned *slot)
{
	int s, ret;

	if (!ur || !addr || !len || !slot)
		return -EINVAL;
	if ((uintptr_t)addr + len - 1 < (uintptr_t)addr)
		return -EOVERFLOW;
	s = slot_take(ur, SLOT_USER);
	if (s < 0)
		return s;
	ret = umn__uring_table_set(ur->ring, (unsigned)s, addr, len);
	if (ret) {
		slot_give(ur, (unsigned)s);
		return ret;
	}
	*slot = (unsigned)s;
	return 0;
}

int umn_rcache_uring_dereg(struct umn_rcache_uring *ur, unsigned slot)
{
	bool mine;

	if (!ur || slot >= ur->nr_slots)
		return -EINVAL;
	pthread_mutex_lock(&ur->lock);
	mine = ur->state[slot] == SLOT_USER;
	if (mine)
		ur->state[slot] = SLOT_EMPTYING;
	pthread_mutex_unlock(&ur->lock);
	if (!mine)
		return -ENOENT;
	umn__uring_table_set(ur->ring, slot, NULL, 0);
	slot_give(ur, slot);
	return 0;
}
