// SPDX-License-Identifier: MIT
/*
 * patch (architectures without a patcher, aarch64 among them) — says so.
 * umn_mm_process() then fails with ENOTSUP and the reason, unless
 * UMN_MONITOR=off asked for a space that nothing feeds.
 */
#include <errno.h>

#include "monitor/monitor.h"

int umn__arch_patch(const struct umn__monitor_shared *mine,
		    const struct umn__monitor_shared **shared, char *why,
		    size_t len)
{
	*shared = NULL;
	umn__why(why, len, "patching libc is not supported on this "
		 "architecture (x86-64 only); UMN_MONITOR=off gives a space "
		 "that nothing feeds\n");
	return -ENOTSUP;
}
