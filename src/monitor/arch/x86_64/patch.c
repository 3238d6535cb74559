// SPDX-License-Identifier: MIT
/*
 * patch (x86-64) — rewrite libc's entry points, in place, while other
 * threads may be running through them.
 *
 * The rule that makes it safe: replace exactly one instruction, with one
 * atomic store.  A thread can be stopped only between instructions; if the
 * bytes written lie inside one instruction, no thread can be part-way
 * through them, and every thread sees either the old instruction or the
 * new jump, never a mix.  So each entry point gets a 5-byte `jmp rel32`
 * over one instruction of at least 5 bytes (the rest of it is never
 * reached), written by a lock cmpxchg on the aligned 8 or 16 bytes that
 * hold it, after which membarrier() makes every thread serialize its
 * instruction stream.
 *
 * Which instruction: the first, when it is 5 bytes or more.  Otherwise the
 * first one that is, when every instruction before it is harmless to have
 * run: it only writes registers a call does not pass arguments in, or flags
 * (mmap, pkey_mprotect), or its effect can be undone (mremap's stack
 * adjustment, syscall()'s argument shuffle).  A thread that ran some of them
 * before the jump appeared, and a new caller that runs all of them, both
 * arrive at the jump in the same state, and the jump goes to an island
 * that undoes them and enters the wrapper as libc's caller would.
 * Each shape is listed below, checked byte for byte; an entry point that
 * matches none is refused, and then nothing at all is patched.
 *
 * Islands: one page, mapped within 1 GiB of libc (a rel32 reaches 2).
 * Its first bytes say "umn wrappers live here" (struct umn__monitor_shared)
 * so that another copy of umn in the process finds and shares them.  An
 * entry that already jumps somewhere (another patcher: UCX's ucm, libfabric,
 * Open MPI) gets our jump in place of its own, and the wrapper calls the
 * old target where it would make the system call: both keep seeing every
 * call.  A thread that had already begun the old jump sequence finishes it.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>

#include "monitor/monitor.h"
#include "sys/raw_syscall.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE
#define MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE (1 << 5)
#define MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE (1 << 6)
#endif

extern char umn__monitor_syscall_entry[];  /* entry.S */
void *umn__monitor_syscall_chain;          /* entry.S reads it */

#define PAGE 4096ul
#define JMP32_LEN 5
#define ABS_JMP_LEN 14          /* jmp *0(%rip); .quad target */
#define UNDO_MAX 24
#define SLOT_LEN 48

/* One entry point's plan, made and checked before anything is written. */
struct plan {
	uint8_t *site;          /* the instruction the jump replaces */
	uint8_t undo[UNDO_MAX]; /* island code run before the wrapper */
	size_t undo_len;
	void *target;           /* where the entry jumps now, if it does */
	bool mid;               /* target: a umn jump past the entry */
	const struct umn__monitor_shared *found; /* umn's page at target */
	uint8_t *slot;          /* in the island */
	uint8_t before[16];     /* the aligned block holding the site */
};

static const uint8_t endbr64[] = { 0xf3, 0x0f, 0x1e, 0xfa };

/* @p starts with @pat; 0x100 in @pat matches any byte. */
static bool match(const uint8_t *p, const short *pat, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (pat[i] != 0x100 && p[i] != pat[i])
			return false;
	return true;
}

#define ANY 0x100
#define MATCH(p, ...)                                                        \
	match((p), (const short[]){ __VA_ARGS__ },                             \
	      sizeof((const short[]){ __VA_ARGS__ }) / sizeof(short))

static uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static int32_t load32(const uint8_t *p)
{
	int32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* An entry that already jumps somewhere: where to. */
static void *jump_target(const uint8_t *p)
{
	if (p[0] == 0xe9)                                     /* jmp rel32 */
		return (void *)((uintptr_t)p + 5 + (intptr_t)load32(p + 1));
	if (MATCH(p, 0xff, 0x25, 0, 0, 0, 0))                /* jmp *0(%rip) */
		return (void *)load64(p + 6);
	if (MATCH(p, 0x49, 0xbb) && MATCH(p + 10, 0x41, 0xff, 0xe3)) /* r11 */
		return (void *)load64(p + 2);
	if (MATCH(p, 0x48, 0xb8) && MATCH(p + 10, 0xff, 0xe0)) /* rax */
		return (void *)load64(p + 2);
	return NULL;
}

/*
 * Read another copy's page header without trusting that the page is
 * readable: process_vm_readv fails with EFAULT where a load would fault.
 */
static bool read_shared(const void *target, struct umn__monitor_shared *out)
{
	struct iovec local = { out, sizeof(*out) };
	struct iovec remote = { (void *)((uintptr_t)target & ~(PAGE - 1)),
				sizeof(*out) };
	long n = umn__sys6(SYS_process_vm_readv, umn__sys0(SYS_getpid),
			   (long)&local, 1, (long)&remote, 1, 0);

	return n == (long)sizeof(*out) &&
	       memcmp(out->magic, UMN__SHARED_MAGIC,
		      sizeof(UMN__SHARED_MAGIC)) == 0;
}

/*
 * The site holds the instruction the shape expects, or the jump a copy of
 * umn wrote there: then it leads to that copy's island.
 */
static bool site_is(const uint8_t *site, const short *pat, size_t n,
		    struct plan *pl)
{
	if (site[0] == 0xe9) {
		pl->target = jump_target(site);
		pl->mid = true;
		return true;
	}
	return match(site, pat, n);
}

#define SITE_IS(site, pl, ...)                                               \
	site_is((site), (const short[]){ __VA_ARGS__ },                        \
		sizeof((const short[]){ __VA_ARGS__ }) / sizeof(short), (pl))

/*
 * The shapes glibc's entry points have (after an optional endbr64), and
 * where each takes the jump.  Returns the site's offset from @p, or -1.
 */
static long plan_shape(const struct umn__hook *h, const uint8_t *p,
		       struct plan *pl)
{
	/* mov $nr, %eax: the plain system call wrappers. */
	if (p[0] == 0xb8 && h->nr >= 0 && load32(p + 1) == h->nr)
		return 0;
	/* mmap: mov %ecx,%r10d; test $0xfff,%r9d (7 bytes, flags only). */
	if (!strcmp(h->name, "mmap") && MATCH(p, 0x41, 0x89, 0xca) &&
	    SITE_IS(p + 3, pl, 0x41, 0xf7, 0xc1, 0xff, 0x0f, 0, 0))
		return 3;
	/* mremap: sub $n,%rsp; mov %r8,m(%rsp) (5 bytes).  Undo: add $n. */
	if (!strcmp(h->name, "mremap") && MATCH(p, 0x48, 0x83, 0xec) &&
	    SITE_IS(p + 4, pl, 0x4c, 0x89, 0x44, 0x24)) {
		memcpy(pl->undo, (const uint8_t[]){ 0x48, 0x83, 0xc4, p[3] }, 4);
		pl->undo_len = 4;
		return 4;
	}
	/*
	 * pkey_mprotect: mov %ecx,%r10d; cmp $-1,%ecx; je L; mov $nr,%eax.
	 * L must be a jump to mprotect, which is patched too.
	 */
	if (!strcmp(h->name, "pkey_mprotect") &&
	    MATCH(p, 0x41, 0x89, 0xca, 0x83, 0xf9, 0xff, 0x74) &&
	    (p[8] == 0xe9 || (p[8] == 0xb8 && load32(p + 9) == h->nr))) {
		const uint8_t *l = p + 8 + (int8_t)p[7];
		const uint8_t *mprotect_fn =
			umn__monitor_hooks[HOOK_MPROTECT].libc;

		if (l[0] != 0xe9 || l + 5 + load32(l + 1) != mprotect_fn)
			return -1;
		SITE_IS(p + 8, pl, 0xb8);
		return 8;
	}
	/*
	 * syscall(): six register moves, then mov 8(%rsp),%r9 (5 bytes).
	 * Undo the moves in reverse to get syscall()'s arguments back.
	 */
	if (!strcmp(h->name, "syscall") &&
	    MATCH(p, 0x48, 0x89, 0xf8, 0x48, 0x89, 0xf7, 0x48, 0x89, 0xd6,
		  0x48, 0x89, 0xca, 0x4d, 0x89, 0xc2, 0x4d, 0x89, 0xc8) &&
	    SITE_IS(p + 18, pl, 0x4c, 0x8b, 0x4c, 0x24, 0x08)) {
		static const uint8_t undo[] = {
			0x4d, 0x89, 0xc1, /* mov %r8,%r9 */
			0x4d, 0x89, 0xd0, /* mov %r10,%r8 */
			0x48, 0x89, 0xd1, /* mov %rdx,%rcx */
			0x48, 0x89, 0xf2, /* mov %rsi,%rdx */
			0x48, 0x89, 0xfe, /* mov %rdi,%rsi */
			0x48, 0x89, 0xc7, /* mov %rax,%rdi */
		};
		memcpy(pl->undo, undo, sizeof(undo));
		pl->undo_len = sizeof(undo);
		return 18;
	}
	return -1;
}

static int plan_one(const struct umn__hook *h, struct plan *pl, char *why,
		    size_t len)
{
	uint8_t *p = h->libc;

	memset(pl, 0, sizeof(*pl));
	if (!p) {
		umn__why(why, len, "%s: not found in libc\n", h->name);
		return -ENOEXEC;
	}
	if (!memcmp(p, endbr64, sizeof(endbr64)))
		p += sizeof(endbr64);
	pl->target = jump_target(p);
	long off = pl->target ? 0 : plan_shape(h, p, pl);

	if (off < 0) {
		umn__why(why, len,
			 "%s: entry %02x %02x %02x %02x %02x %02x %02x %02x "
			 "is not a shape umn knows how to patch safely\n",
			 h->name, p[0], p[1], p[2], p[3], p[4], p[5], p[6],
			 p[7]);
		return -ENOEXEC;
	}
	pl->site = p + off;
	uintptr_t a = (uintptr_t)pl->site;

	if ((a & ~15ul) != ((a + JMP32_LEN - 1) & ~15ul)) {
		umn__why(why, len, "%s: the patch site straddles 16 bytes\n",
			 h->name);
		return -ENOEXEC;
	}
	memcpy(pl->before, (void *)(a & ~15ul), 16);
	return 0;
}

/* A page for the islands within rel32 reach of [lo, hi). */
static uint8_t *island_map(uintptr_t lo, uintptr_t hi)
{
	const uintptr_t reach = 1ul << 30; /* well inside 2 GiB either way */

	for (uintptr_t step = 1ul << 20; step < reach; step += 1ul << 20) {
		uintptr_t tries[2] = { (lo & ~(PAGE - 1)) - step,
				       ((hi + PAGE) & ~(PAGE - 1)) + step };

		for (int i = 0; i < 2; i++) {
			long r = umn__sys6(SYS_mmap, (long)tries[i], PAGE,
					   PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS |
						   MAP_FIXED_NOREPLACE,
					   -1, 0);
			if (umn__sys_error(r))
				continue;
			if ((uintptr_t)r == tries[i])
				return (uint8_t *)r;
			/* An old kernel took it as a hint and went elsewhere. */
			umn__sys2(SYS_munmap, r, PAGE);
		}
	}
	return NULL;
}

static bool reach32(const uint8_t *from_end, const uint8_t *to)
{
	long d = (long)(to - from_end);

	return d == (int32_t)d;
}

/* Lay out the island: header, then a slot per entry point. */
static void island_fill(uint8_t *page, const struct umn__monitor_shared *mine,
			struct plan *plans)
{
	memcpy(page, mine, sizeof(*mine));
	for (int i = 0; i < HOOK_COUNT; i++) {
		struct plan *pl = &plans[i];
		uint8_t *s = page + 128 + i * SLOT_LEN;
		void *dest = umn__monitor_hooks[i].wrapper;

		memset(s, 0xcc, SLOT_LEN);
		memcpy(s, pl->undo, pl->undo_len);
		memcpy(s + pl->undo_len, (const uint8_t[]){ 0xff, 0x25, 0, 0, 0, 0 },
		       6);
		memcpy(s + pl->undo_len + 6, &dest, 8);
		pl->slot = s;
	}
}

static bool cas16(void *p, const uint8_t old[16], const uint8_t new[16])
{
	uint64_t olo = load64(old), ohi = load64(old + 8);
	uint64_t nlo = load64(new), nhi = load64(new + 8);
	bool ok;

	__asm__ volatile("lock cmpxchg16b %1\n\tsete %0"
			 : "=q"(ok), "+m"(*(volatile __int128 *)p), "+a"(olo),
			   "+d"(ohi)
			 : "b"(nlo), "c"(nhi)
			 : "memory", "cc");
	return ok;
}

/* In assembly, like cas16: a sanitizer must not instrument stores to
 * libc's text (ThreadSanitizer has no shadow for it). */
static bool cas8(void *p, uint64_t old, uint64_t new)
{
	bool ok;

	__asm__ volatile("lock cmpxchgq %3, %1\n\tsete %0"
			 : "=q"(ok), "+m"(*(volatile uint64_t *)p), "+a"(old)
			 : "r"(new)
			 : "memory", "cc");
	return ok;
}

/*
 * Replace the aligned block holding the site, expecting @old, with one
 * locked store: 8 bytes when the site fits in them, else 16.
 */
static bool text_swap(uint8_t *site, const uint8_t old[16],
		      const uint8_t new[16])
{
	uintptr_t a = (uintptr_t)site, blk = a & ~15ul;
	size_t half = (a & ~7ul) == ((a + JMP32_LEN - 1) & ~7ul) ? (a & 8) : 16;

	if (half == 16)
		return cas16((void *)blk, old, new);
	return cas8((void *)(blk + half), load64(old + half), load64(new + half));
}

/* The block after patching: a jmp rel32 to the slot at the site. */
static void patched_block(const struct plan *pl, uint8_t out[16])
{
	uintptr_t blk = (uintptr_t)pl->site & ~15ul;
	size_t at = (uintptr_t)pl->site - blk;
	int32_t rel = (int32_t)(pl->slot - (pl->site + JMP32_LEN));

	memcpy(out, pl->before, 16);
	out[at] = 0xe9;
	memcpy(out + at + 1, &rel, 4);
}

static int text_protect(uint8_t *site, unsigned prot)
{
	uintptr_t page = (uintptr_t)site & ~(PAGE - 1);

	return umn__sys_error(umn__sys3(SYS_mprotect, page, PAGE, prot));
}

/*
 * Write every jump, or none: a failure puts back the ones written.  Each
 * page is writable (and still executable: other threads run on it) only
 * while its own jump is written, then gets its protection back.
 */
static int text_write_all(struct plan *plans, char *why, size_t len)
{
	int done, err = 0;

	for (done = 0; done < HOOK_COUNT && !err; done++) {
		struct plan *pl = &plans[done];
		struct umn__mapping m;
		uint8_t new[16];

		err = umn__maps_find((uintptr_t)pl->site, &m);
		if (!err)
			err = -text_protect(pl->site, m.prot | PROT_READ |
							      PROT_WRITE |
							      PROT_EXEC);
		if (err) {
			umn__why(why, len, "%s: cannot make libc's text "
				 "writable (%s)\n", umn__monitor_hooks[done].name,
				 strerror(-err));
			err = -EACCES;
			break;
		}
		patched_block(pl, new);
		if (!text_swap(pl->site, pl->before, new)) {
			umn__why(why, len, "%s: entry changed while patching\n",
				 umn__monitor_hooks[done].name);
			err = -EAGAIN;
		}
		text_protect(pl->site, m.prot);
	}
	if (!err)
		return 0;
	while (done-- > 0) {
		struct plan *pl = &plans[done];
		struct umn__mapping m;
		uint8_t new[16];

		if (umn__maps_find((uintptr_t)pl->site, &m) ||
		    text_protect(pl->site, m.prot | PROT_WRITE | PROT_EXEC))
			continue;
		patched_block(pl, new);
		text_swap(pl->site, new, pl->before);
		text_protect(pl->site, m.prot);
	}
	return err;
}

/* Make every thread serialize its instruction stream (cross-modifying
 * code); kernels without the command still see a single locked store. */
static void text_sync_cores(void)
{
	if (!umn__sys_error(umn__sys2(SYS_membarrier,
				      MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
				      0)))
		umn__sys2(SYS_membarrier,
			  MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0);
}

/* Every entry leads to one umn page of the same ABI: share it. */
static int plan_shared(struct plan *plans, const char *abi,
		       const struct umn__monitor_shared **shared, char *why,
		       size_t len)
{
	static struct umn__monitor_shared found[HOOK_COUNT];
	int n = 0;

	for (int i = 0; i < HOOK_COUNT; i++) {
		if (plans[i].target && read_shared(plans[i].target, &found[i]) &&
		    !strncmp(found[i].abi, abi, sizeof(found[i].abi))) {
			plans[i].found = &found[i];
			n++;
		}
	}
	for (int i = 0; i < HOOK_COUNT; i++) {
		/* Its island expects the prefix run: only that copy can
		 * follow it. */
		if (plans[i].mid && !plans[i].found) {
			umn__why(why, len, "%s: patched by a copy of umn of "
				 "another version\n", umn__monitor_hooks[i].name);
			return -ENOEXEC;
		}
	}
	if (n == 0)
		return 0;
	uintptr_t page = (uintptr_t)plans[0].target & ~(PAGE - 1);

	for (int i = 0; i < HOOK_COUNT; i++) {
		if (!plans[i].found ||
		    ((uintptr_t)plans[i].target & ~(PAGE - 1)) != page) {
			umn__why(why, len, "%s: another copy of umn patched "
				 "some entry points but not this one\n",
				 umn__monitor_hooks[i].name);
			return -ENOEXEC;
		}
	}
	*shared = (const struct umn__monitor_shared *)page;
	for (int i = 0; i < HOOK_COUNT; i++)
		umn__why(why, len, "%s: shared with another copy of umn\n",
			 umn__monitor_hooks[i].name);
	return 1;
}

/*
 * Copies of umn in one process install one at a time: each claims a page
 * at an address they all derive from libc's munmap, with
 * MAP_FIXED_NOREPLACE, so only one gets it; the others wait for it to go,
 * then plan and find the patch to share.  Without this, two copies could
 * make the same text page writable and one restore it read-only under the
 * other's store.  The page is a memfd written before it is mapped, so it
 * shows the magic from its first instant; any other mapping there, or a
 * kernel without MAP_FIXED_NOREPLACE, means installing unserialized.
 */
#define CLAIM_MAGIC "umn-install-claim"

/* A page holding the magic, mapped at @at or not at all; -errno. */
static long claim_map(uintptr_t at)
{
	long fd = umn__sys2(SYS_memfd_create, "umn-install-claim", 1 /* CLOEXEC */);
	long r;

	if (umn__sys_error(fd))
		return fd;
	r = umn__sys3(SYS_write, fd, CLAIM_MAGIC, sizeof(CLAIM_MAGIC));
	if (r == (long)sizeof(CLAIM_MAGIC))
		r = umn__sys6(SYS_mmap, (long)at, PAGE, PROT_READ,
			      MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
	else if (!umn__sys_error(r))
		r = -EIO;
	umn__sys1(SYS_close, fd);
	if (!umn__sys_error(r) && (uintptr_t)r != at) {
		umn__sys2(SYS_munmap, r, PAGE); /* taken as a hint */
		r = -EOPNOTSUPP;
	}
	return r;
}

/*
 * The claim this process holds, if any: a fork() during the install copies
 * it into a child that does not install, and would make the child's own
 * install wait for it.  The child drops it.
 */
static void *claim_held;

static void claim_child(void)
{
	if (claim_held)
		umn__sys2(SYS_munmap, claim_held, PAGE);
	claim_held = NULL;
}

static void claim_register_child(void)
{
	pthread_atfork(NULL, NULL, claim_child);
}

static void *install_claim(const char **why_not)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, claim_register_child);
	uintptr_t libc = (uintptr_t)umn__monitor_hooks[HOOK_MUNMAP].libc;
	uintptr_t at = (libc & ~((1ul << 32) - 1)) - (1ul << 32) + 0x75000;
	char seen[sizeof(CLAIM_MAGIC)];

	for (int tries = 0; tries < 5000; tries++) {
		long r = claim_map(at);

		if (!umn__sys_error(r))
			return claim_held = (void *)at;
		if (umn__sys_error(r) != EEXIST) {
			*why_not = "no claim page (memfd_create or "
				   "MAP_FIXED_NOREPLACE missing)";
			return NULL;
		}
		struct iovec local = { seen, sizeof(seen) };
		struct iovec remote = { (void *)at, sizeof(seen) };
		struct timespec ms = { 0, 1000000 };

		/* Gone meanwhile (EFAULT): claim it again. */
		if (umn__sys6(SYS_process_vm_readv, umn__sys0(SYS_getpid),
			      (long)&local, 1, (long)&remote, 1, 0) !=
			    (long)sizeof(seen))
			continue;
		if (memcmp(seen, CLAIM_MAGIC, sizeof(seen))) {
			*why_not = "another mapping is where the claim goes";
			return NULL;
		}
		umn__sys2(SYS_nanosleep, &ms, NULL);
	}
	*why_not = "another copy held the claim for 5 s";
	return NULL;
}

static int patch_claimed(const struct umn__monitor_shared *mine,
			 const struct umn__monitor_shared **shared, char *why,
			 size_t len);

int umn__arch_patch(const struct umn__monitor_shared *mine,
		    const struct umn__monitor_shared **shared, char *why,
		    size_t len)
{
	unsigned a, b, c, d;

	*shared = NULL;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_CMPXCHG16B)) {
		umn__why(why, len, "this CPU has no cmpxchg16b\n");
		return -ENOTSUP;
	}
	const char *why_not = NULL;
	void *claim = install_claim(&why_not);

	if (!claim)
		umn__why(why, len, "installing unserialized with other copies "
			 "of umn: %s\n", why_not);
	int err = patch_claimed(mine, shared, why, len);

	if (claim) {
		claim_held = NULL;
		umn__sys2(SYS_munmap, claim, PAGE);
	}
	return err;
}

/* Plan every entry point, then patch them all or share another copy's. */
static int patch_claimed(const struct umn__monitor_shared *mine,
			 const struct umn__monitor_shared **shared, char *why,
			 size_t len)
{
	static struct plan plans[HOOK_COUNT];
	int err = 0;

	umn__monitor_hooks[HOOK_SYSCALL].wrapper = umn__monitor_syscall_entry;
	for (int i = 0; i < HOOK_COUNT; i++) {
		int e = plan_one(&umn__monitor_hooks[i], &plans[i], why, len);

		err = err ? err : e;
	}
	if (err)
		return err;
	err = plan_shared(plans, mine->abi, shared, why, len);
	if (err)
		return err < 0 ? err : 0;

	uintptr_t lo = UINTPTR_MAX, hi = 0;

	for (int i = 0; i < HOOK_COUNT; i++) {
		lo = (uintptr_t)plans[i].site < lo ? (uintptr_t)plans[i].site : lo;
		hi = (uintptr_t)plans[i].site > hi ? (uintptr_t)plans[i].site : hi;
	}
	uint8_t *island = island_map(lo, hi);

	if (!island) {
		umn__why(why, len, "no page for jump islands within 1 GiB of "
			 "libc\n");
		return -ENOMEM;
	}
	island_fill(island, mine, plans);
	for (int i = 0; i < HOOK_COUNT; i++) {
		if (!reach32(plans[i].site + JMP32_LEN, plans[i].slot)) {
			umn__why(why, len, "%s: island out of reach\n",
				 umn__monitor_hooks[i].name);
			err = -ENOMEM;
		}
		/* The wrapper calls the old target in place of the kernel. */
		umn__monitor_hooks[i].chain = plans[i].target;
	}
	umn__monitor_syscall_chain = plans[HOOK_SYSCALL].target;
	if (!err)
		err = -umn__sys_error(umn__sys3(SYS_mprotect, island, PAGE,
						PROT_READ | PROT_EXEC));
	if (err) {
		umn__sys2(SYS_munmap, island, PAGE);
		for (int i = 0; i < HOOK_COUNT; i++)
			umn__monitor_hooks[i].chain = NULL;
		umn__monitor_syscall_chain = NULL;
		return err;
	}
	/*
	 * From here a failure puts the entries back, but a thread may have
	 * taken a jump meanwhile and be in the island or a wrapper, using the
	 * chain pointers: both stay (one page, once).
	 */
	err = text_write_all(plans, why, len);
	if (err)
		return err;
	text_sync_cores();
	for (int i = 0; i < HOOK_COUNT; i++) {
		if (plans[i].target)
			umn__why(why, len, "%s: chained to the jump to %p "
				 "already there\n", umn__monitor_hooks[i].name,
				 plans[i].target);
		else
			umn__why(why, len, "%s: patched at %p\n",
				 umn__monitor_hooks[i].name,
				 (void *)plans[i].site);
	}
	return 0;
}
