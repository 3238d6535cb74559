/* SPDX-License-Identifier: MIT */
/*
 * Architectures without a header of their own: libc's syscall().  The
 * monitor does not patch libc there, so no wrapper can be re-entered.
 */
#ifndef UMN_SYS_ARCH_GENERIC_SYSCALL_H
#define UMN_SYS_ARCH_GENERIC_SYSCALL_H

#include <errno.h>
#include <unistd.h>

long syscall(long nr, ...);

static inline long umn__sys6(long nr, long a, long b, long c, long d, long e,
			     long f)
{
	int saved = errno;
	long ret = syscall(nr, a, b, c, d, e, f);

	if (ret == -1) {
		ret = -errno;
		errno = saved;
	}
	return ret;
}

#endif
