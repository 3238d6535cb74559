/* SPDX-License-Identifier: MIT */
/*
 * What the io_uring backend's tests share: cmocka, the APIs, a ring and a
 * file to read from, and the check that io_uring can run here at all.
 */
#ifndef UMN_TESTS_URING_HELPERS_H
#define UMN_TESTS_URING_HELPERS_H

#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/helpers.h" /* cmocka, and which sanitizer */

#include <umn/rcache.h>
#include <umn/rcache_uring.h>
#include <umn/umn.h>

#define PG 4096ul


/* 0 if the backend works here; else say why on stdout: main returns 77. */
static inline int uring_usable(const char *test)
{
	char why[256];
	int ret = umn_rcache_uring_probe(why, sizeof(why));

	if (ret)
		printf("%s: skipped: %s (%d)\n", test, why, ret);
	return ret;
}

/* An unlinked file of @len bytes, byte i = (i * 7 + 3) & 0xff; its fd. */
static inline int pattern_file(size_t len)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	unsigned char *b = malloc(len);
	int fd;

	assert_non_null(b);
	snprintf(path, sizeof(path), "%s/umn-test-XXXXXX",
		 dir && dir[0] ? dir : "/tmp");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	for (size_t i = 0; i < len; i++)
		b[i] = (unsigned char)(i * 7 + 3);
	assert_int_equal(pwrite(fd, b, len, 0), (ssize_t)len);
	free(b);
	return fd;
}

/* READ_FIXED of @len bytes at file offset @off into @buf through @slot;
 * the completion's result. */
static inline int read_fixed(struct io_uring *ring, int fd, void *buf,
			     size_t len, size_t off, unsigned slot)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int res;

	assert_non_null(sqe);
	io_uring_prep_read_fixed(sqe, fd, buf, (unsigned)len, off, (int)slot);
	assert_int_equal(io_uring_submit(ring), 1);
	assert_int_equal(io_uring_wait_cqe(ring, &cqe), 0);
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

/* Whether @buf holds the pattern_file() bytes from @off on. */
static inline bool holds_pattern(const void *buf, size_t len, size_t off)
{
	const unsigned char *b = buf;

	for (size_t i = 0; i < len; i++)
		if (b[i] != (unsigned char)((off + i) * 7 + 3))
			return false;
	return true;
}

#endif /* UMN_TESTS_URING_HELPERS_H */
