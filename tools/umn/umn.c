/* SPDX-License-Identifier: MIT */
/*
 * umn — the command line.
 *
 *   umn trace [-o FILE] [--json] [--] CMD [ARGS...]
 *
 * Runs CMD with libumn-trace.so preloaded (trace_preload.c) and prints every
 * invalidation the process monitor raises in CMD and in the programs it
 * runs, then a summary.  This process is not traced: it only starts CMD and
 * reads the records the preloaded copies send it.
 *
 * The channel is an AF_UNIX SOCK_SEQPACKET socket pair: each record is one
 * message, so records from many processes never interleave.  CMD inherits
 * one end at a high descriptor, named with its inode in UMN_TRACE_FD
 * ("FD:INODE"), and passes it on to every program it runs.  A socket rather
 * than a pipe because send(MSG_NOSIGNAL) never raises SIGPIPE in CMD if we
 * die, and a send to a descriptor that CMD has reused for a file fails
 * instead of writing into the file.  A program whose parent closed that
 * descriptor (Python's subprocess does, by default) connects instead to a
 * listener at the abstract address UMN_TRACE_SOCKET.  The trace ends when
 * the last process holding the inherited socket has exited and every such
 * connection has closed (as strace -f waits for every traced process); then
 * we reap CMD and exit with its status.
 *
 * Records (text, one per message, fields separated by one space):
 *   E <ns> <pid> <tid> <event 0-3> <start hex> <end hex> <call>
 *   X <ns> <pid> <tid> <executable>        a program began being traced
 *   F <ns> <pid> <tid> <parent pid>        a fork child was traced again
 *   U <ns> <pid> <tid> <reason>            a program could not be traced
 *   L <ns> <pid> <tid> <count>             records dropped (non-blocking)
 * <ns> is CLOCK_MONOTONIC in nanoseconds, the same clock in every process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"
#include "demo_mirror.h"

#define UMN_TOOL_VERSION "0.1"
#define TRACE_PRELOAD "libumn-trace.so"
#define TRACE_FD_MIN 100	/* where CMD finds the socket; above shells' own fds */
#define TRACE_MSG_MAX 8192
#define TRACE_SNDBUF (1 << 20)

static const char *const event_names[] = { "unmap", "clear", "protection", "remap" };

struct tally {
	char call[32];
	unsigned event;
	unsigned long long count, bytes;
};

struct trace {
	FILE *out;
	const char *out_name;
	bool json;
	bool out_failed;
	uint64_t t0;
	struct tally *tallies;
	size_t ntallies, cap;
	unsigned long long events, lost, bad;
	unsigned long traced, forks, untraced;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: umn trace [-o FILE] [--json] [--] CMD [ARGS...]\n"
		"       umn demo uring [--mmap] [--steps N]\n"
		"       umn demo mirror [--seconds S] [--chunk BYTES] [--threads D,C] | --bench\n"
		"       umn --help | --version\n"
		"\n"
		"trace  run CMD and print every invalidation umn's process monitor\n"
		"       raises in it and in the programs it runs: one line per event\n"
		"       on stdout (or FILE), then a summary on stderr.\n"
		"       -o FILE   write the events to FILE\n"
		"       --json    one JSON object per line\n"
		"demo uring  READ_FIXED into freed and reused buffers, through\n"
		"       a naive registration cache and through umn's: data lost\n"
		"       and throughput, side by side.\n"
		"demo mirror  device threads read and write through umn_mirror\n"
		"       while CPU threads munmap, mremap, madvise and mprotect the\n"
		"       memory under them; every read checked, a table at the end.\n"
		"See umn(1).\n");
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The directory of this executable, with a trailing slash, or "" if unknown. */
static void self_dir(char *dir, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", dir, size - 1);
	char *slash;

	if (n <= 0) {
		dir[0] = '\0';
		return;
	}
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	if (slash)
		slash[1] = '\0';
	else
		dir[0] = '\0';
}

/*
 * The preload: $UMN_TRACE_PRELOAD, else next to this executable (the build
 * directory), else ../lib/umn/ relative to it (an installed tree).
 */
static int find_preload(char *path, size_t size)
{
	const char *env = getenv("UMN_TRACE_PRELOAD");
	char dir[PATH_MAX];
	int n;

	if (env && env[0]) {
		n = snprintf(path, size, "%s", env);
		return n > 0 && (size_t)n < size && access(path, R_OK) == 0 ? 0 : -1;
	}
	self_dir(dir, sizeof(dir));
	n = snprintf(path, size, "%s" TRACE_PRELOAD, dir);
	if (n > 0 && (size_t)n < size && access(path, R_OK) == 0)
		return 0;
	n = snprintf(path, size, "%s../lib/umn/" TRACE_PRELOAD, dir);
	if (n > 0 && (size_t)n < size && access(path, R_OK) == 0)
		return 0;
	return -1;
}

/* In the child: put the socket at a high descriptor, set the environment. */
static void child_setup(int sock, unsigned long long ino, const char *name,
			const char *preload)
{
	char val[64];
	const char *old = getenv("LD_PRELOAD");
	char *pre;
	int fd = fcntl(sock, F_DUPFD, TRACE_FD_MIN);	/* without FD_CLOEXEC */

	if (fd < 0) {
		perror("umn trace: fcntl");
		_exit(127);
	}
	snprintf(val, sizeof(val), "%d:%llu", fd, ino);
	if (old && old[0]) {
		pre = malloc(strlen(preload) + strlen(old) + 2);
		if (!pre)
			_exit(127);
		sprintf(pre, "%s:%s", preload, old);
	} else {
		pre = strdup(preload);
	}
	if (!pre || setenv("LD_PRELOAD", pre, 1) || setenv("UMN_TRACE_FD", val, 1) ||
	    setenv("UMN_TRACE_SOCKET", name, 1)) {
		perror("umn trace: setenv");
		_exit(127);
	}
	free(pre);
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static struct tally *tally_of(struct trace *t, const char *call, unsigned event)
{
	struct tally *n;
	size_t i;

	for (i = 0; i < t->ntallies; i++)
		if (t->tallies[i].event == event && !strcmp(t->tallies[i].call, call))
			return &t->tallies[i];
	if (t->ntallies == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;

		n = realloc(t->tallies, cap * sizeof(*n));
		if (!n)
			return NULL;
		t->tallies = n;
		t->cap = cap;
	}
	n = &t->tallies[t->ntallies++];
	memset(n, 0, sizeof(*n));
	snprintf(n->call, sizeof(n->call), "%s", call);
	n->event = event;
	return n;
}

/* The common head of an output line: time, pid, tid. */
static void out_head(struct trace *t, uint64_t ns, long pid, long tid)
{
	double secs = ns > t->t0 ? (double)(ns - t->t0) / 1e9 : 0.0;

	if (t->json)
		fprintf(t->out, "{\"time\":%.6f,\"pid\":%ld,\"tid\":%ld,", secs, pid, tid);
	else
		fprintf(t->out, "%11.6f %7ld %7ld ", secs, pid, tid);
}

static void out_event(struct trace *t, const char *call, unsigned event,
		      uintmax_t start, uintmax_t end)
{
	uintmax_t size = end - start;

	if (t->json) {
		fputs("\"call\":", t->out);
		json_string(t->out, call);
		fprintf(t->out, ",\"event\":\"%s\",\"start\":\"0x%jx\",\"end\":\"0x%jx\","
			"\"size\":%ju}\n", event_names[event], start, end, size);
	} else
		fprintf(t->out, "%-18s %-10s 0x%012jx-0x%012jx %12ju\n",
			call, event_names[event], start, end, size);
}

/* A process line: what = "exec" or "untraced". */
static void out_process(struct trace *t, const char *what, const char *arg)
{
	if (t->json) {
		fprintf(t->out, "\"%s\":", what);
		json_string(t->out, arg);
		fputs("}\n", t->out);
	} else {
		fprintf(t->out, "%-18s %s\n", what, arg);
	}
}

static int parse_event(struct trace *t, char *rest, uint64_t ns, long pid, long tid)
{
	char *p = rest, *call;
	unsigned long ev;
	uintmax_t start, end;
	struct tally *ta;

	ev = strtoul(p, &p, 10);
	start = strtoumax(p, &p, 16);
	end = strtoumax(p, &p, 16);
	if (*p != ' ' || ev >= 4 || end < start)
		return -1;
	call = p + 1;
	out_head(t, ns, pid, tid);
	out_event(t, call, (unsigned)ev, start, end);
	t->events++;
	ta = tally_of(t, call, (unsigned)ev);
	if (ta) {
		ta->count++;
		ta->bytes += end - start;
	}
	return 0;
}

/* One record; a malformed one is counted and skipped. */
static void handle_record(struct trace *t, char *msg, size_t len)
{
	char kind, *p, *arg;
	uint64_t ns;
	long pid, tid;

	if (len == 0 || msg[len - 1] != '\n')
		goto bad;
	msg[len - 1] = '\0';
	kind = msg[0];
	ns = strtoull(msg + 1, &p, 10);
	pid = strtol(p, &p, 10);
	tid = strtol(p, &p, 10);
	if (*p != ' ')
		goto bad;
	arg = p + 1;
	switch (kind) {
	case 'E':
		if (parse_event(t, arg, ns, pid, tid))
			goto bad;
		return;
	case 'X':
		t->traced++;
		out_head(t, ns, pid, tid);
		out_process(t, "exec", arg);
		return;
	case 'F':
		t->forks++;
		out_head(t, ns, pid, tid);
		if (t->json)
			fprintf(t->out, "\"fork\":%ld}\n", strtol(arg, NULL, 10));
		else
			fprintf(t->out, "%-18s parent %s\n", "fork", arg);
		return;
	case 'U':
		t->untraced++;
		out_head(t, ns, pid, tid);
		out_process(t, "untraced", arg);
		return;
	case 'L':
		t->lost += strtoull(arg, NULL, 10);
		return;
	}
bad:
	t->bad++;
}

/*
 * The channels: [0] our end of the socket pair CMD inherited, [1] the
 * listener, then one connection per program that found the inherited
 * descriptor closed (see trace_preload.c).  poll() skips a negative fd.
 */
struct chans {
	struct pollfd *fds;
	nfds_t n, cap;
};

static void chans_add(struct chans *c, int fd)
{
	struct pollfd *n;

	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 8;
		n = realloc(c->fds, c->cap * sizeof(*n));
		if (!n) {
			fprintf(stderr, "umn trace: out of memory; a program goes untraced\n");
			close(fd);
			return;
		}
		c->fds = n;
	}
	c->fds[c->n++] = (struct pollfd){ .fd = fd, .events = POLLIN };
}

static void chans_accept(struct chans *c)
{
	struct ucred cred;
	socklen_t len;
	int fd;

	while ((fd = accept4(c->fds[1].fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		len = sizeof(cred);
		/* Only our own user's programs may add records. */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.uid != getuid()) {
			close(fd);
			continue;
		}
		chans_add(c, fd);
	}
}

/* Drain one channel; false once it is at its end. */
static bool chans_read(struct trace *t, int fd)
{
	char msg[TRACE_MSG_MAX];
	ssize_t n;

	for (;;) {
		n = recv(fd, msg, sizeof(msg), MSG_DONTWAIT);
		if (n > 0) {
			handle_record(t, msg, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n < 0)
			perror("umn trace: recv");
		return false;
	}
}

/*
 * Until every process holding the inherited socket has exited and every
 * fallback connection has closed.  Keep reading even when the output
 * fails, or CMD would block on a full socket.
 */
static void read_records(struct trace *t, struct chans *c)
{
	nfds_t i;

	while (c->fds[0].fd >= 0 || c->n > 2) {
		if (poll(c->fds, c->n, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("umn trace: poll");
			return;
		}
		if (c->fds[1].revents)
			chans_accept(c);
		for (i = c->n; i-- > 0;) {
			if (i == 1 || !c->fds[i].revents || chans_read(t, c->fds[i].fd))
				continue;
			close(c->fds[i].fd);
			if (i == 0)
				c->fds[0].fd = -1;
			else
				c->fds[i] = c->fds[--c->n];
		}
		if (c->fds[0].fd < 0 && c->n == 2)
			chans_accept(c);	/* a late connection, last chance */
		if (!t->out_failed && ferror(t->out)) {
			t->out_failed = true;
			fprintf(stderr, "umn trace: writing %s: %s\n", t->out_name, strerror(errno));
		}
	}
}

static int cmp_tally(const void *a, const void *b)
{
	const struct tally *x = a, *y = b;
	int c = strcmp(x->call, y->call);

	return c ? c : (int)x->event - (int)y->event;
}

static void summary(struct trace *t, FILE *f)
{
	unsigned long long bytes = 0;
	size_t i;

	qsort(t->tallies, t->ntallies, sizeof(*t->tallies), cmp_tally);
	fprintf(f, "umn trace: %llu event%s; %lu program%s traced, %lu fork child%s",
		t->events, t->events == 1 ? "" : "s", t->traced, t->traced == 1 ? "" : "s",
		t->forks, t->forks == 1 ? "" : "ren");
	if (t->untraced)
		fprintf(f, ", %lu not traced (reasons above)", t->untraced);
	fputc('\n', f);
	fprintf(f, "  %-18s %-10s %10s %16s\n", "call", "event", "count", "bytes");
	for (i = 0; i < t->ntallies; i++) {
		fprintf(f, "  %-18s %-10s %10llu %16llu\n", t->tallies[i].call,
			event_names[t->tallies[i].event], t->tallies[i].count,
			t->tallies[i].bytes);
		bytes += t->tallies[i].bytes;
	}
	fprintf(f, "  %-18s %-10s %10llu %16llu\n", "total", "", t->events, bytes);
	if (t->lost)
		fprintf(f, "umn trace: %llu events lost (the socket was full during a "
			"non-blockable invalidation)\n", t->lost);
	if (t->bad)
		fprintf(f, "umn trace: %llu malformed records skipped\n", t->bad);
}

static int exit_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

static int open_output(struct trace *t, const char *name)
{
	int fd;

	t->out = stdout;
	t->out_name = "stdout";
	if (!name)
		return 0;
	fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0 || !(t->out = fdopen(fd, "w"))) {
		fprintf(stderr, "umn trace: %s: %s\n", name, strerror(errno));
		return -1;
	}
	t->out_name = name;
	return 0;
}

/* The listener a program connects to when the inherited socket is gone. */
static int listen_fallback(char *name, size_t size)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	socklen_t len;

	snprintf(name, size, "umn-trace-%ld-%llx", (long)getpid(),
		 (unsigned long long)(now_ns() & 0xffffffffffu));
	/* An abstract address: a NUL, then the name; nothing in the file system. */
	snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "%s", name);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, len) || listen(fd, SOMAXCONN)) {
		perror("umn trace: listening socket");
		return -1;
	}
	return fd;
}

static pid_t start_cmd(char **cmd, struct chans *c, const char *preload)
{
	char name[64];
	struct stat st;
	pid_t pid;
	int sv[2], lfd, bufsize = TRACE_SNDBUF;

	lfd = listen_fallback(name, sizeof(name));
	if (lfd < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		perror("umn trace: socketpair");
		return -1;
	}
	/* Best effort: a bigger buffer blocks CMD less often. */
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize));
	if (fstat(sv[1], &st)) {
		perror("umn trace: fstat");
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("umn trace: fork");
		return -1;
	}
	if (pid == 0) {
		child_setup(sv[1], (unsigned long long)st.st_ino, name, preload);
		execvp(cmd[0], cmd);
		fprintf(stderr, "umn trace: %s: %s\n", cmd[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	close(sv[1]);
	chans_add(c, sv[0]);
	chans_add(c, lfd);
	return c->n == 2 ? pid : -1;
}

static int cmd_trace(int argc, char **argv)
{
	struct trace t = { 0 };
	struct chans c = { 0 };
	const char *out_name = NULL;
	char preload[PATH_MAX];
	int i, status;
	pid_t pid;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			out_name = argv[++i];
		} else if (!strcmp(argv[i], "--json")) {
			t.json = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "umn trace: unknown option %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (find_preload(preload, sizeof(preload))) {
		fprintf(stderr, "umn trace: cannot find " TRACE_PRELOAD " (set UMN_TRACE_PRELOAD)\n");
		return 2;
	}
	if (strpbrk(preload, ": ")) {
		fprintf(stderr, "umn trace: %s: LD_PRELOAD cannot hold a path with ':' or ' '\n",
			preload);
		return 2;
	}
	if (open_output(&t, out_name))
		return 2;
	if (!t.json)
		fprintf(t.out, "# %9s %7s %7s %-18s %-10s %-29s %12s\n", "time", "pid", "tid",
			"call", "event", "range", "size");
	/* ^C goes to CMD; we stay to drain its records and print the summary. */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	t.t0 = now_ns();
	pid = start_cmd(argv + i, &c, preload);
	if (pid < 0)
		return 2;
	read_records(&t, &c);
	close(c.fds[1].fd);
	free(c.fds);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("umn trace: waitpid");
			return 2;
		}
	}
	if (fflush(t.out) || (t.out != stdout && fclose(t.out))) {
		fprintf(stderr, "umn trace: writing %s: %s\n", t.out_name, strerror(errno));
		status = 1 << 8;
	}
	summary(&t, stderr);
	free(t.tallies);
	return exit_status(status);
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "trace"))
		return cmd_trace(argc - 1, argv + 1);
	if (argc >= 3 && !strcmp(argv[1], "demo") && !strcmp(argv[2], "uring"))
		return umn_demo_uring(argc - 2, argv + 2);
	if (argc >= 3 && !strcmp(argv[1], "demo") && !strcmp(argv[2], "mirror"))
		return umn_demo_mirror(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "--version")) {
		printf("umn " UMN_TOOL_VERSION "\n");
		return 0;
	}
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
