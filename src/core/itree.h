/* SPDX-License-Identifier: MIT */
/*
 * itree — the interval tree embedded in struct umn_interval.
 *
 * A left-leaning red-black tree (2-3 variant) without parent pointers,
 * ordered by (start, address of the node), each node augmented with the
 * largest `last` in its subtree so that overlap queries prune whole
 * subtrees.  Height is at most 2·log2(n + 1).  Insert and erase are
 * recursive (depth = height); the overlap walk is recursive and allocates
 * nothing.
 *
 * Nothing here locks: callers hold the space's lock to change the tree, and
 * walk it only while no change can happen (core.h says how).
 */
#ifndef UMN_CORE_ITREE_H
#define UMN_CORE_ITREE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <umn/umn.h>

/* Called for each node overlapping the query; return false to stop. */
typedef bool umn__itree_visit_fn(struct umn_interval *node, void *arg);

/* Insert @node, whose start and last are already set. */
void umn__itree_insert(struct umn_interval **root, struct umn_interval *node);
/* Erase @node, which must be in the tree rooted at *@root. */
void umn__itree_erase(struct umn_interval **root, struct umn_interval *node);
/*
 * Visit, in order of start, every node with start <= @last and
 * last >= @first.  Returns false if @fn stopped the walk.
 */
bool umn__itree_overlaps(struct umn_interval *root, uintptr_t first,
			 uintptr_t last, umn__itree_visit_fn *fn, void *arg);
/* Is @node in the tree?  By its key, in O(height). */
bool umn__itree_contains(const struct umn_interval *root,
			 const struct umn_interval *node);
/*
 * Check every invariant (order, colours, black height, subtree_last);
 * returns the number of nodes, or -1 if one is broken.  For tests.
 */
long umn__itree_check(const struct umn_interval *root);

/* A node's bounds; `last` is inclusive. */
static inline uintptr_t umn__itree_start(const struct umn_interval *n)
{
	/* Relaxed: changed only under the space's lock while no walk runs;
	 * lock-free readers (umn_interval_start) want a value, not an order. */
	return atomic_load_explicit(&n->umn__start, memory_order_relaxed);
}

static inline uintptr_t umn__itree_last(const struct umn_interval *n)
{
	return atomic_load_explicit(&n->umn__last, memory_order_relaxed);
}

static inline void umn__itree_set_bounds(struct umn_interval *n,
					 uintptr_t start, uintptr_t last)
{
	atomic_store_explicit(&n->umn__start, start, memory_order_relaxed);
	atomic_store_explicit(&n->umn__last, last, memory_order_relaxed);
}

#endif /* UMN_CORE_ITREE_H */
