/* SPDX-License-Identifier: MIT */
/*
 * Library bugs — a broken invariant, never a caller's mistake — abort with
 * file and line, always, in every build.  Misuse gets an error code instead.
 */
#ifndef UMN_SYS_DEBUG_H
#define UMN_SYS_DEBUG_H

#include <stdio.h>
#include <stdlib.h>

#define UMN_BUG_ON(cond)                                                      \
	do {                                                                  \
		if (__builtin_expect(!!(cond), 0)) {                          \
			fprintf(stderr, "umn: bug at %s:%d: %s\n", __FILE__,  \
				__LINE__, #cond);                             \
			abort();                                              \
		}                                                             \
	} while (0)

/*
 * Misuse that cannot be reported as an error (a void function) and would
 * otherwise corrupt a space or hang it for good: say what, then abort.
 */
#define UMN_FATAL_MISUSE(msg)                                                 \
	do {                                                                  \
		fprintf(stderr, "umn: fatal misuse: %s\n", (msg));            \
		abort();                                                      \
	} while (0)

#endif /* UMN_SYS_DEBUG_H */
