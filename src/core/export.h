/* SPDX-License-Identifier: MIT */
/*
 * export.h — what the library's other layers may use of the core beyond
 * include/umn/umn.h.  Hidden symbols: not part of the ABI.
 */
#ifndef UMN_CORE_EXPORT_H
#define UMN_CORE_EXPORT_H

#include <stdbool.h>
#include <stddef.h>

#include <umn/umn.h>

/*
 * Make @mm permanent: umn_mm_free() refuses it with -EBUSY.  For the
 * process space, which the monitor's wrappers use for the whole life of the
 * process.  Call before publishing @mm.
 */
void umn__mm_pin(struct umn_mm *mm);

/*
 * Is the calling thread inside a walk of @mm (between range_start and
 * range_end, so also inside one of its callbacks) or a ->release() of it?
 * Then anything that waits for the space's walks to end would wait for
 * itself: layers built on the core return -EDEADLK instead, as remove and
 * synchronize do.
 */
bool umn__thread_inside(const struct umn_mm *mm);

/*
 * What two copies of the core must agree on to work on one space: the
 * layout of struct umn_mm, and the revision of the protocol it follows
 * (bump UMN__CORE_PROTOCOL with any change to either that sizes miss).
 */
#define UMN__CORE_PROTOCOL 2
size_t umn__mm_size(void);

#endif /* UMN_CORE_EXPORT_H */
