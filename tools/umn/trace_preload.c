/* SPDX-License-Identifier: MIT */
/*
 * libumn-trace.so — what `umn trace` preloads into the programs it runs.
 *
 * Its constructor installs the process monitor (umn_mm_process()) and
 * subscribes to the whole address space; every invalidation then reaches
 * trace_invalidate(), which sends one record to the `umn trace` process over
 * the socket inherited at UMN_TRACE_FD ("FD:INODE"), or, when a parent
 * closed that one, over a connection to UMN_TRACE_SOCKET (the record format
 * and the reasons are in umn.c).  The library carries its own copy of umn (linked with libumn.a,
 * all hidden) and exports nothing.
 *
 * trace_invalidate() runs inside munmap(), free(), realloc() and the rest,
 * possibly in a signal handler: it allocates nothing, takes no lock and
 * calls no stdio, only clock_gettime(), getpid(), gettid(), fstat(),
 * pthread_setcancelstate() and send() (none of them wrapped by the monitor,
 * so it never recurses), and formats integers by hand into a stack buffer.
 *
 * After fork() umn empties the child's process space; trace_atfork_child()
 * subscribes again.  It is registered after umn_mm_process() was first
 * called, so it runs after umn's own child handler.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <umn/monitor.h>
#include <umn/umn.h>

/*
 * Once subscribed, the constructor makes this no-op system call,
 * madvise(TRACE_MARK, 0, MADV_NORMAL), so that a system-call trace of the
 * same run (tests/trace/) shows where in each program tracing began.
 * 0x756d6e is "umn"; a zero length with an aligned address returns 0
 * without touching anything.
 */
#define TRACE_MARK ((void *)(uintptr_t)0x756d6e000)

/*
 * A record being formatted, in a buffer on the caller's stack: small for
 * events (the callback may run on a signal stack), PATH_MAX-sized only in
 * the constructor.  Too long a record is cut short.
 */
struct rec {
	char *buf;
	size_t len, cap;
};
#define REC_EVENT 192
#define REC_INIT(array) { .buf = (array), .len = 0, .cap = sizeof(array) }

/*
 * Written by the constructor before the subscription exists (and so before
 * any callback can read them), then only read.
 */
static struct umn_interval trace_sub;
static struct umn_mm *trace_mm;
static int trace_fd = -1;
static ino_t trace_ino;
/* Records dropped by non-blockable callbacks; reported in an 'L' record. */
static atomic_ulong trace_lost;

static void rec_char(struct rec *r, char c)
{
	if (r->len < r->cap - 1)	/* room for the final newline */
		r->buf[r->len++] = c;
}

/* A string on one line: control characters (newlines too) become spaces. */
static void rec_str(struct rec *r, const char *s)
{
	for (; *s; s++)
		rec_char(r, (unsigned char)*s < 0x20 ? ' ' : *s);
}

static void rec_num(struct rec *r, uint64_t v, unsigned base)
{
	char digits[24];
	int n = 0;

	do {
		digits[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n)
		rec_char(r, digits[--n]);
}

/* "K <ns> <pid> <tid> " */
static void rec_head(struct rec *r, char kind)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	r->len = 0;
	rec_char(r, kind);
	rec_char(r, ' ');
	rec_num(r, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec, 10);
	rec_char(r, ' ');
	rec_num(r, (uint64_t)getpid(), 10);
	rec_char(r, ' ');
	rec_num(r, (uint64_t)gettid(), 10);
	rec_char(r, ' ');
}

/*
 * Is trace_fd still the socket `umn trace` gave us?  A program may close
 * descriptors it did not open and reuse the number; then we stop sending
 * rather than write into its file or socket.
 */
static bool trace_fd_ok(void)
{
	struct stat st;

	return trace_fd >= 0 && fstat(trace_fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
	       st.st_ino == trace_ino;
}

static bool rec_send_raw(const struct rec *r, bool may_block)
{
	int flags = MSG_NOSIGNAL | (may_block ? 0 : MSG_DONTWAIT);
	ssize_t n;

	do {
		n = send(trace_fd, r->buf, r->len, flags);
	} while (n < 0 && errno == EINTR);
	return n == (ssize_t)r->len;
}

/*
 * Send one record.  send() is a cancellation point, and we may be running
 * inside munmap(), which is not: cancellation stays off meanwhile.  errno
 * is the caller's.
 */
static void rec_send(struct rec *r, bool may_block)
{
	int saved = errno, cancel;
	unsigned long lost;
	char lbuf[64];
	struct rec l = REC_INIT(lbuf);

	r->buf[r->len++] = '\n';
	if (!trace_fd_ok())
		goto out;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	/* Relaxed: a count, published by the send, ordered with nothing. */
	lost = may_block ? atomic_exchange_explicit(&trace_lost, 0, memory_order_relaxed) : 0;
	if (lost) {
		rec_head(&l, 'L');
		rec_num(&l, lost, 10);
		rec_char(&l, '\n');
		rec_send_raw(&l, true);
	}
	if (!rec_send_raw(r, may_block))
		atomic_fetch_add_explicit(&trace_lost, 1, memory_order_relaxed);
	pthread_setcancelstate(cancel, &cancel);
out:
	errno = saved;
}

static bool trace_invalidate(struct umn_interval *sub, const struct umn_range *range,
			     unsigned long cur_seq)
{
	const char *call = umn_monitor_call_name(range);
	char buf[REC_EVENT];
	struct rec r = REC_INIT(buf);

	rec_head(&r, 'E');
	rec_num(&r, (uint64_t)range->event, 10);
	rec_char(&r, ' ');
	rec_num(&r, range->start, 16);
	rec_char(&r, ' ');
	rec_num(&r, range->end, 16);
	rec_char(&r, ' ');
	rec_str(&r, call ? call : "?");
	rec_send(&r, range->flags & UMN_RANGE_BLOCKABLE);
	return true;
}

static const struct umn_interval_ops trace_ops = {
	.invalidate = trace_invalidate,
};

/* The whole space: [0, UINTPTR_MAX), the largest range insert accepts. */
static int trace_subscribe(void)
{
	return umn_interval_insert(&trace_sub, trace_mm, 0, UINTPTR_MAX, &trace_ops);
}

static void trace_atfork_child(void)
{
	char buf[REC_EVENT];
	struct rec r = REC_INIT(buf);
	int err = trace_subscribe();

	if (err) {
		rec_head(&r, 'U');
		rec_str(&r, "fork child: umn_interval_insert failed: ");
		rec_str(&r, strerror(-err));
	} else {
		rec_head(&r, 'F');
		rec_num(&r, (uint64_t)getppid(), 10);
	}
	rec_send(&r, true);
}

/* Not tracing this program: say why on its stderr and to `umn trace`. */
static void trace_refuse(const char *why, const char *detail)
{
	char buf[1200];
	struct rec r = REC_INIT(buf);

	fprintf(stderr, "umn-trace: pid %ld: not tracing: %s%s\n", (long)getpid(), why, detail);
	rec_head(&r, 'U');
	rec_str(&r, why);
	rec_str(&r, detail);
	rec_send(&r, true);
}

/* "FD:INODE" from UMN_TRACE_FD; false if malformed or not our socket. */
static bool trace_fd_inherited(const char *v)
{
	char *end;
	long fd = strtol(v, &end, 10);

	if (end == v || *end != ':' || fd < 0 || fd > INT32_MAX)
		return false;
	v = end + 1;
	trace_ino = (ino_t)strtoull(v, &end, 10);
	if (end == v || *end)
		return false;
	trace_fd = (int)fd;
	if (trace_fd_ok())
		return true;
	trace_fd = -1;
	return false;
}

/*
 * A parent closed the inherited socket: connect to `umn trace`'s listener
 * at the abstract address UMN_TRACE_SOCKET.  Close-on-exec, so that the
 * programs we run connect for themselves; fork children share it.
 */
static bool trace_fd_connect(const char *name)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	struct stat st;
	int fd;

	if (len == 0 || len >= sizeof(addr.sun_path) - 1)
		return false;
	memcpy(addr.sun_path + 1, name, len);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&addr,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) ||
	    fstat(fd, &st)) {
		close(fd);
		return false;
	}
	trace_fd = fd;
	trace_ino = st.st_ino;
	return true;
}

__attribute__((constructor)) static void trace_init(void)
{
	const char *v = getenv("UMN_TRACE_FD"), *sock = getenv("UMN_TRACE_SOCKET");
	struct umn_monitor_info info;
	char exe[4096], buf[4200];
	ssize_t n;
	int err;
	struct rec r = REC_INIT(buf);

	if (!v)
		return;	/* loaded by hand: nothing to send to */
	if (!trace_fd_inherited(v) && !trace_fd_connect(sock ? sock : "")) {
		fprintf(stderr, "umn-trace: pid %ld: not tracing: the trace socket "
			"(UMN_TRACE_FD=%s) is closed here and `umn trace` cannot be "
			"reached at UMN_TRACE_SOCKET\n", (long)getpid(), v);
		return;
	}
	trace_mm = umn_mm_process();
	if (!trace_mm) {
		umn_monitor_query(&info);
		info.reason[sizeof(info.reason) - 1] = '\0';
		trace_refuse("umn_mm_process() failed: ", info.reason);
		return;
	}
	err = trace_subscribe();
	if (err) {
		trace_refuse("umn_interval_insert() failed: ", strerror(-err));
		return;
	}
	err = pthread_atfork(NULL, NULL, trace_atfork_child);
	if (err)
		fprintf(stderr, "umn-trace: pid %ld: fork children will not be traced: "
			"pthread_atfork: %s\n", (long)getpid(), strerror(err));
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	rec_head(&r, 'X');
	rec_str(&r, exe);
	rec_send(&r, true);
	madvise(TRACE_MARK, 0, MADV_NORMAL);
}
