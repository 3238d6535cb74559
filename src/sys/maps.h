/* SPDX-License-Identifier: MIT */
/*
 * Reading /proc/self/maps with raw system calls and buffers on the stack:
 * no stdio, no malloc, no hooked libc call, so the process monitor may do it
 * inside a wrapper (shmdt, in a signal handler or inside free()) and the
 * mirror inside a device fault.
 *
 * Each line is "start-end perms offset major:minor inode path"; only the
 * first 96 bytes of a line are kept, which always hold the fields and the
 * start of the path (all anyone needs of it: "/SYSV").  The kernel writes
 * the lines sorted by address.
 */
#ifndef UMN_SYS_MAPS_H
#define UMN_SYS_MAPS_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "sys/raw_syscall.h"

struct umn__maps_line {
	uintptr_t start, end, dev_lo, dev_hi, inode;
	unsigned prot;          /* PROT_READ | PROT_WRITE | PROT_EXEC */
	bool sysv;              /* a System V shared memory segment */
};

/* A number in @base; skips the one separator after it. */
static inline const char *umn__maps_num(const char *s, int base,
					uintptr_t *out)
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
	return s + (*s != 0);
}

/* Parse one line; false if it does not start "start-end perms ". */
static inline bool umn__maps_parse(const char *s, struct umn__maps_line *l)
{
	const char *p = s;
	uintptr_t off;

	s = umn__maps_num(s, 16, &l->start);
	if (s == p || s[-1] != '-')
		return false;
	p = s;
	s = umn__maps_num(s, 16, &l->end);
	if (s == p || s[-1] != ' ' || l->start >= l->end ||
	    !s[0] || !s[1] || !s[2] || !s[3] || s[4] != ' ')
		return false;
	l->prot = (s[0] == 'r' ? PROT_READ : 0) |
		  (s[1] == 'w' ? PROT_WRITE : 0) |
		  (s[2] == 'x' ? PROT_EXEC : 0);
	s = umn__maps_num(s + 5, 16, &off);
	s = umn__maps_num(s, 16, &l->dev_hi);
	s = umn__maps_num(s, 16, &l->dev_lo);
	s = umn__maps_num(s, 10, &l->inode);
	while (*s == ' ')
		s++;
	l->sysv = s[0] == '/' && s[1] == 'S' && s[2] == 'Y' && s[3] == 'S' &&
		  s[4] == 'V';
	return true;
}

/*
 * Call @fn(line, @arg) for each line of /proc/self/maps, in address order,
 * until it returns true or the file ends.  Returns 0, or -errno if the
 * file cannot be opened or read.
 */
static inline int umn__maps_each(bool (*fn)(const struct umn__maps_line *,
					    void *),
				 void *arg)
{
	long fd = umn__sys4(SYS_openat, AT_FDCWD, "/proc/self/maps",
			    O_RDONLY | O_CLOEXEC, 0);
	char buf[2048], line[96];
	size_t used = 0;
	struct umn__maps_line l;
	int err = 0;

	if (umn__sys_error(fd))
		return -umn__sys_error(fd);
	for (;;) {
		long n = umn__sys3(SYS_read, fd, buf, sizeof(buf));

		if (n == -EINTR)
			continue;
		if (n <= 0) {
			err = -umn__sys_error(n);
			break;
		}
		for (long i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (used < sizeof(line) - 1)
					line[used++] = buf[i];
				continue;
			}
			line[used] = 0;
			used = 0;
			if (umn__maps_parse(line, &l) && fn(&l, arg))
				goto out;
		}
	}
out:
	umn__sys1(SYS_close, fd);
	return err;
}

#endif
