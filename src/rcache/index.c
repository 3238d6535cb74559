// SPDX-License-Identifier: MIT
/*
 * index — a two-level sorted map from region start to region, for lookups
 * without a lock (index.h has the reasoning).
 *
 * Invariants, under the cache's mutex:
 *   - keys strictly increase along the top and through the leaves in top
 *     order, and the regions they name do not overlap;
 *   - no leaf in the top is empty, and top->key[i] is the first key of
 *     top->leaf[i];
 *   - leaf slots hold only region pointers or NULL, top slots only leaf
 *     pointers or NULL, in use or not.
 *
 * A writer changes a leaf or the top slot by slot with relaxed stores; a
 * reader racing with it may see any mix, which is safe by the last
 * invariant.  When a leaf splits, the new leaf is filled and put in the top
 * before the old one shrinks, so a racing reader finds a key twice rather
 * than not at all; removals can still make it miss, which costs it the slow
 * path.  Every store of a pointer, leaf or region, is a release, and the
 * lookup loads them with acquire, so that a reader that finds one also
 * sees the memory it points to initialised (the chunk's memset), even when
 * it reads the pointer from a slot a shift copied it to (a release store of
 * its own); a new top is published the same way.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rcache/index.h"
#include "sys/atomic.h"
#include "sys/debug.h"
#include "sys/raw_syscall.h"

#define LEAVES_PER_CHUNK 16
#define TOP_MIN_CAP      16

/*
 * Index of the last key <= @addr among @keys[0..@n), or -1.  Branch-free
 * (the compare becomes a conditional move): with random addresses a
 * branchy search mispredicts about every other step, which cost more than
 * the loads themselves.
 */
static long floor_search(_Atomic uintptr_t *keys, size_t n, uintptr_t addr)
{
	size_t base = 0;

	if (!n)
		return -1;
	while (n > 1) {
		size_t half = n / 2;

		/* Relaxed: a value to compare; see the top of the file. */
		base += atomic_load_relaxed(&keys[base + half]) <= addr ? half
									: 0;
		n -= half;
	}
	return atomic_load_relaxed(&keys[base]) <= addr ? (long)base
							: (long)base - 1;
}

struct umn_region *umn__ix_lookup(struct ix *ix, uintptr_t addr)
{
	/* Pairs with the release store of a new top in top_grow(). */
	struct ix_top *top = atomic_load_acquire(&ix->top);

	if (!top)
		return NULL;
	size_t n = atomic_load_relaxed(&top->n);

	long i = floor_search(top->key, n < top->cap ? n : top->cap, addr);

	if (i < 0)
		return NULL;
	/* Pairs with the release store that put the leaf in the top. */
	struct ix_leaf *leaf = atomic_load_acquire(&top->leaf[i]);

	if (!leaf)
		return NULL;
	unsigned m = atomic_load_relaxed(&leaf->n);
	long j = floor_search(leaf->key, m < IX_LEAF_MAX ? m : IX_LEAF_MAX,
			      addr);

	/* Pairs with the release store that put the region in the leaf: its
	 * memory was initialised before (region.c). */
	return j < 0 ? NULL : atomic_load_acquire(&leaf->reg[j]);
}

void umn__ix_init(struct ix *ix)
{
	memset(ix, 0, sizeof(*ix));
	atomic_init(&ix->top, NULL);
}

static void top_free_all(struct ix_top *top)
{
	while (top) {
		struct ix_top *older = top->retired;

		free(top);
		top = older;
	}
}

void umn__ix_destroy(struct ix *ix)
{
	top_free_all(atomic_load_relaxed(&ix->top));
	while (ix->chunks) {
		struct ix_chunk *c = ix->chunks;

		ix->chunks = c->next;
		free(c);
	}
	umn__ix_init(ix);
}

/*
 * Leaves are carved from chunks that live as long as the index: small ones
 * first, 2 MiB ones marked for transparent huge pages once the index has
 * HUGE_AFTER leaves (as the regions' chunks, region.c).
 */
#define HUGE_AFTER 256
#define HUGE_SIZE  ((size_t)2 << 20)
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif

static int leaf_chunk_add(struct ix *ix)
{
	size_t head = (sizeof(struct ix_chunk) + 63) & ~(size_t)63;
	size_t stride = (sizeof(struct ix_leaf) + 63) & ~(size_t)63;
	size_t bytes = head + stride * LEAVES_PER_CHUNK, align = 64;
	char *c;

	if (ix->leaves >= HUGE_AFTER) {
		align = HUGE_SIZE;
		bytes = (bytes + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1);
	}
	c = aligned_alloc(align, bytes);
	if (!c)
		return -ENOMEM;
	if (align == HUGE_SIZE) /* a hint; raw, as region.c says why */
		umn__sys3(SYS_madvise, c, bytes, MADV_HUGEPAGE);
	/* Zero: n = 0 and every slot NULL, as the invariant wants. */
	memset(c, 0, bytes);
	((struct ix_chunk *)c)->next = ix->chunks;
	ix->chunks = (struct ix_chunk *)c;
	for (size_t i = (bytes - head) / stride; i-- > 0;) {
		struct ix_leaf *leaf = (struct ix_leaf *)(c + head + stride * i);

		leaf->free_next = ix->free;
		ix->free = leaf;
		ix->leaves++;
	}
	return 0;
}

static struct ix_leaf *leaf_alloc(struct ix *ix)
{
	struct ix_leaf *leaf = ix->free;

	UMN_BUG_ON(!leaf); /* umn__ix_reserve() makes sure of one */
	ix->free = leaf->free_next;
	return leaf;
}

static void leaf_free(struct ix *ix, struct ix_leaf *leaf)
{
	/* Readers may still be in it: its slots keep regions or NULL. */
	atomic_store_relaxed(&leaf->n, 0);
	leaf->free_next = ix->free;
	ix->free = leaf;
}

/* Replace the top with one of twice the capacity; the old one stays. */
static int top_grow(struct ix *ix)
{
	struct ix_top *old = atomic_load_relaxed(&ix->top);
	size_t cap = old ? old->cap * 2 : TOP_MIN_CAP;
	size_t n = old ? atomic_load_relaxed(&old->n) : 0;
	struct ix_top *top = malloc(sizeof(*top) + cap * (sizeof(*top->key) +
							  sizeof(*top->leaf)));

	if (!top)
		return -ENOMEM;
	top->cap = cap;
	top->key = (_Atomic uintptr_t *)(top + 1);
	top->leaf = (_Atomic(struct ix_leaf *) *)(top->key + cap);
	for (size_t i = 0; i < cap; i++) {
		atomic_init(&top->key[i],
			    i < n ? atomic_load_relaxed(&old->key[i]) : 0);
		atomic_init(&top->leaf[i],
			    i < n ? atomic_load_relaxed(&old->leaf[i]) : NULL);
	}
	atomic_init(&top->n, n);
	top->retired = old;
	/* Pairs with the acquire load in umn__ix_lookup(). */
	atomic_store_release(&ix->top, top);
	return 0;
}

int umn__ix_reserve(struct ix *ix)
{
	struct ix_top *top = atomic_load_relaxed(&ix->top);

	if (!ix->free && leaf_chunk_add(ix))
		return -ENOMEM;
	if (!top || atomic_load_relaxed(&top->n) + 1 > top->cap)
		return top_grow(ix);
	return 0;
}

/* Put (@key, @leaf) at top slot @i, shifting the rest right. */
static void top_insert_at(struct ix_top *top, size_t i, uintptr_t key,
			  struct ix_leaf *leaf)
{
	size_t n = atomic_load_relaxed(&top->n);

	UMN_BUG_ON(n >= top->cap);
	for (size_t j = n; j > i; j--) {
		atomic_store_relaxed(&top->key[j],
				     atomic_load_relaxed(&top->key[j - 1]));
		atomic_store_release(&top->leaf[j],
				     atomic_load_relaxed(&top->leaf[j - 1]));
	}
	atomic_store_relaxed(&top->key[i], key);
	/* Pairs with the acquire load in umn__ix_lookup(): the leaf's
	 * pairs were stored before it is seen here. */
	atomic_store_release(&top->leaf[i], leaf);
	atomic_store_relaxed(&top->n, n + 1);
}

static void top_remove_at(struct ix_top *top, size_t i)
{
	size_t n = atomic_load_relaxed(&top->n);

	for (size_t j = i; j + 1 < n; j++) {
		atomic_store_relaxed(&top->key[j],
				     atomic_load_relaxed(&top->key[j + 1]));
		atomic_store_release(&top->leaf[j],
				     atomic_load_relaxed(&top->leaf[j + 1]));
	}
	atomic_store_relaxed(&top->n, n - 1);
}

static void leaf_insert_at(struct ix_leaf *leaf, unsigned pos, uintptr_t key,
			   struct umn_region *r)
{
	unsigned n = atomic_load_relaxed(&leaf->n);

	for (unsigned j = n; j > pos; j--) {
		atomic_store_relaxed(&leaf->key[j],
				     atomic_load_relaxed(&leaf->key[j - 1]));
		atomic_store_release(&leaf->reg[j],
				     atomic_load_relaxed(&leaf->reg[j - 1]));
	}
	atomic_store_relaxed(&leaf->key[pos], key);
	atomic_store_release(&leaf->reg[pos], r);
	atomic_store_relaxed(&leaf->n, n + 1);
}

/* Slot of the first key > @key in @leaf. */
static unsigned leaf_upper(struct ix_leaf *leaf, uintptr_t key)
{
	return (unsigned)(floor_search(leaf->key, atomic_load_relaxed(&leaf->n),
				       key) + 1);
}

/*
 * Split the full leaf at top slot @i and insert (@key, @r) at slot @pos of
 * it.  At the end of the last leaf, the new leaf takes only the new pair
 * (addresses mostly come in increasing order: leaves stay full).
 */
static void leaf_split_insert(struct ix *ix, struct ix_top *top, size_t i,
			      unsigned pos, uintptr_t key, struct umn_region *r)
{
	struct ix_leaf *leaf = atomic_load_relaxed(&top->leaf[i]);
	struct ix_leaf *fresh = leaf_alloc(ix);
	unsigned keep = IX_LEAF_MAX / 2;

	if (pos == IX_LEAF_MAX && i + 1 == atomic_load_relaxed(&top->n))
		keep = IX_LEAF_MAX;
	for (unsigned j = keep; j < IX_LEAF_MAX; j++) {
		atomic_store_relaxed(&fresh->key[j - keep],
				     atomic_load_relaxed(&leaf->key[j]));
		atomic_store_release(&fresh->reg[j - keep],
				     atomic_load_relaxed(&leaf->reg[j]));
	}
	atomic_store_relaxed(&fresh->n, IX_LEAF_MAX - keep);
	if (pos >= keep)
		leaf_insert_at(fresh, pos - keep, key, r);
	/* Filled before it is published, published before the old shrinks. */
	top_insert_at(top, i + 1, atomic_load_relaxed(&fresh->key[0]), fresh);
	atomic_store_relaxed(&leaf->n, keep);
	if (pos < keep) {
		leaf_insert_at(leaf, pos, key, r);
		if (pos == 0)
			atomic_store_relaxed(&top->key[i], key);
	}
}

void umn__ix_insert(struct ix *ix, uintptr_t key, struct umn_region *r)
{
	struct ix_top *top = atomic_load_relaxed(&ix->top);

	UMN_BUG_ON(!top || atomic_load_relaxed(&top->n) >= top->cap);
	ix->regions++;
	if (!atomic_load_relaxed(&top->n)) {
		struct ix_leaf *leaf = leaf_alloc(ix);

		leaf_insert_at(leaf, 0, key, r);
		top_insert_at(top, 0, key, leaf);
		return;
	}
	long i = floor_search(top->key, atomic_load_relaxed(&top->n), key);

	if (i < 0)
		i = 0; /* before every key: into the first leaf, at its head */
	struct ix_leaf *leaf = atomic_load_relaxed(&top->leaf[i]);
	unsigned pos = leaf_upper(leaf, key);

	if (atomic_load_relaxed(&leaf->n) == IX_LEAF_MAX) {
		leaf_split_insert(ix, top, (size_t)i, pos, key, r);
		return;
	}
	leaf_insert_at(leaf, pos, key, r);
	if (pos == 0)
		atomic_store_relaxed(&top->key[i], key);
}

void umn__ix_remove(struct ix *ix, uintptr_t key)
{
	struct ix_top *top = atomic_load_relaxed(&ix->top);
	long i = top ? floor_search(top->key, atomic_load_relaxed(&top->n), key)
		     : -1;

	UMN_BUG_ON(i < 0);
	struct ix_leaf *leaf = atomic_load_relaxed(&top->leaf[i]);
	unsigned n = atomic_load_relaxed(&leaf->n);
	long pos = floor_search(leaf->key, n, key);

	UMN_BUG_ON(pos < 0 || atomic_load_relaxed(&leaf->key[pos]) != key);
	ix->regions--;
	for (unsigned j = (unsigned)pos; j + 1 < n; j++) {
		atomic_store_relaxed(&leaf->key[j],
				     atomic_load_relaxed(&leaf->key[j + 1]));
		atomic_store_release(&leaf->reg[j],
				     atomic_load_relaxed(&leaf->reg[j + 1]));
	}
	atomic_store_relaxed(&leaf->n, n - 1);
	if (n == 1) {
		top_remove_at(top, (size_t)i);
		leaf_free(ix, leaf);
	} else if (pos == 0) {
		atomic_store_relaxed(&top->key[i],
				     atomic_load_relaxed(&leaf->key[0]));
	}
}

bool umn__ix_floor(struct ix *ix, uintptr_t addr, struct ix_pos *pos)
{
	struct ix_top *top = atomic_load_relaxed(&ix->top);
	long i = top ? floor_search(top->key, atomic_load_relaxed(&top->n), addr)
		     : -1;

	pos->leaf = 0;
	pos->slot = 0;
	if (i < 0)
		return false;
	struct ix_leaf *leaf = atomic_load_relaxed(&top->leaf[i]);

	pos->leaf = (size_t)i;
	pos->slot = (unsigned)floor_search(leaf->key,
					   atomic_load_relaxed(&leaf->n), addr);
	return true;
}

struct umn_region *umn__ix_at(struct ix *ix, const struct ix_pos *pos)
{
	struct ix_top *top = atomic_load_relaxed(&ix->top);

	if (!top || pos->leaf >= atomic_load_relaxed(&top->n))
		return NULL;
	struct ix_leaf *leaf = atomic_load_relaxed(&top->leaf[pos->leaf]);

	if (pos->slot >= atomic_load_relaxed(&leaf->n))
		return NULL;
	return atomic_load_relaxed(&leaf->reg[pos->slot]);
}

void umn__ix_next(struct ix *ix, struct ix_pos *pos)
{
	struct ix_top *top = atomic_load_relaxed(&ix->top);

	if (!top || pos->leaf >= atomic_load_relaxed(&top->n))
		return;
	struct ix_leaf *leaf = atomic_load_relaxed(&top->leaf[pos->leaf]);

	if (++pos->slot >= atomic_load_relaxed(&leaf->n)) {
		pos->leaf++;
		pos->slot = 0;
	}
}

bool umn__ix_prev(struct ix *ix, struct ix_pos *pos)
{
	struct ix_top *top = atomic_load_relaxed(&ix->top);

	if (pos->slot > 0) {
		pos->slot--;
		return true;
	}
	if (pos->leaf == 0)
		return false;
	pos->leaf--;
	pos->slot = atomic_load_relaxed(
			    &atomic_load_relaxed(&top->leaf[pos->leaf])->n) - 1;
	return true;
}

long umn__ix_check(struct ix *ix)
{
	struct ix_top *top = atomic_load_relaxed(&ix->top);
	size_t n = top ? atomic_load_relaxed(&top->n) : 0;
	long count = 0;
	uintptr_t prev = 0;

	for (size_t i = 0; i < n; i++) {
		struct ix_leaf *leaf = atomic_load_relaxed(&top->leaf[i]);
		unsigned m = atomic_load_relaxed(&leaf->n);

		if (!m || m > IX_LEAF_MAX ||
		    atomic_load_relaxed(&top->key[i]) !=
			    atomic_load_relaxed(&leaf->key[0]))
			return -1;
		for (unsigned j = 0; j < m; j++, count++) {
			uintptr_t k = atomic_load_relaxed(&leaf->key[j]);

			if (count && k <= prev)
				return -1;
			if (!atomic_load_relaxed(&leaf->reg[j]))
				return -1;
			prev = k;
		}
	}
	return (size_t)count == ix->regions ? count : -1;
}
