/* SPDX-License-Identifier: MIT */
/*
 * Raw system calls, for code that can run inside a libc call the monitor
 * wraps: calling libc's munmap, mprotect or syscall() from there would
 * re-enter the wrapper.  One small header per architecture provides
 *
 *   long umn__sys6(long nr, long a, long b, long c, long d, long e, long f);
 *
 * which returns the kernel's result: >= 0, or -errno.  Never sets errno.
 */
#ifndef UMN_SYS_RAW_SYSCALL_H
#define UMN_SYS_RAW_SYSCALL_H

#include <sys/syscall.h>

#if defined(__x86_64__)
#include "sys/arch/x86_64/syscall.h"
#elif defined(__aarch64__)
#include "sys/arch/aarch64/syscall.h"
#else
#include "sys/arch/generic/syscall.h"
#endif

#define umn__sys0(nr)             umn__sys6((nr), 0, 0, 0, 0, 0, 0)
#define umn__sys1(nr, a)          umn__sys6((nr), (long)(a), 0, 0, 0, 0, 0)
#define umn__sys2(nr, a, b)       umn__sys6((nr), (long)(a), (long)(b), 0, 0, 0, 0)
#define umn__sys3(nr, a, b, c)    umn__sys6((nr), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define umn__sys4(nr, a, b, c, d) umn__sys6((nr), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

/* The kernel returns -4095..-1 for errors, anything else is a result. */
static inline int umn__sys_error(long ret)
{
	return (unsigned long)ret > -4096ul ? (int)-ret : 0;
}

#endif /* UMN_SYS_RAW_SYSCALL_H */
