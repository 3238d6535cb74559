// SPDX-License-Identifier: MIT
/*
 * swdev — the software device: a page table (a hash of page entries), the
 * device memory (each entry's copy of its host page), and the accesses
 * device threads make at host virtual addresses.
 *
 * Every function here but the accesses and umn__mirror_entry_get() runs
 * under the mirror lock.  Reads are served from the copies; writes and
 * atomic adds go through to the host page with process_vm_writev() and to
 * the copy, both under the lock, so an ->invalidate() (which takes it
 * before the memory changes) sees an access either finished or not begun.
 * Zapped entries go to a free list: zapping runs inside ->invalidate(),
 * which may run inside free().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mirror/mirror.h"

static size_t bucket(const struct umn_mirror *m, uintptr_t page)
{
	return (page / m->page) % SWDEV_BUCKETS;
}

/* Host memory of this process, or -EFAULT where it is not mapped. */
int umn__mirror_host_read(uintptr_t addr, void *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)addr, len };
	ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);

	if (n < 0)
		return errno == ENOMEM ? -EFAULT : -errno;
	return (size_t)n == len ? 0 : -EFAULT;
}

/*
 * process_vm_writev() honours the mapping's protection (unlike ptrace or
 * /proc/self/mem, it does not force): a write into a read-only page fails
 * with EFAULT.  The entry's UMN_MIRROR_WRITE, checked by the caller, is
 * what turns a device write into memory the process made read-only into
 * -EACCES, with no system call; the kernel's check is the backstop when an
 * invalidation was missed (tests/mirror/user_fault_errors).
 */
static int host_write(uintptr_t addr, const void *buf, size_t len)
{
	struct iovec local = { (void *)(uintptr_t)buf, len };
	struct iovec remote = { (void *)addr, len };
	ssize_t n = process_vm_writev(getpid(), &local, 1, &remote, 1, 0);

	if (n < 0)
		return errno == ENOMEM ? -EFAULT : -errno;
	return (size_t)n == len ? 0 : -EFAULT;
}

/* A free entry, from the free list or malloc; never under the lock. */
struct entry *umn__mirror_entry_get(struct umn_mirror *m)
{
	struct entry *e;

	umn__mirror_lock(m);
	e = m->free_entries;
	if (e)
		m->free_entries = e->next;
	umn__mirror_unlock(m);
	if (e)
		return e;
	e = malloc(sizeof(*e) + m->page);
	if (!e)
		return NULL;
	umn__mirror_lock(m);
	e->all = m->all_entries;
	m->all_entries = e;
	umn__mirror_unlock(m);
	return e;
}

void umn__mirror_entry_put_locked(struct umn_mirror *m, struct entry *e)
{
	e->next = m->free_entries;
	m->free_entries = e;
}

static struct entry **lookup_locked(struct umn_mirror *m, uintptr_t page)
{
	struct entry **p = &m->table[bucket(m, page)];

	while (*p && (*p)->page != page)
		p = &(*p)->next;
	return p;
}

/*
 * @e holds the host page's copy.  An entry already there was installed by
 * a concurrent fault after ours read the host page, and no invalidation
 * came since (the caller's read_retry passed): its copy is the newer one,
 * with the device writes made through it, so it stays and only takes the
 * permissions, which were read after our read_begin.  Returns @e if it was
 * not used.
 */
struct entry *umn__mirror_install_locked(struct umn_mirror *m, struct entry *e,
					 uintptr_t page, unsigned prot)
{
	struct entry **p = lookup_locked(m, page);

	if (*p) {
		(*p)->prot = prot;
		return e;
	}
	e->page = page;
	e->prot = prot;
	e->next = NULL;
	m->st.entries++;
	*p = e;
	return NULL;
}

static void zap_one_locked(struct umn_mirror *m, struct entry **p)
{
	struct entry *e = *p;

	*p = e->next;
	umn__mirror_entry_put_locked(m, e);
	m->st.entries--;
	m->st.zapped++;
}

/* Visit whichever is smaller: the pages of the range, or the table. */
void umn__mirror_zap_locked(struct umn_mirror *m, uintptr_t start,
			    uintptr_t end)
{
	if (m->ops) {
		m->ops->zap(m->dev, start, end);
		return;
	}
	start &= ~(m->page - 1);
	if ((end - start) / m->page <= m->st.entries) {
		for (uintptr_t a = start; a < end; a += m->page) {
			struct entry **p = lookup_locked(m, a);

			if (*p)
				zap_one_locked(m, p);
		}
		return;
	}
	for (size_t b = 0; b < SWDEV_BUCKETS && m->st.entries; b++) {
		struct entry **p = &m->table[b];

		while (*p) {
			if ((*p)->page >= start && (*p)->page < end)
				zap_one_locked(m, p);
			else
				p = &(*p)->next;
		}
	}
}

void umn__mirror_swdev_free(struct umn_mirror *m)
{
	struct entry *e = m->all_entries;

	while (e) {
		struct entry *next = e->all;

		free(e);
		e = next;
	}
	m->all_entries = m->free_entries = NULL;
	memset(m->table, 0, sizeof(m->table));
	m->st.entries = 0;
}

/*
 * One access to the page holding @addr: @fn runs under the lock with the
 * page's entry once it has @prot, after as many device faults as it takes.
 */
typedef int (*access_fn)(struct entry *e, size_t off, void *arg);

static int access_page(struct umn_mirror *m, uintptr_t addr, unsigned prot,
		       access_fn fn, void *arg)
{
	uintptr_t page = addr & ~(m->page - 1);

	for (;;) {
		struct entry *e;
		int err;

		umn__mirror_lock(m);
		e = *lookup_locked(m, page);
		if (e && (e->prot & prot) == prot) {
			m->st.accesses++;
			err = fn(e, addr - page, arg);
			umn__mirror_unlock(m);
			return err;
		}
		umn__mirror_unlock(m);
		err = umn_mirror_fault(m, page, prot);
		if (err)
			return err;
	}
}

struct span {
	unsigned char *buf;
	size_t len;
	uintptr_t addr;
};

static int read_fn(struct entry *e, size_t off, void *arg)
{
	struct span *s = arg;

	memcpy(s->buf, e->data + off, s->len);
	return 0;
}

static int write_fn(struct entry *e, size_t off, void *arg)
{
	struct span *s = arg;
	int err = host_write(s->addr, s->buf, s->len);

	if (!err)
		memcpy(e->data + off, s->buf, s->len);
	return err;
}

static int check_span(struct umn_mirror *m, uintptr_t addr, const void *buf,
		      size_t len)
{
	if (!m || !buf || !len || addr + len < addr)
		return -EINVAL;
	if (m->ops)
		return -ENOTSUP;
	return umn__mirror_stale(m) ? -ESTALE : 0;
}

static int access_span(struct umn_mirror *m, uintptr_t addr, void *buf,
		       size_t len, unsigned prot, access_fn fn)
{
	while (len) {
		size_t room = m->page - (addr & (m->page - 1));
		struct span s = { buf, len < room ? len : room, addr };
		int err = access_page(m, addr, prot, fn, &s);

		if (err)
			return err;
		addr += s.len;
		buf = (unsigned char *)buf + s.len;
		len -= s.len;
	}
	return 0;
}

int umn_mirror_read(struct umn_mirror *m, uintptr_t addr, void *buf,
		    size_t len)
{
	int err = check_span(m, addr, buf, len);

	return err ? err : access_span(m, addr, buf, len, UMN_MIRROR_READ,
				       read_fn);
}

int umn_mirror_write(struct umn_mirror *m, uintptr_t addr, const void *buf,
		     size_t len)
{
	int err = check_span(m, addr, buf, len);

	return err ? err : access_span(m, addr, (void *)(uintptr_t)buf, len,
				       UMN_MIRROR_READ | UMN_MIRROR_WRITE,
				       write_fn);
}

struct add {
	uintptr_t addr;
	uint64_t add, old;
};

/*
 * The host word, not the copy: CPU stores since the fault are not in the
 * copy, and adding to it would write an old value back over them.  Under
 * the mirror lock, so no other device access of the mirror comes between
 * the read and the write.
 */
static int add_fn(struct entry *e, size_t off, void *arg)
{
	struct add *a = arg;
	uint64_t v;
	int err = umn__mirror_host_read(a->addr, &a->old, sizeof(a->old));

	if (err)
		return err;
	v = a->old + a->add;
	err = host_write(a->addr, &v, sizeof(v));
	if (!err)
		memcpy(e->data + off, &v, sizeof(v));
	return err;
}

int umn_mirror_atomic_add(struct umn_mirror *m, uintptr_t addr, uint64_t add,
			  uint64_t *old)
{
	struct add a = { addr, add, 0 };
	int err;

	if (!m || addr % sizeof(uint64_t))
		return -EINVAL;
	if (m->ops)
		return -ENOTSUP;
	if (umn__mirror_stale(m))
		return -ESTALE;
	err = access_page(m, addr, UMN_MIRROR_READ | UMN_MIRROR_WRITE, add_fn,
			  &a);
	if (!err && old)
		*old = a.old;
	return err;
}
