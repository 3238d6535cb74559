/* SPDX-License-Identifier: MIT */
/*
 * index — the cache's map from addresses to regions, read without a lock.
 *
 * The regions in the index never overlap, so it is an ordered map keyed by
 * each region's start, and a lookup is "the region with the greatest start
 * at or below addr".  Two levels:
 *
 *   top     an array of (first key, leaf), sorted, in one allocation that
 *           grows by doubling; a grown copy replaces it and the old one is
 *           kept until the index is destroyed (so at most twice the final
 *           size is ever held), which is what lets readers keep using it.
 *   leaves  up to IX_LEAF_MAX sorted (key, region) pairs each, allocated
 *           in chunks and recycled through a free list, never freed before
 *           the index: a leaf is always a leaf ("type-stable").
 *
 * Writers hold the cache's mutex.  Readers hold nothing: they may see a
 * top or a leaf half-way through a shift, a leaf recycled under them, a
 * count that does not match the keys.  What they can never see is a pointer
 * to anything but a leaf (in a leaf slot of the top) or a region of this
 * cache (in a region slot of a leaf), or NULL, because every such slot only
 * ever holds those, and no leaf or region is freed while the cache lives.
 * So a racy lookup is memory-safe and terminates (counts are clamped), and
 * its answer is only a candidate: the caller takes a reference with a
 * compare-and-swap that fails unless the region is valid, and then checks
 * the region's own bounds, which cannot change while it is referenced and
 * valid (cache.c).  A lookup that finds the wrong region, or none, under a
 * concurrent change costs a trip to the locked slow path, never a wrong
 * answer.  Every field readers load is an atomic, read relaxed except the
 * pointers (acquire), so that a new top or leaf is seen initialised.
 */
#ifndef UMN_RCACHE_INDEX_H
#define UMN_RCACHE_INDEX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct umn_region;

#define IX_LEAF_MAX 32

struct ix_leaf {
	_Atomic unsigned n;                     /* pairs in use; lock */
	_Atomic uintptr_t key[IX_LEAF_MAX];
	_Atomic(struct umn_region *) reg[IX_LEAF_MAX];
	struct ix_leaf *free_next;              /* lock; on the free list */
};

struct ix_top {
	size_t cap;                             /* immutable */
	_Atomic size_t n;                       /* leaves in use; lock */
	struct ix_top *retired;                 /* older tops; lock */
	_Atomic uintptr_t *key;                 /* cap first keys */
	_Atomic(struct ix_leaf *) *leaf;        /* cap leaves */
};

struct ix_chunk {
	struct ix_chunk *next;
};

struct ix {
	_Atomic(struct ix_top *) top;           /* NULL until the first insert */
	struct ix_leaf *free;                   /* lock */
	struct ix_chunk *chunks;                /* lock */
	size_t leaves;                          /* carved so far; lock */
	size_t regions;                         /* pairs in the index; lock */
};

/* A position in the index, for scans under the lock. */
struct ix_pos {
	size_t leaf;    /* index in the top */
	unsigned slot;  /* index in the leaf */
};

/* Lock-free: the region with the greatest key <= @addr, or NULL. */
struct umn_region *umn__ix_lookup(struct ix *ix, uintptr_t addr);

/* The rest: the cache's mutex held. */
void umn__ix_init(struct ix *ix);
void umn__ix_destroy(struct ix *ix);
/* Make sure the next umn__ix_insert() cannot fail: 0 or -ENOMEM. */
int umn__ix_reserve(struct ix *ix);
/* Insert @r under @key, which is not in the index; after umn__ix_reserve(). */
void umn__ix_insert(struct ix *ix, uintptr_t key, struct umn_region *r);
/* Remove @key, which is in the index. */
void umn__ix_remove(struct ix *ix, uintptr_t key);
/*
 * Position of the greatest key <= @addr; false if there is none (then *@pos
 * is the first pair, if any).
 */
bool umn__ix_floor(struct ix *ix, uintptr_t addr, struct ix_pos *pos);
/* The region at *@pos, or NULL past the end. */
struct umn_region *umn__ix_at(struct ix *ix, const struct ix_pos *pos);
void umn__ix_next(struct ix *ix, struct ix_pos *pos);
/* Step back; false at the first pair. */
bool umn__ix_prev(struct ix *ix, struct ix_pos *pos);
/* Check order and counts; the number of pairs, or -1.  For tests. */
long umn__ix_check(struct ix *ix);

#endif /* UMN_RCACHE_INDEX_H */
