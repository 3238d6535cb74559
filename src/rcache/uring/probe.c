// SPDX-License-Identifier: MIT
/*
 * probe — whether this kernel and process can use the io_uring backend,
 * and if not, why, in words a user can act on.
 *
 * io_uring can be missing (a kernel built without it: ENOSYS), switched
 * off by the administrator (kernel.io_uring_disabled: 2 for everyone, 1 for
 * all but root and kernel.io_uring_group: EPERM), filtered by seccomp (the
 * default profiles of container runtimes: EPERM too), or too old to
 * replace registered buffers (before 5.13).  The probe tries exactly what
 * the backend does, on a throwaway ring.
 */
#include <errno.h>
#include <liburing.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include <umn/rcache_uring.h>

#include "rcache/uring/uring.h"

#define IO_URING_DISABLED "/proc/sys/kernel/io_uring_disabled"

__attribute__((format(printf, 3, 4)))
static void say(char *reason, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (!reason || !size)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, size, fmt, ap);
	va_end(ap);
}

/* The errno names the probe can meet; strerror() is not thread-safe. */
static const char *errno_name(int err)
{
	switch (err) {
	case ENOSYS: return "ENOSYS";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ENOMEM: return "ENOMEM";
	case EINVAL: return "EINVAL";
	case EFAULT: return "EFAULT";
	case EMFILE: return "EMFILE";
	case ENFILE: return "ENFILE";
	case EBUSY: return "EBUSY";
	case ENOTSUP: return "ENOTSUP";
	default: return "an error";
	}
}

/* kernel.io_uring_disabled (Linux 6.6), or -1 if there is no such knob. */
static int io_uring_disabled(void)
{
	FILE *f = fopen(IO_URING_DISABLED, "re");
	int v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static int setup_failed(int ret, char *reason, size_t size)
{
	int knob;

	switch (-ret) {
	case ENOSYS:
		say(reason, size, "io_uring_setup: ENOSYS: this kernel was "
		    "built without io_uring (CONFIG_IO_URING)");
		return -ENOTSUP;
	case EPERM:
	case EACCES:
		knob = io_uring_disabled();
		if (knob == 2)
			say(reason, size, "io_uring is disabled for every "
			    "process (" IO_URING_DISABLED " is 2)");
		else if (knob == 1)
			say(reason, size, "io_uring is allowed only to root and "
			    "to the group in /proc/sys/kernel/io_uring_group ("
			    IO_URING_DISABLED " is 1)");
		else
			say(reason, size, "io_uring_setup: %s: refused, most "
			    "likely by a seccomp filter (container runtimes' "
			    "default profiles block io_uring)", errno_name(-ret));
		return -EPERM;
	case ENOMEM:
		say(reason, size, "io_uring_setup: ENOMEM: out of memory, or "
		    "RLIMIT_MEMLOCK too low (kernels before 5.12 charge the "
		    "rings to it)");
		return ret;
	default:
		say(reason, size, "io_uring_setup: %s (%d)", errno_name(-ret),
		    ret);
		return ret;
	}
}

static void table_failed(int ret, char *reason, size_t size)
{
	struct utsname u;
	const char *rel = uname(&u) == 0 ? u.release : "unknown";

	if (ret == -ENOTSUP)
		say(reason, size, "io_uring_register: this kernel (%s) cannot "
		    "replace registered buffers (needs Linux 5.13)", rel);
	else
		say(reason, size, "io_uring_register of an empty buffer "
		    "table: %s (%d) on Linux %s", errno_name(-ret), ret, rel);
}

static void page_failed(int ret, char *reason, size_t size)
{
	if (ret == -ENOMEM)
		say(reason, size, "io_uring_register of one page: ENOMEM: "
		    "RLIMIT_MEMLOCK is too low for registered buffers (raise "
		    "it with ulimit -l, or give the process CAP_IPC_LOCK)");
	else
		say(reason, size, "io_uring_register, filling or emptying a slot: %s (%d)",
		    errno_name(-ret), ret);
}

int umn_rcache_uring_probe(char *reason, size_t size)
{
	struct io_uring ring;
	char page[64];  /* on the stack: anonymous memory, which the kernel pins */
	int ret = io_uring_queue_init(2, &ring, 0);

	if (ret < 0)
		return setup_failed(ret, reason, size);
	ret = umn__uring_table_register(&ring, 1);
	if (ret) {
		table_failed(ret, reason, size);
	} else {
		memset(page, 0, sizeof(page));
		ret = umn__uring_table_set(&ring, 0, page, sizeof(page));
		if (!ret)
			ret = umn__uring_table_set(&ring, 0, NULL, 0);
		if (ret)
			page_failed(ret, reason, size);
		else
			say(reason, size, "io_uring fixed buffers: a buffer "
			    "table registered, a slot filled and emptied");
	}
	io_uring_queue_exit(&ring);
	return ret;
}
