// SPDX-License-Identifier: MIT
/*
 * The monitor in a statically linked program, where dlopen finds no libc:
 * it patches the libc linked in, sbrk() still hands out fresh memory (the
 * brk wrapper keeps glibc's __curbrk), and a munmap reaches a subscription.
 * Linked with -static, so no cmocka (Debian ships no static libcmocka):
 * prints each check and exits 0 when all pass, 1 otherwise.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <umn/monitor.h>
#include <umn/umn.h>

static int hits, failed;

static bool count_invalidate(struct umn_interval *sub,
			     const struct umn_range *range,
			     unsigned long cur_seq)
{
	umn_set_seq(sub, cur_seq);
	hits++;
	return true;
}

static const struct umn_interval_ops count_ops = {
	.invalidate = count_invalidate,
};

static void check(bool ok, const char *what)
{
	printf("%s: %s\n", ok ? "ok" : "FAIL", what);
	failed += !ok;
}

int main(void)
{
	struct umn_mm *mm = umn_mm_process();
	struct umn_monitor_info info;
	struct umn_interval sub = { 0 };

	umn_monitor_query(&info);
	check(mm && info.source == UMN_MONITOR_PATCH, "the monitor installs");
	if (!mm) {
		fputs(info.reason, stdout);
		return 1;
	}
	char *a = sbrk(4096), *b = sbrk(4096);

	check(a != (void *)-1 && b == a + 4096, "sbrk() twice: fresh memory");
	check(sbrk(-8192) != (void *)-1 && sbrk(0) == a, "sbrk() shrinks back");
	char *p = mmap(NULL, 2 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	check(umn_interval_insert(&sub, mm, (uintptr_t)p, 2 * 4096,
				  &count_ops) == 0, "insert");
	munmap(p, 4096);
	check(hits == 1, "munmap reaches the subscription");
	check(umn_interval_remove(&sub) == 0, "remove");
	munmap(p + 4096, 4096);
	return failed ? 1 : 0;
}
