/* SPDX-License-Identifier: MIT */
/*
 * Stress: the sequence protocol against concurrent walks and churn.
 *
 * A shared buffer of NWORDS atomic words (64 "pages" of 8 words) lives in a
 * space from umn_mm_new(); word w sits at address BASE + w * SPAN.  NSLOTS
 * owners each hold one subscription over a range of words, a lock, and a
 * mirror: a copy of each word with a valid bit.
 *
 *   readers   pick an owner and run the protocol: seq = umn_read_begin();
 *             copy the words; lock; if umn_read_retry() unlock and retry;
 *             else install the copy; unlock.  A put or remove in between
 *             ends the read; an update only narrows what may be installed
 *             to the words the subscription watched all along (struct
 *             window), so read_retry alone vouches for those.
 *   writers   pick a range of words: umn_invalidate_range_start(); store a
 *             fresh generation number in every word of the range;
 *             umn_invalidate_range_end().  The callbacks take the owner's
 *             lock, check the owner's mirror, umn_set_seq(), clear the valid
 *             bits of the overlap, and sometimes trim the subscription with
 *             update(), split it (insert a new owner for the tail), or put()
 *             it when the range covers all of it.  Some ranges are not
 *             blockable (the callback only trylocks and may return false),
 *             some are nested two deep on one thread.
 *   churn     inserts, updates, puts and removes subscriptions from outside
 *             the callbacks, and calls umn_synchronize().
 *
 * What must hold:
 *   - Under an owner's lock, every valid mirror word equals the buffer.
 *     Writers store only between range_start and range_end, after the
 *     callbacks cleared the valid bits, so a valid word that differs is data
 *     older than an invalidation that reached it.  Checked when a reader
 *     installs (the copy must still equal the buffer), in every callback
 *     before it clears anything, by the churn thread, and after the run.
 *   - umn_check_retry() true is final: umn_read_retry() is then true too.
 *   - No ->invalidate() of a subscription after its ->release() started or
 *     its umn_interval_remove() returned (a per-owner flag).
 *   - ->release() runs exactly once per successful put, on a subscription
 *     the owner put, never while the putter holds a lock it could need.
 *   - Nothing deadlocks: a watchdog fails the run if the threads have not
 *     finished 30 s after the deadline.
 *   - At the end everything is removed, umn_synchronize() and umn_mm_free()
 *     return 0, and all memory is freed.
 *
 * UMN_STRESS_SECONDS bounds the run (default 2); UMN_SEED picks the seed.
 */
#include "core/helpers.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NPAGES     64
#define PAGE_WORDS 8
#define NWORDS     (NPAGES * PAGE_WORDS)
#define SPAN       ((uintptr_t)64)          /* bytes of address per word */
#define BASE       ((uintptr_t)0x40000000)
#define NSLOTS     24
#define MAX_SUB    48                       /* longest subscription, words */

#define NREADERS 2
#define NWRITERS 2
#define NCHURN   1
#define NTHREADS (NREADERS + NWRITERS + NCHURN)

#define WATCHDOG_SECONDS 30.0

enum slot_state {
	SLOT_FREE,     /* not inserted: ours to insert */
	SLOT_LIVE,     /* inserted (maybe deferred), not put */
	SLOT_PUT,      /* put() called or about to be, release() pending */
	SLOT_REMOVING, /* umn_interval_remove() in progress */
};

/*
 * A reader's window on an owner, registered under the owner's lock from the
 * snapshot of the range until the install.  Every range change narrows it to
 * the intersection, so it ends up holding the words the subscription watched
 * during the whole window: only those may be installed, and only the
 * sequence protocol (read_retry) decides whether they may.
 */
struct window {
	struct window *next;
	unsigned lo, hi;
};

struct slot {
	struct umn_interval sub;
	pthread_mutex_t lock;            /* the owner's lock */
	/* Under lock. */
	enum slot_state state;
	unsigned lo, hi;                 /* words [lo, hi) the owner watches */
	unsigned long version;           /* bumped whenever state changes */
	struct window *windows;          /* readers between snapshot and done */
	uint64_t mirror[NWORDS];
	bool valid[NWORDS];
	/* Lock-free. */
	atomic_int gone;                 /* release() started / remove() done */
	atomic_long puts, releases;
};

static struct umn_mm *mm;
static struct slot *slots;
static _Atomic uint64_t buffer[NWORDS];
static atomic_ulong generation;
static atomic_bool stop;
static atomic_int done_threads;
static uint64_t seed;

static struct {
	atomic_long installs, retries, gave_up, stale_version, narrowed;
	atomic_long walks, nested, eagain, callbacks;
	atomic_long cb_puts, cb_trims, cb_splits;
	atomic_long inserts, updates, puts, removes, syncs;
} st;

/* The first failure wins the message; everything stops. */
static atomic_bool failed;
static char fail_text[512];

static void failf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static void failf(const char *fmt, ...)
{
	bool expect = false;

	if (atomic_compare_exchange_strong(&failed, &expect, true)) {
		va_list ap;
		int n = snprintf(fail_text, sizeof(fail_text),
				 "seed %#" PRIx64 ": ", seed);

		va_start(ap, fmt);
		vsnprintf(fail_text + n, sizeof(fail_text) - (size_t)n, fmt, ap);
		va_end(ap);
		fprintf(stderr, "stress_seq_protocol: %s\n", fail_text);
	}
	atomic_store(&stop, true);
}

static _Thread_local uint64_t rng;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned rnd_below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * The owner's lock is error-checking: if the library ever ran ->release()
 * synchronously inside a put() made under that lock, we report it instead
 * of hanging.
 */
static void slot_lock(struct slot *s)
{
	int rc = pthread_mutex_lock(&s->lock);

	if (rc) {
		failf("slot %td: owner lock failed (%d): a callback ran on a "
		      "thread already holding it", s - slots, rc);
		abort();
	}
}

static void slot_unlock(struct slot *s)
{
	pthread_mutex_unlock(&s->lock);
}

static uint64_t buf_load(unsigned w)
{
	/* Relaxed: the library's ordering (range_end → read_begin, set_seq →
	 * owner lock → read_retry) is what makes a copy coherent; that is
	 * what we test.  Atomic only because copies may race with writes
	 * that a retry will discard. */
	return atomic_load_explicit(&buffer[w], memory_order_relaxed);
}

/* Under s->lock: every valid mirror word equals the buffer. */
static void slot_audit_locked(struct slot *s, const char *who)
{
	for (unsigned w = 0; w < NWORDS; w++) {
		uint64_t b;

		if (!s->valid[w])
			continue;
		b = buf_load(w);
		if (s->mirror[w] != b) {
			failf("%s: slot %td word %u: mirror holds generation "
			      "%" PRIu64 " but the buffer has %" PRIu64
			      " (an invalidation did not reach the owner "
			      "before the write)",
			      who, s - slots, w, s->mirror[w], b);
			return;
		}
	}
}

static void slot_zap_locked(struct slot *s, unsigned lo, unsigned hi)
{
	for (unsigned w = lo; w < hi; w++)
		s->valid[w] = false;
}

/* Under s->lock: the owner now watches [lo, hi); drop what lies outside,
 * and narrow the readers' windows. */
static void slot_set_range_locked(struct slot *s, unsigned lo, unsigned hi)
{
	slot_zap_locked(s, 0, lo);
	slot_zap_locked(s, hi, NWORDS);
	s->lo = lo;
	s->hi = hi;
	for (struct window *w = s->windows; w; w = w->next) {
		if (w->lo < lo)
			w->lo = lo;
		if (w->hi > hi)
			w->hi = hi;
	}
}

static uintptr_t word_addr(unsigned w)
{
	return BASE + (uintptr_t)w * SPAN;
}

static void random_sub_range(unsigned *lo, unsigned *hi)
{
	unsigned len = 1 + rnd_below(rnd_below(4) ? 16 : MAX_SUB);

	*lo = rnd_below(NWORDS - len + 1);
	*hi = *lo + len;
}

/* ---- callbacks ---------------------------------------------------------- */

static bool slot_invalidate(struct umn_interval *sub,
			    const struct umn_range *range,
			    unsigned long cur_seq);
static void slot_release(struct umn_interval *sub);

static const struct umn_interval_ops slot_ops = {
	.invalidate = slot_invalidate,
	.release = slot_release,
};

/* Under a->lock, from a callback: give [lo, hi) to a free owner.  Only
 * trylocks the other owner, so callbacks never wait on a second lock. */
static bool slot_split_locked(struct slot *a, unsigned lo, unsigned hi)
{
	unsigned first = rnd_below(NSLOTS);

	for (unsigned k = 0; k < NSLOTS; k++) {
		struct slot *b = &slots[(first + k) % NSLOTS];
		int rc;

		if (b == a || pthread_mutex_trylock(&b->lock))
			continue;
		if (b->state != SLOT_FREE || b->windows) {
			slot_unlock(b);
			continue;
		}
		atomic_store(&b->gone, 0);
		slot_set_range_locked(b, lo, hi);
		b->state = SLOT_LIVE;
		b->version++;
		rc = umn_interval_insert(&b->sub, mm, word_addr(lo),
					 (size_t)(hi - lo) * SPAN, &slot_ops);
		if (rc)
			failf("split: insert from a callback returned %d", rc);
		slot_unlock(b);
		return true;
	}
	return false;
}

/* Under s->lock, s LIVE: the walk covers words [a, b) of the space. */
static void slot_trim_locked(struct slot *s, unsigned a, unsigned b)
{
	unsigned lo = s->lo, hi = s->hi, nlo = lo, nhi = hi;
	int rc;

	if (a <= lo && b >= hi) {
		/* Fully covered: put it.  A walk is in progress (ours), so
		 * release() must be deferred to its end: it takes this lock. */
		s->state = SLOT_PUT;
		s->version++;
		slot_zap_locked(s, 0, NWORDS);
		atomic_fetch_add(&s->puts, 1);
		rc = umn_interval_put(&s->sub);
		if (rc) {
			failf("slot %td: put from a callback returned %d",
			      s - slots, rc);
			atomic_fetch_sub(&s->puts, 1);
		}
		atomic_fetch_add(&st.cb_puts, 1);
		return;
	}
	if (a <= lo)
		nlo = b;                        /* head invalidated */
	else if (b >= hi)
		nhi = a;                        /* tail invalidated */
	else if (slot_split_locked(s, b, hi)) {
		nhi = a;                        /* middle: the tail went */
		atomic_fetch_add(&st.cb_splits, 1);
	} else
		return;
	rc = umn_interval_update(&s->sub, word_addr(nlo),
				 (size_t)(nhi - nlo) * SPAN);
	if (rc)
		failf("slot %td: update from a callback returned %d",
		      s - slots, rc);
	slot_set_range_locked(s, nlo, nhi);
	atomic_fetch_add(&st.cb_trims, 1);
}

static bool slot_invalidate(struct umn_interval *sub,
			    const struct umn_range *range,
			    unsigned long cur_seq)
{
	struct slot *s = container_of(sub, struct slot, sub);
	uintptr_t start = umn_interval_start(sub), end = umn_interval_end(sub);
	unsigned a, b;

	/* Inside a callback the bounds are the walk's: they overlap it. */
	if (!(start < range->end && end > range->start))
		failf("slot %td: invalidate() for [%#" PRIxPTR ", %#" PRIxPTR
		      ") on a subscription watching [%#" PRIxPTR ", %#"
		      PRIxPTR ")", s - slots, range->start, range->end,
		      start, end);
	if (atomic_load(&s->gone))
		failf("slot %td: invalidate() after release()/remove()",
		      s - slots);
	if (!(range->flags & UMN_RANGE_BLOCKABLE)) {
		if (pthread_mutex_trylock(&s->lock))
			return false;
	} else {
		slot_lock(s);
	}
	atomic_fetch_add(&st.callbacks, 1);
	if (s->state == SLOT_FREE)
		failf("slot %td: invalidate() of an owner that is not "
		      "subscribed", s - slots);
	/* Nothing of this walk has been written yet: all valid words must
	 * still match. */
	slot_audit_locked(s, "invalidate");
	/* Valid words lie inside the range the walks use: read_begin waited
	 * for any deferred update that widened it. */
	for (unsigned w = 0; w < NWORDS; w++)
		if (s->valid[w] && (word_addr(w) < start || word_addr(w) >= end))
			failf("slot %td: word %u is valid but outside the "
			      "subscription's walked range", s - slots, w);
	umn_set_seq(sub, cur_seq);

	a = range->start <= BASE ? 0 : (unsigned)((range->start - BASE) / SPAN);
	b = range->end <= BASE ? 0 : (unsigned)((range->end - 1 - BASE) / SPAN) + 1;
	if (b > NWORDS)
		b = NWORDS;
	if (a < b && a < s->hi && b > s->lo) {
		slot_zap_locked(s, a, b);
		if (s->state == SLOT_LIVE && rnd_below(3) == 0)
			slot_trim_locked(s, a, b);
	}
	if (atomic_load(&s->gone))
		failf("slot %td: release() started while invalidate() ran",
		      s - slots);
	slot_unlock(s);
	return true;
}

static void slot_release(struct umn_interval *sub)
{
	struct slot *s = container_of(sub, struct slot, sub);

	if (atomic_exchange(&s->gone, 1))
		failf("slot %td: release() of a subscription already released "
		      "or removed", s - slots);
	if (atomic_fetch_add(&s->releases, 1) + 1 > atomic_load(&s->puts))
		failf("slot %td: more release() calls than puts", s - slots);
	slot_lock(s);
	if (s->state != SLOT_PUT)
		failf("slot %td: release() of an owner in state %d",
		      s - slots, (int)s->state);
	s->state = SLOT_FREE;
	s->version++;
	slot_unlock(s);
}

/* ---- threads ------------------------------------------------------------- */

struct thread {
	pthread_t tid;
	unsigned index;
	double deadline;
};

static bool running(const struct thread *t)
{
	return !atomic_load_explicit(&stop, memory_order_relaxed) &&
	       now() < t->deadline;
}

static void window_remove_locked(struct slot *s, struct window *win)
{
	struct window **p = &s->windows;

	while (*p != win)
		p = &(*p)->next;
	*p = win->next;
}

/*
 * One read of an owner's words with the sequence protocol.  Put, remove
 * and reinsert (a version change) end the read; range changes only narrow
 * the window, and read_retry alone decides whether the copy is good.
 */
static void reader_once(struct slot *s)
{
	uint64_t copy[MAX_SUB];
	struct window win;
	unsigned long version;

	slot_lock(s);
	if (s->state != SLOT_LIVE) {
		slot_unlock(s);
		return;
	}
	version = s->version;
	win.next = s->windows;
	s->windows = &win;

	for (int attempt = 0;; attempt++) {
		/* Snapshot (under the lock): the words watched right now. */
		unsigned lo = win.lo = s->lo, hi = win.hi = s->hi;
		unsigned long seq;
		unsigned mid = lo + rnd_below(hi - lo);
		bool slow = rnd_below(4) == 0, hinted = false;

		slot_unlock(s);
		seq = umn_read_begin(&s->sub);
		for (unsigned w = lo; w < hi; w++) {
			copy[w - lo] = buf_load(w);
			if (w != mid)
				continue;
			/* Widen the window: let a writer in mid-copy. */
			if (slow)
				sched_yield();
			if (umn_check_retry(&s->sub, seq))
				hinted = true;
		}
		slot_lock(s);
		if (s->version != version) {
			atomic_fetch_add(&st.stale_version, 1);
			break;
		}
		if (umn_read_retry(&s->sub, seq)) {
			atomic_fetch_add(&st.retries, 1);
			if (attempt >= 16) {
				atomic_fetch_add(&st.gave_up, 1);
				break;
			}
			continue;
		}
		if (hinted) {
			failf("slot %td: umn_check_retry() said retry, then "
			      "umn_read_retry() said no", s - slots);
			break;
		}
		if (win.lo != lo || win.hi != hi)
			atomic_fetch_add(&st.narrowed, 1);
		for (unsigned w = win.lo; w < win.hi; w++) {
			if (copy[w - lo] != buf_load(w)) {
				failf("slot %td word %u: read_retry() accepted "
				      "a copy of generation %" PRIu64
				      " but the buffer has %" PRIu64
				      " (an invalidation in the read window "
				      "was missed)", s - slots, w,
				      copy[w - lo], buf_load(w));
				break;
			}
			s->mirror[w] = copy[w - lo];
			s->valid[w] = true;
		}
		atomic_fetch_add(&st.installs, 1);
		break;
	}
	/* s->lock held on every way out of the loop. */
	window_remove_locked(s, &win);
	slot_unlock(s);
}

static void *reader_main(void *arg)
{
	struct thread *t = arg;

	rng = seed ^ (0x1000 + t->index);
	while (running(t))
		reader_once(&slots[rnd_below(NSLOTS)]);
	atomic_fetch_add(&done_threads, 1);
	return NULL;
}

static void random_write_range(unsigned *a, unsigned *b, struct umn_range *r)
{
	unsigned r0 = rnd_below(16), len;

	len = r0 == 0 ? NWORDS : r0 < 3 ? 1 + rnd_below(256) : 1 + rnd_below(24);
	*a = rnd_below(NWORDS - len + 1);
	*b = *a + len;
	r->start = word_addr(*a);
	r->end = word_addr(*b);
	/* Sometimes unaligned: still touches exactly words [a, b). */
	if (rnd_below(4) == 0) {
		r->start += rnd_below((unsigned)SPAN);
		r->end -= rnd_below((unsigned)SPAN);
		if (r->end <= r->start)
			r->end = r->start + 1;
	}
}

static void write_words(unsigned a, unsigned b)
{
	uint64_t g = atomic_fetch_add(&generation, 1) + 1;

	for (unsigned w = a; w < b; w++)
		atomic_store_explicit(&buffer[w], g, memory_order_relaxed);
}

static void *writer_main(void *arg)
{
	static const enum umn_event events[] = {
		UMN_EVENT_UNMAP, UMN_EVENT_CLEAR, UMN_EVENT_PROTECTION,
		UMN_EVENT_REMAP,
	};
	struct thread *t = arg;

	rng = seed ^ (0x2000 + t->index);
	while (running(t)) {
		struct umn_range r1 = { .mm = mm }, r2 = { .mm = mm };
		unsigned a1, b1, a2, b2, kind = rnd_below(16);
		int rc;

		random_write_range(&a1, &b1, &r1);
		r1.event = events[rnd_below(4)];
		r1.flags = kind < 2 ? 0 : UMN_RANGE_BLOCKABLE;
		rc = umn_invalidate_range_start(&r1);
		if (rc == -EAGAIN && !r1.flags) {
			atomic_fetch_add(&st.eagain, 1);
			continue;
		}
		if (rc) {
			failf("range_start returned %d", rc);
			break;
		}
		atomic_fetch_add(&st.walks, 1);
		/* Sometimes dawdle before the stores: a subscription inserted
		 * or moved meanwhile must not let its readers in early. */
		if (rnd_below(8) == 0)
			sched_yield();
		write_words(a1, b1);
		if (kind == 2) {
			/* A second walk nested inside the first. */
			random_write_range(&a2, &b2, &r2);
			r2.event = events[rnd_below(4)];
			r2.flags = UMN_RANGE_BLOCKABLE;
			rc = umn_invalidate_range_start(&r2);
			if (rc) {
				failf("nested range_start returned %d", rc);
			} else {
				write_words(a2, b2);
				atomic_fetch_add(&st.nested, 1);
				if (rnd_below(2)) {
					/* out of order: the outer ends first */
					umn_invalidate_range_end(&r1);
					umn_invalidate_range_end(&r2);
					continue;
				}
				umn_invalidate_range_end(&r2);
			}
		}
		if (rnd_below(8) == 0)
			sched_yield(); /* let others in while this one is open */
		umn_invalidate_range_end(&r1);
		/*
		 * A period lasts while any walk is open, and read_begin on a
		 * subscription it reached waits for all of it (the kernel's
		 * rule).  Back-to-back overlapping walks on both writers
		 * would starve the readers; real invalidations come with
		 * gaps, so leave some.
		 */
		if (rnd_below(8) == 0) {
			struct timespec gap = { 0, 1000 * (long)rnd_below(50) };

			nanosleep(&gap, NULL);
		}
	}
	atomic_fetch_add(&done_threads, 1);
	return NULL;
}

static void churn_once(struct slot *s)
{
	unsigned lo, hi, op = rnd_below(16);
	int rc;

	slot_lock(s);
	slot_audit_locked(s, "churn");
	switch (s->state) {
	case SLOT_FREE:
		if (s->windows)
			break;
		random_sub_range(&lo, &hi);
		atomic_store(&s->gone, 0);
		slot_set_range_locked(s, lo, hi);
		s->state = SLOT_LIVE;
		s->version++;
		/* Under the owner's lock: insert never calls back. */
		rc = umn_interval_insert(&s->sub, mm, word_addr(lo),
					 (size_t)(hi - lo) * SPAN, &slot_ops);
		if (rc)
			failf("slot %td: insert returned %d", s - slots, rc);
		atomic_fetch_add(&st.inserts, 1);
		break;
	case SLOT_LIVE:
		if (op < 9) {
			random_sub_range(&lo, &hi);
			if (op < 3) {
				/* shrink, keeping part of the range */
				lo = s->lo + rnd_below(s->hi - s->lo);
				hi = lo + 1 + rnd_below(s->hi - lo);
			} else if (op < 6) {
				/* grow around the range */
				lo = s->lo - rnd_below(s->lo + 1);
				if (lo + MAX_SUB < s->hi)
					lo = s->hi - MAX_SUB;
				hi = s->hi + rnd_below(NWORDS - s->hi + 1);
				if (hi > lo + MAX_SUB)
					hi = lo + MAX_SUB;
			}
			rc = umn_interval_update(&s->sub, word_addr(lo),
						 (size_t)(hi - lo) * SPAN);
			if (rc)
				failf("slot %td: update returned %d",
				      s - slots, rc);
			slot_set_range_locked(s, lo, hi);
			atomic_fetch_add(&st.updates, 1);
		} else if (op < 14) {
			/* put() without our lock: release() may run inside
			 * it, and release() takes the lock. */
			s->state = SLOT_PUT;
			s->version++;
			slot_zap_locked(s, 0, NWORDS);
			atomic_fetch_add(&s->puts, 1);
			slot_unlock(s);
			rc = umn_interval_put(&s->sub);
			if (rc) {
				failf("slot %td: put returned %d", s - slots, rc);
				atomic_fetch_sub(&s->puts, 1);
			}
			atomic_fetch_add(&st.puts, 1);
			return;
		} else {
			/* remove() waits for walks whose callbacks take our
			 * lock: call it without. */
			s->state = SLOT_REMOVING;
			s->version++;
			slot_zap_locked(s, 0, NWORDS);
			slot_unlock(s);
			rc = umn_interval_remove(&s->sub);
			if (rc)
				failf("slot %td: remove returned %d", s - slots, rc);
			if (atomic_exchange(&s->gone, 1))
				failf("slot %td: released while being removed",
				      s - slots);
			slot_lock(s);
			s->state = SLOT_FREE;
			s->version++;
			atomic_fetch_add(&st.removes, 1);
		}
		break;
	default:
		break;
	}
	slot_unlock(s);
}

static void *churn_main(void *arg)
{
	struct thread *t = arg;

	rng = seed ^ (0x3000 + t->index);
	while (running(t)) {
		churn_once(&slots[rnd_below(NSLOTS)]);
		if (rnd_below(256) == 0) {
			int rc = umn_synchronize(mm);

			if (rc)
				failf("synchronize returned %d", rc);
			atomic_fetch_add(&st.syncs, 1);
		}
		if (rnd_below(8) == 0)
			sched_yield();
	}
	atomic_fetch_add(&done_threads, 1);
	return NULL;
}

/* ---- the test ------------------------------------------------------------ */

static void slots_init(void)
{
	pthread_mutexattr_t attr;

	slots = calloc(NSLOTS, sizeof(*slots));
	assert_non_null(slots);
	assert_int_equal(pthread_mutexattr_init(&attr), 0);
	assert_int_equal(pthread_mutexattr_settype(&attr,
						   PTHREAD_MUTEX_ERRORCHECK), 0);
	for (unsigned i = 0; i < NSLOTS; i++)
		assert_int_equal(pthread_mutex_init(&slots[i].lock, &attr), 0);
	pthread_mutexattr_destroy(&attr);
}

static void print_stats(double secs)
{
	printf("stress_seq_protocol: %.2f s, seed %#" PRIx64 "\n"
	       "  readers: %ld installs (%ld narrowed), %ld retries, %ld gave "
	       "up, %ld put or removed\n"
	       "  writers: %ld walks (%ld nested), %ld -EAGAIN, %ld callbacks, "
	       "generation %lu\n"
	       "  in callbacks: %ld puts, %ld trims, %ld splits\n"
	       "  churn: %ld inserts, %ld updates, %ld puts, %ld removes, "
	       "%ld synchronize\n",
	       secs, seed, atomic_load(&st.installs), atomic_load(&st.narrowed),
	       atomic_load(&st.retries),
	       atomic_load(&st.gave_up), atomic_load(&st.stale_version),
	       atomic_load(&st.walks), atomic_load(&st.nested),
	       atomic_load(&st.eagain), atomic_load(&st.callbacks),
	       atomic_load(&generation), atomic_load(&st.cb_puts),
	       atomic_load(&st.cb_trims), atomic_load(&st.cb_splits),
	       atomic_load(&st.inserts), atomic_load(&st.updates),
	       atomic_load(&st.puts), atomic_load(&st.removes),
	       atomic_load(&st.syncs));
}

static void test_stress_seq_protocol(void **state)
{
	struct thread threads[NTHREADS];
	const char *env = getenv("UMN_SEED");
	double secs = test_stress_seconds(), t0 = now();
	long puts = 0, releases = 0;

	/* Threads interleave differently on every run anyway: vary the seed
	 * too, and print it. */
	seed = env ? strtoull(env, NULL, 0) : (uint64_t)(t0 * 1e9);
	rng = seed;
	mm = umn_mm_new();
	assert_non_null(mm);
	slots_init();
	for (unsigned i = 0; i < NSLOTS; i += 2)
		churn_once(&slots[i]);

	for (unsigned i = 0; i < NTHREADS; i++) {
		void *(*fn)(void *) = i < NREADERS ? reader_main
				    : i < NREADERS + NWRITERS ? writer_main
							      : churn_main;

		threads[i].index = i;
		threads[i].deadline = t0 + secs;
		assert_int_equal(pthread_create(&threads[i].tid, NULL, fn,
						&threads[i]), 0);
	}
	/* Watchdog: the threads stop at the deadline; if they have not all
	 * returned well after it, something is stuck. */
	while (atomic_load(&done_threads) < NTHREADS) {
		struct timespec ms = { 0, 10 * 1000 * 1000 };

		if (now() > t0 + secs + WATCHDOG_SECONDS) {
			fprintf(stderr, "stress_seq_protocol: seed %#" PRIx64
				": %d of %d threads still running %.0f s after "
				"the deadline: deadlock\n", seed,
				NTHREADS - atomic_load(&done_threads),
				NTHREADS, WATCHDOG_SECONDS);
			print_stats(now() - t0);
			fflush(NULL);
			abort();
		}
		nanosleep(&ms, NULL);
	}
	for (unsigned i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_join(threads[i].tid, NULL), 0);
	print_stats(now() - t0);
	if (atomic_load(&failed))
		fail_msg("%s", fail_text);

	/* Quiet now: every valid mirror word still matches. */
	for (unsigned i = 0; i < NSLOTS; i++) {
		slot_lock(&slots[i]);
		slot_audit_locked(&slots[i], "after the run");
		slot_unlock(&slots[i]);
	}
	/* Tear down: remove what is live, let pending releases finish. */
	for (unsigned i = 0; i < NSLOTS; i++) {
		struct slot *s = &slots[i];

		if (s->state == SLOT_LIVE) {
			assert_int_equal(umn_interval_remove(&s->sub), 0);
			s->state = SLOT_FREE;
			atomic_store(&s->gone, 1);
		}
	}
	assert_int_equal(umn_synchronize(mm), 0);
	for (unsigned i = 0; i < NSLOTS; i++) {
		struct slot *s = &slots[i];

		assert_int_equal(s->state, SLOT_FREE);
		assert_int_equal(atomic_load(&s->puts),
				 atomic_load(&s->releases));
		assert_int_equal(umn_interval_start(&s->sub), 0);
		puts += atomic_load(&s->puts);
		releases += atomic_load(&s->releases);
	}
	if (atomic_load(&failed))
		fail_msg("%s", fail_text);
	assert_int_equal(puts, releases);
	assert_int_equal(umn_mm_free(mm), 0);
	mm = NULL;
	for (unsigned i = 0; i < NSLOTS; i++)
		pthread_mutex_destroy(&slots[i].lock);
	free(slots);
	slots = NULL;

	/* The run must have exercised the protocol, not idled. */
	assert_true(atomic_load(&st.installs) > 0);
	assert_true(atomic_load(&st.walks) > 0);
	assert_true(atomic_load(&st.callbacks) > 0);
	assert_true(puts > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stress_seq_protocol),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
