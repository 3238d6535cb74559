/* SPDX-License-Identifier: MIT */
/*
 * sizes — how much a user pays to embed umn's types, against the layout of
 * the kernel's equivalents rebuilt here from their field lists (Linux 6.x,
 * so the sizes are those of this machine's ABI, not the kernel's build).
 *
 * The kernel's mmu_interval_notifier keeps only the interval tree node, the
 * ops, the mm, a deferred-list link and the seq; umn's subscription also
 * holds the state and the pending range of a deferred update, so that no
 * operation allocates.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <umn/umn.h>


/* struct rb_node, struct interval_tree_node, struct hlist_node. */
struct k_rb_node {
	unsigned long parent_color;
	struct k_rb_node *right, *left;
};

struct k_interval_tree_node {
	struct k_rb_node rb;
	unsigned long start, last, subtree_last;
};

struct k_hlist_node {
	struct k_hlist_node *next, **pprev;
};

/* struct mmu_interval_notifier. */
struct k_mmu_interval_notifier {
	struct k_interval_tree_node interval_tree;
	const void *ops;
	void *mm;
	struct k_hlist_node deferred_item;
	unsigned long invalidate_seq;
};

/* struct mmu_notifier_range. */
struct k_mmu_notifier_range {
	void *mm;
	unsigned long start, end;
	unsigned flags;
	int event;
	void *owner;
};

static void row(const char *umn_name, size_t umn_size, size_t umn_align,
		const char *target, const char *kernel_name, size_t kernel_size)
{
	printf("%-24s %5zu %6zu  %-8s %-30s %7zu %9.2fx\n", umn_name,
	       umn_size, umn_align, target, kernel_name, kernel_size,
	       (double)umn_size / (double)kernel_size);
}

int main(void)
{
	size_t sub = sizeof(struct umn_interval);

	printf("sizes of the embedded types, in bytes\n"
	       "target: sizeof(struct umn_interval) <= 80\n"
	       "baseline: the kernel's equivalent, same fields, built here "
	       "(%zu-bit pointers)\n\n", sizeof(void *) * 8);
	printf("%-24s %5s %6s  %-8s %-30s %7s %10s\n", "umn type", "size",
	       "align", "target", "kernel type", "size", "x kernel");
	row("struct umn_interval", sub, _Alignof(struct umn_interval),
	    "<= 80", "struct mmu_interval_notifier",
	    sizeof(struct k_mmu_interval_notifier));
	row("struct umn_range", sizeof(struct umn_range),
	    _Alignof(struct umn_range), "-", "struct mmu_notifier_range",
	    sizeof(struct k_mmu_notifier_range));
	printf("\nsizeof(struct umn_interval) = %zu (target <= 80): %s\n", sub,
	       sub <= 80 ? "met" : "MISSED");
	return 0;
}
