// SPDX-License-Identifier: MIT
/*
 * What feeds the process space, and what the install says: UMN_MONITOR=off
 * delivers nothing, an unknown value and an entry point umn does not know
 * fail loudly with nothing patched, an entry that already jumps to another
 * patcher is chained (both see every call), and a second copy of umn in
 * the process shares the first one's wrappers and space.  A process
 * installs once, so each case runs in a forked child; the parent never
 * installs.
 */
#include "monitor/helpers.h"

#include <dlfcn.h>
#include <limits.h>
#include <sys/syscall.h>

/* Fail the child, saying where: its exit status only holds 0..255. */
#define CHECK(cond)                                                          \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "child: %s:%d: %s\n", __FILE__,       \
				__LINE__, #cond);                             \
			return 1;                                             \
		}                                                             \
	} while (0)

static int query_before_install(void)
{
	struct umn_monitor_info info;

	CHECK(umn_monitor_query(NULL) == -EINVAL);
	CHECK(umn_monitor_query(&info) == 0);
	CHECK(info.source == UMN_MONITOR_NONE);
	CHECK(strstr(info.reason, "not installed"));
	return 0;
}

/* An unmap of watched memory: how many walks reached the watch. */
static int unmap_hits(struct umn_mm *mm)
{
	char *p = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct watch *w = &watch_pool[0];

	memset(w, 0, sizeof(*w));
	if (p == MAP_FAILED ||
	    umn_interval_insert(&w->sub, mm, (uintptr_t)p, PG, &watch_ops))
		return -1;
	munmap(p, PG);
	umn_interval_remove(&w->sub);
	return atomic_load(&w->hits);
}

static int source_off(void)
{
	struct umn_mm *mm = umn_mm_process();
	struct umn_monitor_info info;

	CHECK(mm);
	CHECK(umn_mm_process() == mm);
	CHECK(umn_monitor_query(&info) == 0);
	CHECK(info.source == UMN_MONITOR_OFF && info.requested == UMN_MONITOR_OFF);
	CHECK(strstr(info.reason, "off"));
	CHECK(unmap_hits(mm) == 0);
	CHECK(umn_mm_free(mm) == -EBUSY); /* the process space is for good */
	/* The space still works when driven by hand. */
	struct watch *w = &watch_pool[1];

	CHECK(umn_interval_insert(&w->sub, mm, 4096, 4096, &watch_ops) == 0);
	CHECK(umn_invalidate(mm, 0, 8192, UMN_EVENT_UNMAP) == 0);
	CHECK(atomic_load(&w->hits) == 1);
	CHECK(umn_interval_remove(&w->sub) == 0);
	return 0;
}

static int source_unknown(void)
{
	struct umn_monitor_info info;

	errno = 0;
	CHECK(!umn_mm_process() && errno == EINVAL);
	errno = 0;
	CHECK(!umn_mm_process() && errno == EINVAL); /* not retried */
	CHECK(umn_monitor_query(&info) == 0);
	CHECK(info.source == UMN_MONITOR_NONE && info.error == EINVAL);
	CHECK(strstr(info.reason, "bogus"));
	return 0;
}

static int source_uffd(void)
{
	struct umn_monitor_info info;

	errno = 0;
	CHECK(!umn_mm_process() && errno == ENOTSUP);
	CHECK(umn_monitor_query(&info) == 0);
	CHECK(info.requested == UMN_MONITOR_UFFD && info.error == ENOTSUP);
	CHECK(strstr(info.reason, "not implemented"));
	return 0;
}

static int source_patch(void)
{
	struct umn_mm *mm = umn_mm_process();
	struct umn_monitor_info info;
	const char *names[] = { "munmap", "mremap", "madvise", "mprotect",
				"pkey_mprotect", "brk", "shmdt", "mmap",
				"syscall" };

	CHECK(mm);
	CHECK(umn_monitor_query(&info) == 0);
	CHECK(info.source == UMN_MONITOR_PATCH && info.error == 0);
	CHECK(!info.shared && info.chained == 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char line[64];

		snprintf(line, sizeof(line), "%s: patched at", names[i]);
		CHECK(strstr(info.reason, line));
	}
	CHECK(unmap_hits(mm) == 1);
	return 0;
}

/* Write @len bytes over libc's @name entry, the way a patcher would. */
static bool overwrite_entry(const char *name, const void *bytes, size_t len)
{
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	char *fn = libc ? dlsym(libc, name) : NULL;
	uintptr_t page = (uintptr_t)fn & ~(PG - 1);

	if (!fn || mprotect((void *)page, 2 * PG, PROT_READ | PROT_WRITE |
						   PROT_EXEC))
		return false;
	memcpy(fn, bytes, len);
	mprotect((void *)page, 2 * PG, PROT_READ | PROT_EXEC);
	return true;
}

static char *entry_of(const char *name)
{
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);

	return libc ? dlsym(libc, name) : NULL;
}

/* munmap's entry in a shape umn does not know: nothing at all patched. */
static int entry_unknown(void)
{
	static const unsigned char nop5[] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
	unsigned char before[16];
	struct umn_monitor_info info;

	memcpy(before, entry_of("mprotect"), sizeof(before));
	CHECK(overwrite_entry("munmap", nop5, sizeof(nop5)));
	errno = 0;
	CHECK(!umn_mm_process() && errno == ENOEXEC);
	CHECK(umn_monitor_query(&info) == 0);
	CHECK(info.source == UMN_MONITOR_NONE && info.error == ENOEXEC);
	CHECK(strstr(info.reason, "munmap: entry 0f 1f 44 00 00"));
	CHECK(!memcmp(before, entry_of("mprotect"), sizeof(before)));
	_exit(0); /* munmap is broken in this child: no exit handlers */
}

/* Another patcher, as UCX's ucm does it: movabs $hook, %r11; jmp *%r11. */
static atomic_int other_calls;

static int other_munmap(void *addr, size_t len)
{
	atomic_fetch_add(&other_calls, 1);
	long r = syscall(SYS_getpid) > 0 ? 0 : -1; /* any libc call works */

	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(SYS_munmap), "D"(addr), "S"(len)
			 : "rcx", "r11", "memory");
	return r ? -1 : 0;
}

static int chained(void)
{
	unsigned char jump[13] = { 0x49, 0xbb };
	void *hook = (void *)other_munmap;
	struct umn_monitor_info info;

	memcpy(jump + 2, &hook, 8);
	memcpy(jump + 10, (const unsigned char[]){ 0x41, 0xff, 0xe3 }, 3);
	CHECK(overwrite_entry("munmap", jump, sizeof(jump)));
	struct umn_mm *mm = umn_mm_process();

	CHECK(mm);
	CHECK(umn_monitor_query(&info) == 0);
	CHECK(info.chained == 1);
	CHECK(strstr(info.reason, "munmap: chained"));
	int before = atomic_load(&other_calls);

	CHECK(unmap_hits(mm) == 1);                       /* umn saw it */
	CHECK(atomic_load(&other_calls) == before + 1);   /* and so did the other */
	return 0;
}

/* What the other copy's umn_monitor_call_name() makes of a range this
 * copy's wrappers began. */
static const char *(*other_call_name)(const struct umn_range *);
static char other_saw[32];

static bool name_invalidate(struct umn_interval *sub,
			    const struct umn_range *range, unsigned long seq)
{
	const char *name = other_call_name(range);

	umn_set_seq(sub, seq);
	snprintf(other_saw, sizeof(other_saw), "%s", name ? name : "(null)");
	return true;
}

static const struct umn_interval_ops name_ops = {
	.invalidate = name_invalidate,
};

/* This test's own umn (static) installs; libumn.so, loaded beside it,
 * finds its wrappers and uses the same space. */
static int shared_copies(void)
{
	char exe[PATH_MAX], so[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	CHECK(n > 0);
	exe[n] = 0;
	*strrchr(exe, '/') = 0;
	snprintf(so, sizeof(so), "%s/../../libumn.so.0", exe);
	struct umn_mm *mine = umn_mm_process();

	CHECK(mine);
	void *other = dlopen(so, RTLD_NOW | RTLD_LOCAL);

	CHECK(other);
	struct umn_mm *(*other_process)(void) = (struct umn_mm * (*)(void))
		dlsym(other, "umn_mm_process");
	int (*other_query)(struct umn_monitor_info *) =
		(int (*)(struct umn_monitor_info *))dlsym(other,
							  "umn_monitor_query");
	int (*other_insert)(struct umn_interval *, struct umn_mm *, uintptr_t,
			    size_t, const struct umn_interval_ops *) =
		(int (*)(struct umn_interval *, struct umn_mm *, uintptr_t,
			 size_t, const struct umn_interval_ops *))
			dlsym(other, "umn_interval_insert");
	int (*other_remove)(struct umn_interval *) =
		(int (*)(struct umn_interval *))dlsym(other,
						      "umn_interval_remove");
	struct umn_monitor_info info;

	CHECK(other_process && other_query && other_insert && other_remove);
	struct umn_mm *theirs = other_process();

	CHECK(other_query(&info) == 0);
	if (theirs != mine)
		fprintf(stderr, "child: the other copy: %s", info.reason);
	CHECK(theirs == mine);
	CHECK(info.shared && info.source == UMN_MONITOR_PATCH);
	CHECK(strstr(info.reason, "munmap: shared"));
	/* A subscription made through the other copy hears this copy's
	 * wrappers. */
	char *p = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct watch *w = &watch_pool[2];

	CHECK(other_insert(&w->sub, mine, (uintptr_t)p, PG, &watch_ops) == 0);
	munmap(p, PG);
	CHECK(atomic_load(&w->hits) == 1);
	CHECK(other_remove(&w->sub) == 0);
	/* And it names the calls this copy's wrappers report. */
	other_call_name = (const char *(*)(const struct umn_range *))
		dlsym(other, "umn_monitor_call_name");
	CHECK(other_call_name);
	p = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(other_insert(&w->sub, mine, (uintptr_t)p, PG, &name_ops) == 0);
	munmap(p, PG);
	CHECK(!strcmp(other_saw, "munmap"));
	CHECK(other_remove(&w->sub) == 0);
	return 0;
}

/* Both copies install at the same moment, on two threads: one patches, the
 * other shares, and nothing crashes. */
static struct umn_mm *(*at_once_other)(void);
static struct umn_mm *at_once_got[2];
static atomic_int at_once_ready;

static void *at_once_thread(void *arg)
{
	int i = (int)(intptr_t)arg;

	atomic_fetch_add(&at_once_ready, 1);
	while (atomic_load(&at_once_ready) < 2)
		;
	at_once_got[i] = i ? at_once_other() : umn_mm_process();
	return NULL;
}

static int copies_at_once(void)
{
	char exe[PATH_MAX], so[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	pthread_t t[2];

	CHECK(n > 0);
	exe[n] = 0;
	*strrchr(exe, '/') = 0;
	snprintf(so, sizeof(so), "%s/../../libumn.so.0", exe);
	void *other = dlopen(so, RTLD_NOW | RTLD_LOCAL);

	CHECK(other);
	at_once_other = (struct umn_mm * (*)(void))dlsym(other, "umn_mm_process");
	CHECK(at_once_other);
	for (intptr_t i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, at_once_thread, (void *)i);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	if (!at_once_got[0] || at_once_got[0] != at_once_got[1]) {
		struct umn_monitor_info info[2];
		int (*other_query)(struct umn_monitor_info *) =
			(int (*)(struct umn_monitor_info *))dlsym(
				other, "umn_monitor_query");

		umn_monitor_query(&info[0]);
		other_query(&info[1]);
		fprintf(stderr, "child: this copy: %s\nchild: the other: %s",
			info[0].reason, info[1].reason);
	}
	CHECK(at_once_got[0] && at_once_got[0] == at_once_got[1]);
	CHECK(unmap_hits(at_once_got[0]) == 1);
	return 0;
}

static void test_copies_install_at_once(void **state)
{
	for (int i = 0; i < 40; i++)
		in_child(copies_at_once, NULL);
}

static void test_query_before_install(void **state)
{
	in_child(query_before_install, NULL);
}

static void test_off_delivers_nothing(void **state)
{
	in_child(source_off, "off");
}

static void test_unknown_source(void **state)
{
	in_child(source_unknown, "bogus");
}

static void test_uffd_not_yet(void **state)
{
	in_child(source_uffd, "uffd");
}

static void test_patch_says_how(void **state)
{
	in_child(source_patch, "patch");
	in_child(source_patch, NULL);
}

static void test_unknown_entry_patches_nothing(void **state)
{
	in_child(entry_unknown, NULL);
}

static void test_chains_to_another_patcher(void **state)
{
	in_child(chained, NULL);
}

static void test_copies_share_wrappers(void **state)
{
	in_child(shared_copies, NULL);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_before_install),
		cmocka_unit_test(test_off_delivers_nothing),
		cmocka_unit_test(test_unknown_source),
		cmocka_unit_test(test_uffd_not_yet),
		cmocka_unit_test(test_patch_says_how),
		cmocka_unit_test(test_unknown_entry_patches_nothing),
		cmocka_unit_test(test_chains_to_another_patcher),
		cmocka_unit_test(test_copies_share_wrappers),
		cmocka_unit_test(test_copies_install_at_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
