// SPDX-License-Identifier: MIT
/*
 * maps — where a device fault learns what is mapped and with which
 * permissions: one pass over /proc/self/maps (sys/maps.h: raw system calls,
 * buffers on the stack, so a fault allocates nothing while it decides), up
 * to the first line past what it asks about.
 *
 * The kernel writes the lines sorted by address; consecutive mappings with
 * no gap between them form one "run", and [start, end) is covered when one
 * run holds it (the mappings of a region may differ in permissions after an
 * mprotect of part of it).
 */
#include <string.h>
#include <sys/mman.h>

#include "mirror/mirror.h"
#include "sys/maps.h"

struct maps_scan {
	uintptr_t page, want_start, want_end;
	uintptr_t run_start, run_end;
	struct maps_result *res;
};

/*
 * Returns true once the lines read say all there is to know: one that
 * ends at or past both the page and the range's end.  The page's mapping
 * is then found or not, and the range is covered or not (a later line may
 * only extend the run, which already reaches it).
 */
static bool maps_line(const struct umn__maps_line *l, void *arg)
{
	struct maps_scan *sc = arg;

	if (l->start == sc->run_end)
		sc->run_end = l->end;
	else
		sc->run_start = l->start, sc->run_end = l->end;
	if (sc->run_start <= sc->want_start && sc->want_end <= sc->run_end)
		sc->res->covered = true;
	if (l->start <= sc->page && sc->page < l->end) {
		sc->res->found = true;
		sc->res->start = l->start;
		sc->res->end = l->end;
		sc->res->prot = (l->prot & PROT_READ ? UMN_MIRROR_READ : 0) |
				(l->prot & PROT_WRITE ? UMN_MIRROR_WRITE : 0);
	}
	return l->end > sc->page && l->end >= sc->want_end;
}

/**
 * umn__mirror_maps() - Look @page and [@start, @end) up in /proc/self/maps.
 * @page:  the address whose mapping is wanted.
 * @start: first address of a range to check is mapped.
 * @end:   its exclusive end; @start == @end checks nothing.
 * @res:   filled in.
 *
 * Context: any thread, no lock of the mirror held.
 * Return: 0, or -errno if the file cannot be read.
 */
int umn__mirror_maps(uintptr_t page, uintptr_t start, uintptr_t end,
		     struct maps_result *res)
{
	struct maps_scan sc = { .page = page, .want_start = start,
				.want_end = end, .res = res };

	memset(res, 0, sizeof(*res));
	res->covered = start >= end;
	return umn__maps_each(maps_line, &sc);
}
