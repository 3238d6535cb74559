// SPDX-License-Identifier: MIT
/*
 * maps — where a device fault learns what is mapped and with which
 * permissions: one pass over /proc/self/maps, read with open/read into a
 * buffer on the stack (no stdio, no malloc: a fault must not allocate while
 * it decides, and reads lines of any length), up to the first line past
 * what it asks about.
 *
 * The kernel writes the lines sorted by address; consecutive mappings with
 * no gap between them form one "run", and [start, end) is covered when one
 * run holds it (the mappings of a region may differ in permissions after an
 * mprotect of part of it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "mirror/mirror.h"

struct maps_scan {
	uintptr_t page, want_start, want_end;
	uintptr_t run_start, run_end;
	struct maps_result *res;
};

static const char *hex(const char *s, uintptr_t *out)
{
	uintptr_t v = 0;

	for (;; s++) {
		if (*s >= '0' && *s <= '9')
			v = v * 16 + (uintptr_t)(*s - '0');
		else if (*s >= 'a' && *s <= 'f')
			v = v * 16 + (uintptr_t)(*s - 'a' + 10);
		else
			break;
	}
	*out = v;
	return s;
}

/*
 * "start-end rwxp ...".  Returns true once the lines read say all there is
 * to know: one that ends at or past both the page and the range's end.
 * The page's mapping is then found or not, and the range is covered or
 * not (a later line may only extend the run, which already reaches it).
 */
static bool maps_line(struct maps_scan *sc, const char *s)
{
	uintptr_t start, end;
	unsigned prot = 0;

	s = hex(s, &start);
	if (*s++ != '-')
		return false;
	s = hex(s, &end);
	if (*s++ != ' ' || start >= end)
		return false;
	if (s[0] == 'r')
		prot |= UMN_MIRROR_READ;
	if (s[0] && s[1] == 'w')
		prot |= UMN_MIRROR_WRITE;
	if (start == sc->run_end)
		sc->run_end = end;
	else
		sc->run_start = start, sc->run_end = end;
	if (sc->run_start <= sc->want_start && sc->want_end <= sc->run_end)
		sc->res->covered = true;
	if (start <= sc->page && sc->page < end) {
		sc->res->found = true;
		sc->res->start = start;
		sc->res->end = end;
		sc->res->prot = prot;
	}
	return end > sc->page && end >= sc->want_end;
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
	char buf[4096], line[64];
	size_t used = 0;
	bool skip = false;      /* the rest of a line longer than line[] */
	int fd;

	memset(res, 0, sizeof(*res));
	res->covered = start >= end;
	do
		fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? -errno : 0;

			close(fd);
			return err;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				line[used] = '\0';
				if (maps_line(&sc, line)) {
					close(fd);
					return 0;
				}
				used = 0;
				skip = false;
			} else if (!skip && used < sizeof(line) - 1) {
				line[used++] = buf[i];
			} else {
				skip = true;
			}
		}
	}
}
