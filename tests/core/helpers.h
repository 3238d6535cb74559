/* SPDX-License-Identifier: MIT */
/* What every core test includes: cmocka, the public API, and small helpers. */
#ifndef UMN_TESTS_HELPERS_H
#define UMN_TESTS_HELPERS_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <umn/umn.h>

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

/* Seconds a stress test runs; UMN_STRESS_SECONDS overrides (default 2). */
static inline double test_stress_seconds(void)
{
	const char *s = getenv("UMN_STRESS_SECONDS");
	double v = s ? atof(s) : 2.0;
	return v > 0 ? v : 2.0;
}

#endif /* UMN_TESTS_HELPERS_H */
