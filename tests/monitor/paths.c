// SPDX-License-Identifier: MIT
/*
 * Every way a process takes memory away through libc reaches the process
 * space: one test per path, each watching the memory involved and checking
 * the exact event, a range that covers the pages, the call it came from,
 * and for UNMAP and CLEAR that the memory was still readable in the
 * callback.  Then all of it again in a forked child, whose space starts
 * empty.
 */
#include "monitor/helpers.h"

#include <malloc.h>
#include <sys/shm.h>
#include <sys/syscall.h>

static void path_munmap(void **state)
{
	char *p = map_pages(4, 0x5a);
	struct watch *w = watch_new();

	watch_start(w, p + PG, 2 * PG, UMN_EVENT_UNMAP, true);
	assert_int_equal(munmap(p + PG, 2 * PG), 0);
	watch_check(w, p + PG, p + 3 * PG, "munmap");
	watch_stop(w);
	munmap(p, 4 * PG);
}

static void path_syscall_munmap(void **state)
{
	char *p = map_pages(2, 0x33);
	struct watch *w = watch_new();

	watch_start(w, p, 2 * PG, UMN_EVENT_UNMAP, true);
	assert_int_equal(syscall(SYS_munmap, p, 2 * PG), 0);
	watch_check(w, p, p + 2 * PG, "syscall:munmap");
	watch_stop(w);
}

static void path_free_large(void **state)
{
	if (UNDER_SANITIZER)
		skip();
	mallopt(M_MMAP_THRESHOLD, 128 * 1024); /* fixed: no dynamic raise */
	size_t len = 1 << 20;
	char *p = malloc(len);
	struct watch *w = watch_new();

	assert_non_null(p);
	memset(p, 0x11, len);
	uintptr_t at = (uintptr_t)p;

	watch_start(w, p, len, UMN_EVENT_UNMAP, true);
	free(p);
	watch_check(w, (void *)at, (void *)(at + len), "munmap");
	watch_stop(w);
}

static void path_realloc_large(void **state)
{
	if (UNDER_SANITIZER)
		skip();
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	size_t len = 1 << 20;
	char *p = malloc(len), *q;
	struct watch *w = watch_new();

	assert_non_null(p);
	memset(p, 0x22, len);
	uintptr_t at = (uintptr_t)p;

	watch_start(w, p, len, UMN_EVENT_REMAP, true);
	q = realloc(p, 16 * len);
	assert_non_null(q);
	watch_check(w, (void *)at, (void *)(at + len), "mremap");
	watch_stop(w);
	free(q);
}

/* A block at the top of the main heap, freed without trimming, then
 * trimmed: glibc gives the pages back with sbrk(-n), that is brk(). */
static void path_malloc_trim(void **state)
{
	if (UNDER_SANITIZER)
		skip();
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	size_t len = 4 << 20;
	char *p = malloc(len);
	struct watch *w = watch_new();

	assert_non_null(p);
	memset(p, 0x44, len);
	char *lo = (char *)(((uintptr_t)p + 64 * PG) & ~(PG - 1));
	char *hi = lo + 512 * PG;

	watch_start(w, lo, (size_t)(hi - lo), UMN_EVENT_UNMAP, true);
	free(p);
	assert_int_equal(atomic_load(&w->hits), 0); /* not trimmed yet */
	assert_int_equal(malloc_trim(0), 1);
	watch_check(w, lo, hi, "brk");
	watch_stop(w);
	mallopt(M_TRIM_THRESHOLD, 128 * 1024);
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
}

static void path_madvise(int advice, char fill)
{
	char *p = map_pages(16, fill);
	struct watch *w = watch_new();

	watch_start(w, p + 4 * PG, 8 * PG, UMN_EVENT_CLEAR, true);
	if (madvise(p + 2 * PG, 12 * PG, advice) != 0) {
		watch_stop(w);
		munmap(p, 16 * PG);
		skip(); /* MADV_FREE needs Linux 4.5 */
	}
	watch_check(w, p + 4 * PG, p + 12 * PG, "madvise");
	watch_stop(w);
	/* A harmless advice is no event. */
	watch_start(w, p, 16 * PG, UMN_EVENT_CLEAR, false);
	assert_int_equal(madvise(p, 16 * PG, MADV_WILLNEED), 0);
	assert_int_equal(atomic_load(&w->hits), 0);
	watch_stop(w);
	munmap(p, 16 * PG);
}

static void path_madvise_dontneed(void **state)
{
	path_madvise(MADV_DONTNEED, 0x55);
}

static void path_madvise_free(void **state)
{
	path_madvise(MADV_FREE, 0x66);
}

/* Linux 6.13: guard pages throw the contents away. */
static void path_madvise_guard(void **state)
{
	path_madvise(102 /* MADV_GUARD_INSTALL */, 0x67);
}

static void path_mprotect(void **state)
{
	char *p = map_pages(4, 0x77);
	struct watch *w = watch_new();

	watch_start(w, p, 4 * PG, UMN_EVENT_PROTECTION, false);
	assert_int_equal(mprotect(p + PG, 2 * PG, PROT_READ), 0);
	watch_check(w, p + PG, p + 3 * PG, "mprotect");
	watch_stop(w);
	munmap(p, 4 * PG);
}

static void path_sbrk_shrink(void **state)
{
	char *top = sbrk(0);

	assert_true(top != (void *)-1);
	if (sbrk(16 * PG) == (void *)-1)
		skip(); /* no heap to grow: nothing to shrink */
	char *lo = (char *)(((uintptr_t)top + PG - 1) & ~(PG - 1));

	memset(lo, 0x12, 8 * PG);
	struct watch *w = watch_new();

	watch_start(w, lo, 8 * PG, UMN_EVENT_UNMAP, true);
	assert_true(sbrk(-(intptr_t)(16 * PG)) != (void *)-1);
	watch_check(w, lo, lo + 8 * PG, "brk");
	watch_stop(w);
	assert_ptr_equal(sbrk(0), top);
}

static void path_shmdt(void **state)
{
	int id = shmget(IPC_PRIVATE, 16 * PG, IPC_CREAT | 0600);

	if (id < 0)
		skip(); /* no System V shared memory here */
	char *p = shmat(id, NULL, 0);

	shmctl(id, IPC_RMID, NULL);
	assert_true(p != (void *)-1);
	memset(p, 0x3c, 16 * PG);
	struct watch *w = watch_new();

	watch_start(w, p + 8 * PG, 8 * PG, UMN_EVENT_UNMAP, true);
	assert_int_equal(shmdt(p), 0);
	watch_check(w, p, p + 16 * PG, "shmdt");
	watch_stop(w);
}

/* Pieces of a segment apart: a hole in it, or its first page gone.  shmdt
 * still detaches every piece from the address on. */
static void path_shmdt_pieces(void **state)
{
	for (int first_gone = 0; first_gone < 2; first_gone++) {
		int id = shmget(IPC_PRIVATE, 16 * PG, IPC_CREAT | 0600);

		if (id < 0)
			skip();
		char *p = shmat(id, NULL, 0);

		shmctl(id, IPC_RMID, NULL);
		assert_true(p != (void *)-1);
		memset(p, 0x3d, 16 * PG);
		assert_int_equal(munmap(first_gone ? p : p + 4 * PG, PG), 0);
		struct watch *w = watch_new();

		watch_start(w, p + 12 * PG, 4 * PG, UMN_EVENT_UNMAP, true);
		assert_int_equal(shmdt(p), 0);
		watch_check(w, p + 12 * PG, p + 16 * PG, "shmdt");
		watch_stop(w);
		watch_teardown(state);
	}
}

static void path_mmap_fixed(void **state)
{
	char *p = map_pages(4, 0x0f);
	struct watch *w = watch_new();

	watch_start(w, p, 4 * PG, UMN_EVENT_UNMAP, true);
	assert_ptr_equal(mmap(p + PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
			      MAP_FIXED, -1, 0), p + PG);
	watch_check(w, p + PG, p + 2 * PG, "mmap");
	watch_stop(w);
	/* Not fixed: no event. */
	watch_start(w, p, 4 * PG, UMN_EVENT_UNMAP, false);
	char *q = mmap(p, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(q != MAP_FAILED && q != p);
	assert_int_equal(atomic_load(&w->hits), 0);
	watch_stop(w);
	munmap(q, PG);
	munmap(p, 4 * PG);
}

static void path_mremap_move(void **state)
{
	/* Two pages followed by a page it cannot grow into. */
	char *p = map_pages(3, 0x2e);

	assert_int_equal(mprotect(p + 2 * PG, PG, PROT_NONE), 0);
	struct watch *w = watch_new();

	watch_start(w, p, 2 * PG, UMN_EVENT_REMAP, true);
	char *q = mremap(p, 2 * PG, 64 * PG, MREMAP_MAYMOVE);

	assert_true(q != MAP_FAILED);
	assert_true(q != p); /* it moved */
	assert_int_equal(q[0], 0x2e);
	watch_check(w, p, p + 2 * PG, "mremap");
	watch_stop(w);
	munmap(q, 64 * PG);
	munmap(p + 2 * PG, PG);
}

struct stack_span {
	uintptr_t lo, hi;
};

static void *note_stack(void *arg)
{
	struct stack_span *s = arg;
	pthread_attr_t a;
	void *addr;
	size_t size;

	if (s && !pthread_getattr_np(pthread_self(), &a)) {
		pthread_attr_getstack(&a, &addr, &size);
		s->lo = (uintptr_t)addr;
		s->hi = (uintptr_t)addr + size;
		pthread_attr_destroy(&a);
	}
	return NULL;
}

static void run_thread(size_t stack, struct stack_span *s)
{
	pthread_attr_t a;
	pthread_t t;

	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, stack);
	assert_int_equal(pthread_create(&t, &a, note_stack, s), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	pthread_attr_destroy(&a);
}

/*
 * glibc keeps joined threads' stacks in a cache (40 MiB) and unmaps the
 * oldest when it overflows.  Watch one thread's stack, then run threads
 * with bigger stacks, which cannot reuse it, until it is unmapped.
 */
static void path_thread_stack(void **state)
{
	struct stack_span s = { 0, 0 };
	struct watch *w = watch_new();

	run_thread(256 * 1024, &s);
	assert_true(s.hi > s.lo);
	watch_start(w, (void *)s.lo, s.hi - s.lo, UMN_EVENT_UNMAP, false);
	for (int i = 0; i < 64 && !atomic_load(&w->hits); i++)
		run_thread((size_t)(16 + i) << 20, NULL);
	watch_check(w, (void *)s.lo, (void *)s.hi, "munmap");
	watch_stop(w);
}

/* ->invalidate() that frees a large block: free() re-enters munmap's
 * wrapper from inside a walk, and its own walk reaches a second watch. */
struct reenter {
	struct watch outer;
	char *block;
	size_t len;
	struct watch inner;
};

static bool reenter_invalidate(struct umn_interval *sub,
			       const struct umn_range *range,
			       unsigned long cur_seq)
{
	struct reenter *r = container_of(sub, struct reenter, outer.sub);
	char *block = r->block;

	watch_invalidate(sub, range, cur_seq);
	if (block) {
		r->block = NULL;
		free(block);
	}
	return true;
}

static struct reenter r;

static const struct umn_interval_ops reenter_ops = {
	.invalidate = reenter_invalidate,
};

static void reenter_free(void **state)
{
	char *p = map_pages(2, 0x01);

	memset(&r, 0, sizeof(r));
	r.len = 1 << 20;
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	r.block = malloc(r.len);
	assert_non_null(r.block);
	memset(r.block, 0x02, r.len);
	/* Under a sanitizer free() unmaps nothing: then only the outer hits. */
	watch_start(&r.inner, r.block, r.len, UMN_EVENT_UNMAP, false);
	r.outer.want = UMN_EVENT_UNMAP;
	assert_int_equal(umn_interval_insert(&r.outer.sub, process_space(),
					     (uintptr_t)p, 2 * PG, &reenter_ops),
			 0);
	assert_int_equal(munmap(p, 2 * PG), 0);
	assert_null(r.block);
	assert_int_equal(atomic_load(&r.outer.hits), 1);
	if (!UNDER_SANITIZER)
		assert_int_equal(atomic_load(&r.inner.hits), 1);
	watch_stop(&r.outer);
	watch_stop(&r.inner);
}

static struct watch inherited;

/* What a failed test left inserted, out of the tree (-ENOENT if none). */
static int paths_teardown(void **state)
{
	umn_interval_remove(&r.outer.sub);
	umn_interval_remove(&r.inner.sub);
	umn_interval_remove(&inherited.sub);
	return watch_teardown(state);
}

#define PATH(f) cmocka_unit_test_teardown(f, paths_teardown)
#define PATHS                                                                \
	PATH(path_munmap),                                                   \
	PATH(path_syscall_munmap),                                           \
	PATH(path_free_large),                                               \
	PATH(path_realloc_large),                                            \
	PATH(path_malloc_trim),                                              \
	PATH(path_madvise_dontneed),                                         \
	PATH(path_madvise_free),                                             \
	PATH(path_madvise_guard),                                            \
	PATH(path_mprotect),                                                 \
	PATH(path_sbrk_shrink),                                              \
	PATH(path_shmdt),                                                    \
	PATH(path_shmdt_pieces),                                             \
	PATH(path_mmap_fixed),                                               \
	PATH(path_mremap_move),                                              \
	PATH(path_thread_stack),                                             \
	PATH(reenter_free)

/*
 * fork(): the child's space is the same pointer, empty; the parent's
 * subscription reads as not inserted there and hears nothing; every path
 * works again in the child.
 */
static struct umn_mm *parent_space;
static char *inherited_mem;

static void child_inherited(void **state)
{
	assert_ptr_equal(umn_mm_process(), parent_space);
	assert_int_equal(umn_interval_remove(&inherited.sub), -ENOENT);
	assert_int_equal(munmap(inherited_mem, PG), 0);
	assert_int_equal(atomic_load(&inherited.hits), 0);
	watch_start(&inherited, inherited_mem + PG, PG, UMN_EVENT_UNMAP, true);
	assert_int_equal(munmap(inherited_mem + PG, PG), 0);
	watch_check(&inherited, inherited_mem + PG, inherited_mem + 2 * PG,
		    "munmap");
	watch_stop(&inherited);
}

static void paths_in_forked_child(void **state)
{
	int status;

	parent_space = process_space();
	inherited_mem = map_pages(2, 0x7e);
	watch_start(&inherited, inherited_mem, 2 * PG, UMN_EVENT_UNMAP, true);
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		static const struct CMUnitTest paths[] = {
			cmocka_unit_test_teardown(child_inherited, paths_teardown), PATHS,
		};

		_exit(cmocka_run_group_tests_name("paths in a forked child",
						  paths, NULL, NULL) ? 1 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The parent's subscription is untouched by the child. */
	assert_int_equal(atomic_load(&inherited.hits), 0);
	watch_stop(&inherited);
	munmap(inherited_mem, 2 * PG);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		PATHS,
		cmocka_unit_test_teardown(paths_in_forked_child, paths_teardown),
	};

	process_space();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
