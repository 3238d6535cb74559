// SPDX-License-Identifier: MIT
/*
 * stale_registration — the bug umn exists to end, and the fix.
 *
 * A registration cache (as in front of io_uring_register_buffers,
 * ibv_reg_mr or cudaHostRegister) keeps, per buffer address, something
 * derived from the pages there.  The program frees the buffer and mallocs
 * again: glibc hands back the same address with fresh pages.  A cache keyed
 * by address alone returns the old registration, and I/O goes to the old
 * pages.  Here each registration watches its pages in the process space;
 * free() unmaps them, ->invalidate() runs inside that free(), and drops the
 * registration with umn_interval_put() (non-blocking, allowed there); its
 * ->release() frees the entry.  The next lookup misses and registers anew.
 *
 * Build: cc -std=c11 stale_registration.c $(pkg-config --cflags --libs umn)
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <umn/monitor.h>
#include <umn/umn.h>

struct reg {
	struct umn_interval sub;        /* first: the entry is the sub */
	void *addr;
	size_t len;
	unsigned id;                    /* what a device would hold */
	struct reg *next;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct reg *cache;
static unsigned next_id = 1, dropped;

static bool reg_invalidate(struct umn_interval *sub,
			   const struct umn_range *range, unsigned long cur_seq)
{
	struct reg *r = (struct reg *)sub;

	pthread_mutex_lock(&cache_lock);
	umn_set_seq(sub, cur_seq);
	for (struct reg **p = &cache; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;   /* unreachable from now on */
			dropped++;
			umn_interval_put(sub);
			break;
		}
	}
	pthread_mutex_unlock(&cache_lock);
	return true;
}

/* No walk can reach @sub any more: only now may its memory go. */
static void reg_release(struct umn_interval *sub)
{
	free(sub);
}

static const struct umn_interval_ops reg_ops = {
	.invalidate = reg_invalidate,
	.release = reg_release,
};

/* The registration for [addr, addr + len): cached, or made now. */
static unsigned cache_get(void *addr, size_t len)
{
	pthread_mutex_lock(&cache_lock);
	for (struct reg *r = cache; r; r = r->next) {
		if (r->addr == addr && r->len == len) {
			pthread_mutex_unlock(&cache_lock);
			return r->id;
		}
	}
	pthread_mutex_unlock(&cache_lock);

	struct reg *r = calloc(1, sizeof(*r));

	if (!r)
		return 0;
	r->addr = addr;
	r->len = len;
	if (umn_interval_insert(&r->sub, umn_mm_process(), (uintptr_t)addr,
				len, &reg_ops)) {
		free(r);
		return 0;
	}
	/* Register with the "device" only once the pages are watched. */
	pthread_mutex_lock(&cache_lock);
	r->id = next_id++;
	r->next = cache;
	cache = r;
	pthread_mutex_unlock(&cache_lock);
	return r->id;
}

int main(void)
{
	const size_t len = 4 << 20; /* glibc serves this with mmap */

	if (!umn_mm_process()) {
		struct umn_monitor_info info;

		umn_monitor_query(&info);
		fprintf(stderr, "no process monitor: %s", info.reason);
		return 1;
	}
	/* A fixed threshold: glibc would otherwise raise it after the first
	 * free and serve the second malloc from the heap. */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	char *buf = malloc(len);
	unsigned first = cache_get(buf, len);

	printf("buffer %p registered as #%u\n", (void *)buf, first);
	printf("again: #%u (a hit)\n", cache_get(buf, len));
	free(buf);
	char *again = malloc(len);
	unsigned second = cache_get(again, len);

	printf("free + malloc: buffer %p (%s address), registration #%u\n",
	       (void *)again, again == buf ? "the same" : "another", second);
	printf("registrations dropped by invalidate(): %u\n", dropped);
	free(again);
	umn_synchronize(umn_mm_process());
	if (second == first) {
		printf("STALE: the old registration came back\n");
		return 1;
	}
	printf("ok: the stale registration was dropped before it could be "
	       "used\n");
	return 0;
}
