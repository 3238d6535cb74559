// SPDX-License-Identifier: MIT
/*
 * Installing the monitor while two threads hammer munmap, syscall(SYS_munmap)
 * and mmap(MAP_FIXED): no thread crashes on a half-written entry, every
 * call a thread makes once it has seen the install finish reaches the
 * subscription, and libc's text is read+execute again afterwards.  Each
 * round is a fresh forked child, since a process installs only once.
 */
#include "monitor/helpers.h"

#include <dlfcn.h>
#include <sys/syscall.h>

#define ROUNDS 4

static char *region;              /* watched once installed */
static atomic_int installed, stop, after;
static struct watch *watched;

static void *hammer(void *arg)
{
	size_t slot = (size_t)(uintptr_t)arg;

	while (!atomic_load(&stop)) {
		bool seen = atomic_load(&installed);
		char *p = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED || munmap(p, PG) ||
		    syscall(SYS_munmap, p + PG, PG))
			abort();
		char *page = region + slot * PG;

		if (mmap(page, PG, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != page)
			abort();
		if (seen)
			atomic_fetch_add(&after, 1);
	}
	return NULL;
}

/* Is the page holding @fn mapped without write permission? */
static bool text_not_writable(void *fn)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	bool ok = false;

	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[5];

		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 &&
		    (uintptr_t)fn >= lo && (uintptr_t)fn < hi) {
			ok = perms[1] == '-' && perms[2] == 'x';
			break;
		}
	}
	if (f)
		fclose(f);
	return ok;
}

static int child(void)
{
	pthread_t t[2];
	struct umn_mm *mm;

	region = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		return 2;
	for (uintptr_t i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, hammer, (void *)i);
	sleep_ms(20);
	mm = umn_mm_process();
	if (!mm)
		return 3;
	watched = &watch_pool[0];
	watched->want = UMN_EVENT_UNMAP;
	if (umn_interval_insert(&watched->sub, mm, (uintptr_t)region, 4 * PG,
				&watch_ops))
		return 4;
	/* Inserted under walks, the subscription is armed once applied:
	 * read_begin waits for that, as a reader of it would. */
	umn_read_begin(&watched->sub);
	atomic_store(&installed, 1);
	sleep_ms(50);
	atomic_store(&stop, 1);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	if (atomic_load(&after) == 0)
		return 5; /* the threads never ran after the install */
	if (atomic_load(&watched->hits) < atomic_load(&after))
		return 6; /* a call missed */
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	const char *fns[] = { "munmap", "mremap", "madvise", "mprotect",
			      "brk", "shmdt", "mmap", "syscall" };

	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
		if (!text_not_writable(dlsym(libc, fns[i])))
			return 7;
	umn_interval_remove(&watched->sub);
	return 0;
}

static void install_under_hammering_threads(void **state)
{
	for (int round = 0; round < ROUNDS; round++)
		in_child(child, NULL);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(install_under_hammering_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
