// SPDX-License-Identifier: MIT
/*
 * itree — an augmented left-leaning red-black tree, embedded in
 * struct umn_interval.
 *
 * Owns: the shape of the tree and each node's colour and subtree_last.
 *
 * Why this shape: struct umn_interval must stay small (80 bytes on LP64) and
 * every extra word counts, so there is no parent pointer.  A left-leaning
 * red-black tree (Sedgewick's 2-3 variant) has simple recursive insert and
 * erase that need no parent, rebalance on the way back up, and guarantee a
 * height of at most 2·log2(n + 1).  The colour lives in bit 0 of the left
 * pointer (nodes are at least 8-byte aligned).
 *
 * Invariants, checked by umn__itree_check():
 *   - in-order traversal is sorted by (start, node address);
 *   - a red link only ever points left, and no node has two red links;
 *   - every path from the root to a NULL link crosses the same number of
 *     black links;
 *   - subtree_last = max(last of the node and of both subtrees).
 *
 * Locking: none here.  Callers change the tree only under the space's lock
 * with no walk in progress, and walk it only while no change can happen.
 */
#include <stdbool.h>
#include <stdint.h>

#include "core/itree.h"

#define RED ((uintptr_t)1)

static struct umn_interval *left(const struct umn_interval *n)
{
	return (struct umn_interval *)(n->umn__left & ~RED);
}

static bool is_red(const struct umn_interval *n)
{
	return n && (n->umn__left & RED);
}

static void set_left(struct umn_interval *n, struct umn_interval *l)
{
	n->umn__left = (uintptr_t)l | (n->umn__left & RED);
}

static void set_red(struct umn_interval *n, bool red)
{
	n->umn__left = (n->umn__left & ~RED) | (red ? RED : 0);
}

static void flip_colors(struct umn_interval *h)
{
	h->umn__left ^= RED;
	left(h)->umn__left ^= RED;
	h->umn__right->umn__left ^= RED;
}

static uintptr_t max_last(uintptr_t a, const struct umn_interval *child)
{
	return child && child->umn__subtree_last > a ? child->umn__subtree_last
						     : a;
}

/* Recompute @h's subtree_last from itself and its children. */
static void fix(struct umn_interval *h)
{
	uintptr_t m = max_last(umn__itree_last(h), left(h));

	h->umn__subtree_last = max_last(m, h->umn__right);
}

static bool less(const struct umn_interval *a, const struct umn_interval *b)
{
	uintptr_t as = umn__itree_start(a), bs = umn__itree_start(b);

	return as < bs || (as == bs && (uintptr_t)a < (uintptr_t)b);
}

static struct umn_interval *rotate_left(struct umn_interval *h)
{
	struct umn_interval *x = h->umn__right;

	h->umn__right = left(x);
	set_left(x, h);
	set_red(x, is_red(h));
	set_red(h, true);
	fix(h);
	fix(x);
	return x;
}

static struct umn_interval *rotate_right(struct umn_interval *h)
{
	struct umn_interval *x = left(h);

	set_left(h, x->umn__right);
	x->umn__right = h;
	set_red(x, is_red(h));
	set_red(h, true);
	fix(h);
	fix(x);
	return x;
}

/* Restore the left-leaning invariants at @h on the way back up. */
static struct umn_interval *balance(struct umn_interval *h)
{
	if (is_red(h->umn__right) && !is_red(left(h)))
		h = rotate_left(h);
	if (is_red(left(h)) && is_red(left(left(h))))
		h = rotate_right(h);
	if (is_red(left(h)) && is_red(h->umn__right))
		flip_colors(h);
	fix(h);
	return h;
}

static struct umn_interval *insert(struct umn_interval *h,
				   struct umn_interval *n)
{
	if (!h)
		return n;
	if (less(n, h))
		set_left(h, insert(left(h), n));
	else
		h->umn__right = insert(h->umn__right, n);
	return balance(h);
}

void umn__itree_insert(struct umn_interval **root, struct umn_interval *node)
{
	node->umn__left = RED;
	node->umn__right = NULL;
	node->umn__subtree_last = umn__itree_last(node);
	*root = insert(*root, node);
	set_red(*root, false);
}

/* Make left(h) or one of its children red, for a descent to the left. */
static struct umn_interval *move_red_left(struct umn_interval *h)
{
	flip_colors(h);
	if (is_red(left(h->umn__right))) {
		h->umn__right = rotate_right(h->umn__right);
		h = rotate_left(h);
		flip_colors(h);
	}
	return h;
}

/* Make h->right or one of its children red, for a descent to the right. */
static struct umn_interval *move_red_right(struct umn_interval *h)
{
	flip_colors(h);
	if (is_red(left(left(h)))) {
		h = rotate_right(h);
		flip_colors(h);
	}
	return h;
}

/* Unlink the smallest node of the subtree @h into *@min. */
static struct umn_interval *erase_min(struct umn_interval *h,
				      struct umn_interval **min)
{
	if (!left(h)) {
		*min = h;
		return NULL; /* left-leaning: no left child means no child */
	}
	if (!is_red(left(h)) && !is_red(left(left(h))))
		h = move_red_left(h);
	set_left(h, erase_min(left(h), min));
	return balance(h);
}

static struct umn_interval *erase(struct umn_interval *h,
				  struct umn_interval *n)
{
	if (less(n, h)) {
		if (!is_red(left(h)) && !is_red(left(left(h))))
			h = move_red_left(h);
		set_left(h, erase(left(h), n));
		return balance(h);
	}
	if (is_red(left(h)))
		h = rotate_right(h);
	if (h == n && !h->umn__right)
		return NULL;
	if (!is_red(h->umn__right) && !is_red(left(h->umn__right)))
		h = move_red_right(h);
	if (h != n) {
		h->umn__right = erase(h->umn__right, n);
		return balance(h);
	}
	/*
	 * Nodes are the caller's memory, so instead of copying the successor's
	 * key into @n (as textbook versions do) the successor takes @n's place.
	 */
	struct umn_interval *succ, *right = erase_min(n->umn__right, &succ);

	succ->umn__left = n->umn__left;
	succ->umn__right = right;
	return balance(succ);
}

void umn__itree_erase(struct umn_interval **root, struct umn_interval *node)
{
	struct umn_interval *r = *root;

	if (!is_red(left(r)) && !is_red(r->umn__right))
		set_red(r, true);
	r = erase(r, node);
	if (r)
		set_red(r, false);
	*root = r;
}

bool umn__itree_contains(const struct umn_interval *n,
			 const struct umn_interval *node)
{
	while (n && n != node)
		n = less(node, n) ? left(n) : n->umn__right;
	return n != NULL;
}

bool umn__itree_overlaps(struct umn_interval *n, uintptr_t first,
			 uintptr_t last, umn__itree_visit_fn *fn, void *arg)
{
	/* Loop on the right spine, recurse on the left: depth <= height. */
	while (n && n->umn__subtree_last >= first) {
		/* Both children are usually loaded next (the left one only to
		 * be pruned): start both misses now so that they overlap. */
		__builtin_prefetch(left(n));
		__builtin_prefetch(n->umn__right);
		if (!umn__itree_overlaps(left(n), first, last, fn, arg))
			return false;
		if (umn__itree_start(n) > last)
			return true; /* this node and all to its right start later */
		if (umn__itree_last(n) >= first && !fn(n, arg))
			return false;
		n = n->umn__right;
	}
	return true;
}

/* Returns the black height of @n, or -1; counts nodes into *@count. */
static long check(const struct umn_interval *n, const struct umn_interval *lo,
		  const struct umn_interval *hi, long *count)
{
	if (!n)
		return 0;
	const struct umn_interval *l = left(n), *r = n->umn__right;

	if ((lo && !less(lo, n)) || (hi && !less(n, hi)))
		return -1; /* out of order */
	if (is_red(r) || (is_red(n) && is_red(l)))
		return -1; /* right-leaning red, or two reds in a row */
	if (umn__itree_last(n) < umn__itree_start(n))
		return -1;
	uintptr_t want = max_last(max_last(umn__itree_last(n), l), r);

	if (n->umn__subtree_last != want)
		return -1;
	long bl = check(l, lo, n, count), br = check(r, n, hi, count);

	if (bl < 0 || br < 0 || bl != br)
		return -1;
	++*count;
	return bl + !is_red(n);
}

long umn__itree_check(const struct umn_interval *root)
{
	long count = 0;

	if (is_red(root))
		return -1;
	return check(root, NULL, NULL, &count) < 0 ? -1 : count;
}
