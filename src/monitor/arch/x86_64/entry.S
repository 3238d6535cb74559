/* SPDX-License-Identifier: MIT */
/*
 * The stub libc's patched syscall() leads to, entered with syscall()'s own
 * arguments (number in rdi, then rsi rdx rcx r8 r9, the sixth at 8(%rsp)).
 * Numbers the monitor watches go to umn__monitor_syscall() in C; every
 * other one goes to the kernel here, or to the patcher syscall() chained
 * to, with no C frame in between: syscall() also carries clone and vfork,
 * whose child must find the stack as syscall() would leave it.
 */
	.text
	.p2align 4
	.globl umn__monitor_syscall_entry
	.hidden umn__monitor_syscall_entry
	.type umn__monitor_syscall_entry, @function
umn__monitor_syscall_entry:
	endbr64			/* reached by the island's indirect jump */
	cmp $11, %rdi		/* munmap */
	je 1f
	cmp $25, %rdi		/* mremap */
	je 1f
	cmp $28, %rdi		/* madvise */
	je 1f
	cmp $10, %rdi		/* mprotect */
	je 1f
	cmp $329, %rdi		/* pkey_mprotect */
	je 1f
	cmp $12, %rdi		/* brk */
	je 1f
	cmp $67, %rdi		/* shmdt */
	je 1f
	cmp $9, %rdi		/* mmap */
	je 1f
	/* r11 is free at a call.  rax (al: the vector-register count a
	 * variadic callee reads) already holds the number, not the caller's
	 * count: compilers' variadic prologues only test it, so harmless. */
	mov umn__monitor_syscall_chain(%rip), %r11
	test %r11, %r11
	jnz 3f
	mov %rdi, %rax
	mov %rsi, %rdi
	mov %rdx, %rsi
	mov %rcx, %rdx
	mov %r8, %r10
	mov %r9, %r8
	mov 8(%rsp), %r9
	syscall
	cmp $-4095, %rax
	jae 2f
	ret
2:	mov %rax, %rdi
	jmp umn__monitor_syscall_error
3:	jmp *%r11
1:	jmp umn__monitor_syscall
	.size umn__monitor_syscall_entry, . - umn__monitor_syscall_entry

	.section .note.GNU-stack, "", @progbits
