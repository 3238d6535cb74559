// SPDX-License-Identifier: MIT
/*
 * maps — look an address up in /proc/self/maps with raw system calls and a
 * buffer on the stack, so that a wrapper (shmdt) may do it inside a signal
 * handler or inside free().
 *
 * Each line starts "start-end perms offset major:minor inode path"; only
 * the first 96 bytes of a line are kept, which always hold the fields and
 * the start of the path (all that is needed of it: "/SYSV").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>

#include "monitor/monitor.h"
#include "sys/raw_syscall.h"

struct maps_line {
	uintptr_t start, end, dev_lo, dev_hi, inode;
	unsigned prot;
	bool sysv;              /* a System V shared memory segment */
};

static const char *parse_num(const char *s, int base, uintptr_t *out)
{
	uintptr_t v = 0;

	for (;; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else
			break;
		v = v * (uintptr_t)base + d;
	}
	*out = v;
	return s + (*s != 0); /* skip one separator */
}

static void parse_line(const char *s, struct maps_line *l)
{
	uintptr_t off;

	s = parse_num(s, 16, &l->start);
	s = parse_num(s, 16, &l->end);
	l->prot = (s[0] == 'r' ? PROT_READ : 0) |
		  (s[1] == 'w' ? PROT_WRITE : 0) |
		  (s[2] == 'x' ? PROT_EXEC : 0);
	s = parse_num(s + 5, 16, &off);
	s = parse_num(s, 16, &l->dev_hi);
	s = parse_num(s, 16, &l->dev_lo);
	s = parse_num(s, 10, &l->inode);
	while (*s == ' ')
		s++;
	l->sysv = s[0] == '/' && s[1] == 'S' && s[2] == 'Y' && s[3] == 'S' &&
		  s[4] == 'V';
}

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

static bool maps_step(const struct maps_line *l, uintptr_t addr,
		      enum maps_mode mode, struct maps_line *first,
		      struct umn__mapping *out, bool *found)
{
	if (!*found) {
		if (l->end <= addr || (mode == MAPS_AT && addr < l->start) ||
		    (mode == MAPS_SHM && !l->sysv))
			return false;
		*found = true;
		*first = *l;
		*out = (struct umn__mapping){ l->start, l->end, l->prot };
		return mode == MAPS_AT;
	}
	if (l->inode == first->inode && l->dev_lo == first->dev_lo &&
	    l->dev_hi == first->dev_hi && l->sysv)
		out->end = l->end;
	return false;
}

static int maps_scan(uintptr_t addr, enum maps_mode mode,
		     struct umn__mapping *out)
{
	long fd = umn__sys4(SYS_openat, AT_FDCWD, "/proc/self/maps",
			    O_RDONLY | O_CLOEXEC, 0);
	char buf[2048], line[96];
	size_t used = 0;
	bool found = false, done = false;
	struct maps_line first = { 0 }, l;

	if (umn__sys_error(fd))
		return -umn__sys_error(fd);
	while (!done) {
		long n = umn__sys3(SYS_read, fd, buf, sizeof(buf));

		if (n == -EINTR)
			continue;
		if (n <= 0)
			break;
		for (long i = 0; i < n && !done; i++) {
			if (buf[i] != '\n') {
				if (used < sizeof(line) - 1)
					line[used++] = buf[i];
				continue;
			}
			line[used] = 0;
			used = 0;
			parse_line(line, &l);
			done = maps_step(&l, addr, mode, &first, out, &found);
		}
	}
	umn__sys1(SYS_close, fd);
	return found ? 0 : -ENOENT;
}

int umn__maps_find(uintptr_t addr, struct umn__mapping *out)
{
	return maps_scan(addr, MAPS_AT, out);
}

int umn__maps_shm(uintptr_t addr, struct umn__mapping *out)
{
	return maps_scan(addr, MAPS_SHM, out);
}
