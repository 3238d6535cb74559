// SPDX-License-Identifier: MIT
/*
 * maps — look an address up in /proc/self/maps (sys/maps.h reads it with
 * raw system calls and stack buffers), so that a wrapper (shmdt) may do it
 * inside a signal handler or inside free().
 */
#define _GNU_SOURCE
#include <errno.h>

#include "monitor/monitor.h"
#include "sys/maps.h"

/*
 * Feed one line; returns true when the answer is complete.
 *   MAPS_AT   the mapping containing addr.
 *   MAPS_SHM  what shmdt(addr) detaches: the kernel starts at the first
 *             piece of a segment at or after addr and takes every piece
 *             of it from there (gaps included), so: from the first
 *             SysV mapping ending after addr, to the end of the last
 *             mapping of the same segment.
 */
enum maps_mode { MAPS_AT, MAPS_SHM };

struct maps_find {
	uintptr_t addr;
	enum maps_mode mode;
	bool found;
	struct umn__maps_line first;
	struct umn__mapping *out;
};

static bool maps_step(const struct umn__maps_line *l, void *arg)
{
	struct maps_find *f = arg;

	if (!f->found) {
		if (l->end <= f->addr ||
		    (f->mode == MAPS_AT && f->addr < l->start) ||
		    (f->mode == MAPS_SHM && !l->sysv))
			return false;
		f->found = true;
		f->first = *l;
		*f->out = (struct umn__mapping){ l->start, l->end, l->prot };
		return f->mode == MAPS_AT;
	}
	if (l->inode == f->first.inode && l->dev_lo == f->first.dev_lo &&
	    l->dev_hi == f->first.dev_hi && l->sysv)
		f->out->end = l->end;
	return false;
}

static int maps_scan(uintptr_t addr, enum maps_mode mode,
		     struct umn__mapping *out)
{
	struct maps_find f = { .addr = addr, .mode = mode, .out = out };
	int err = umn__maps_each(maps_step, &f);

	if (f.found)
		return 0;
	return err ? err : -ENOENT;
}

int umn__maps_find(uintptr_t addr, struct umn__mapping *out)
{
	return maps_scan(addr, MAPS_AT, out);
}

int umn__maps_shm(uintptr_t addr, struct umn__mapping *out)
{
	return maps_scan(addr, MAPS_SHM, out);
}
