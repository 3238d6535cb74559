// SPDX-License-Identifier: MIT
/*
 * A device fault that fails leaves no region behind: the region it
 * inserted for the page watches memory no device entry came from.  And a
 * device write never gets past the host mapping's own protection.
 */
#include "mirror/helpers.h"

#include <fcntl.h>

struct user {
	struct umn_mm *mm;
	struct umn_mirror *m;
};

static void user_setup(struct user *u)
{
	u->mm = umn_mm_new();
	assert_non_null(u->mm);
	u->m = umn_mirror_new(u->mm, NULL);
	assert_non_null(u->m);
}

static void user_free(struct user *u)
{
	assert_int_equal(umn_mirror_regions(u->m, NULL, 0), 0);
	assert_int_equal(umn_mirror_free(u->m), 0);
	assert_int_equal(umn_mm_free(u->mm), 0);
}

static void unmap(struct user *u, void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p;

	assert_int_equal(umn_invalidate(u->mm, a, a + len, UMN_EVENT_UNMAP),
			 0);
	assert_int_equal(munmap(p, len), 0);
}

static void no_access(void **state)
{
	struct user u;
	char *p = mmap(NULL, 4 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	uint64_t v;

	assert_true(p != MAP_FAILED);
	user_setup(&u);
	assert_int_equal(umn_mirror_fault(u.m, (uintptr_t)p, UMN_MIRROR_READ),
			 -EACCES);
	assert_int_equal(umn_mirror_read(u.m, (uintptr_t)p + PG, &v, 8),
			 -EACCES);
	assert_int_equal(umn_mirror_regions(u.m, NULL, 0), 0);
	assert_int_equal(mirror_stats(u.m).fault_errors, 2);
	unmap(&u, p, 4 * PG);
	user_free(&u);
}

static void read_only(void **state)
{
	struct user u;
	char *p = mmap(NULL, 4 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	uint64_t v = 1;

	assert_true(p != MAP_FAILED);
	user_setup(&u);
	assert_int_equal(umn_mirror_write(u.m, (uintptr_t)p, &v, 8), -EACCES);
	assert_int_equal(umn_mirror_regions(u.m, NULL, 0), 0);
	/* A read may: then the region stays, and a write is still refused. */
	assert_int_equal(umn_mirror_read(u.m, (uintptr_t)p, &v, 8), 0);
	assert_true(v == 0);
	assert_int_equal(umn_mirror_regions(u.m, NULL, 0), 1);
	assert_int_equal(umn_mirror_write(u.m, (uintptr_t)p, &v, 8), -EACCES);
	assert_int_equal(umn_mirror_regions(u.m, NULL, 0), 1);
	unmap(&u, p, 4 * PG);
	user_free(&u);
}

/* The [vsyscall] page, where the kernel lists one: mapped, not readable. */
static uintptr_t vsyscall_page(void)
{
	char buf[65536];
	ssize_t n = 0, got;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	char *line;

	if (fd < 0)
		return 0;
	while ((got = read(fd, buf + n, sizeof(buf) - 1 - (size_t)n)) > 0)
		n += got;
	close(fd);
	buf[n] = '\0';
	line = strstr(buf, "[vsyscall]");
	if (!line)
		return 0;
	while (line > buf && line[-1] != '\n')
		line--;
	return (uintptr_t)strtoull(line, NULL, 16);
}

static void vsyscall(void **state)
{
	uintptr_t page = vsyscall_page();
	struct user u;
	uint64_t v;
	int err;

	if (!page)
		skip();
	user_setup(&u);
	err = umn_mirror_read(u.m, page, &v, sizeof(v));
	assert_true(err == -EACCES || err == -EFAULT);
	assert_int_equal(umn_mirror_regions(u.m, NULL, 0), 0);
	user_free(&u);
}

/*
 * process_vm_writev() honours the mapping's protection: even with a device
 * entry that still allows writes (the invalidation of an mprotect missed,
 * as for a raw system call no monitor sees), a device write into a
 * read-only page fails and leaves it as it was.
 */
static void host_protection_holds(void **state)
{
	struct user u;
	char *p = map_guarded(4, 1);
	uint64_t v = 42;

	user_setup(&u);
	assert_int_equal(umn_mirror_write(u.m, (uintptr_t)p, &v, 8), 0);
	assert_int_equal(mprotect(p, PG, PROT_READ), 0);  /* not told */
	v = 43;
	assert_int_equal(umn_mirror_write(u.m, (uintptr_t)p, &v, 8), -EFAULT);
	assert_true(*(uint64_t *)p == 42);
	assert_int_equal(umn_invalidate(u.mm, (uintptr_t)p, (uintptr_t)p + PG,
					UMN_EVENT_PROTECTION), 0);
	assert_int_equal(umn_mirror_write(u.m, (uintptr_t)p, &v, 8), -EACCES);
	assert_true(*(uint64_t *)p == 42);
	user_teardown(u.mm, u.m, p, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(no_access),
		cmocka_unit_test(read_only),
		cmocka_unit_test(vsyscall),
		cmocka_unit_test(host_protection_holds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
