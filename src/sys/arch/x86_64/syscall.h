/* SPDX-License-Identifier: MIT */
/* x86-64: rax = number; rdi, rsi, rdx, r10, r8, r9; rcx and r11 clobbered. */
#ifndef UMN_SYS_ARCH_X86_64_SYSCALL_H
#define UMN_SYS_ARCH_X86_64_SYSCALL_H

static inline long umn__sys6(long nr, long a, long b, long c, long d, long e,
			     long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8),
			   "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#endif
