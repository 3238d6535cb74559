// SPDX-License-Identifier: MIT
/*
 * monitor_ucm — the same operations as bench/monitor.c, without and with
 * UCX's memory hooks (ucm), in one run: the figures umn's monitor is
 * compared with.
 *
 * UCX hooks libc as soon as libucs is loaded (its constructor patches
 * munmap, madvise, ... before any handler exists), so this program is not
 * linked with UCX: it loads it between phases, in this order (neither step
 * can be undone):
 *   (a) no UCX in the process;
 *   (b) libucs.so.0 loaded with dlopen(): ucm's hooks, no handler;
 *   (c) ucm_set_event_handler(UCM_EVENT_VM_UNMAPPED, ...) with a handler
 *       that only counts (ucm has no subscriptions: deciding which
 *       registrations an unmap hits is the handler's job, ucs_rcache's in
 *       UCX).
 * Raw system calls, which ucm does not see, run beside them as the control
 * (vmops.h).  Built only where Debian's libucx-dev provides the header
 * (bench/build.mk); nothing else needs it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>

#include <ucm/api/ucm.h>

#include "vmops.h"

typedef ucs_status_t (*set_handler_fn)(int events, int priority,
				       ucm_event_callback_t cb, void *arg);
typedef void (*unset_handler_fn)(int events, ucm_event_callback_t cb,
				 void *arg);
typedef const char *(*status_string_fn)(ucs_status_t status);

static _Atomic long unmapped_events;

static void ucm_bench_unmapped(ucm_event_type_t type, ucm_event_t *event,
			       void *arg)
{
	atomic_fetch_add_explicit(&unmapped_events, 1, memory_order_relaxed);
}

static const char *hook_mode_name(int mode)
{
	switch (mode) {
	case UCM_MMAP_HOOK_NONE:
		return "none";
	case UCM_MMAP_HOOK_RELOC:
		return "reloc (PLT/GOT entries rewritten)";
	case UCM_MMAP_HOOK_BISTRO:
		return "bistro (function entry points patched)";
	default:
		return "unknown";
	}
}

static void *sym(void *lib, const char *name)
{
	void *p = dlsym(lib, name);

	if (!p) {
		fprintf(stderr, "dlsym %s: %s\n", name, dlerror());
		exit(1);
	}
	return p;
}

int main(void)
{
	struct vm_results *r = calloc(1, sizeof(*r));
	const ucm_global_config_t *opts;
	set_handler_fn set_handler;
	unset_handler_fn unset_handler;
	status_string_fn status_string;
	struct vm_layout l;
	ucs_status_t st;
	void *ucs;
	long events;

	if (!r)
		vm_die("calloc");
	vm_layout_init(&l, 0);
	vm_run_phase(&l, r, 0, "(a) none");
	printf("monitor_ucm: what UCX's ucm hooks add to mmap, munmap and "
	       "madvise; phases (a), (b), (c) in this order, one run\n");

	vm_layout_plug(&l, true);
	ucs = dlopen("libucs.so.0", RTLD_NOW | RTLD_GLOBAL);
	vm_layout_plug(&l, false);
	if (!ucs) {
		printf("UCX not loadable (%s); only the baseline:\n",
		       dlerror());
		vm_print(r);
		return 0;
	}
	set_handler = (set_handler_fn)sym(ucs, "ucm_set_event_handler");
	unset_handler = (unset_handler_fn)sym(ucs, "ucm_unset_event_handler");
	status_string = (status_string_fn)sym(ucs, "ucs_status_string");
	opts = sym(ucs, "ucm_global_opts");
	vm_run_phase(&l, r, 1, "(b) ucm loaded");

	vm_layout_plug(&l, true);
	st = set_handler(UCM_EVENT_VM_UNMAPPED, 0, ucm_bench_unmapped, NULL);
	vm_layout_plug(&l, false);
	if (st != UCS_OK) {
		printf("ucm_set_event_handler failed (%s); phases (a), (b):\n",
		       status_string(st));
		vm_print(r);
		return 0;
	}
	printf("ucm hook mode: %s\n", hook_mode_name(opts->mmap_hook_mode));
	events = atomic_load(&unmapped_events);
	vm_run_phase(&l, r, 2, "(c) ucm handler");
	events = atomic_load(&unmapped_events) - events;
	unset_handler(UCM_EVENT_VM_UNMAPPED, ucm_bench_unmapped, NULL);

	vm_print(r);
	printf("\n");
	vm_print_summary(r, 1, 100, 10);
	vm_print_summary(r, 2, 100, 10);
	printf("VM_UNMAPPED events during (c): %ld (the munmaps and "
	       "madvise(MADV_DONTNEED)s made through libc)\n", events);
	printf("mmaps not at their hint: %ld (should be 0)\n", vm_misplaced(&l));
	vm_layout_free(&l);
	free(r);
	return 0;
}
