/* SPDX-License-Identifier: MIT */
/*
 * Atomics named by their memory order, so that every access says what it
 * relies on.  Thin wrappers over C11 <stdatomic.h>; nothing here is clever.
 */
#ifndef UMN_SYS_ATOMIC_H
#define UMN_SYS_ATOMIC_H

#include <stdatomic.h>

#define atomic_load_relaxed(p)     atomic_load_explicit((p), memory_order_relaxed)
#define atomic_load_acquire(p)     atomic_load_explicit((p), memory_order_acquire)
#define atomic_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define atomic_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define atomic_exchange_relaxed(p, v) \
	atomic_exchange_explicit((p), (v), memory_order_relaxed)
/* Weak CAS, release on success, relaxed on failure. */
#define atomic_cas_weak_release(p, expected, desired)                        \
	atomic_compare_exchange_weak_explicit((p), (expected), (desired),     \
					      memory_order_release,           \
					      memory_order_relaxed)

#endif /* UMN_SYS_ATOMIC_H */
