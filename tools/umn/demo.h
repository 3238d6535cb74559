/* SPDX-License-Identifier: MIT */
/*
 * demo.h — the `umn demo` scenarios, each in its own file, called by
 * umn.c's main() with argv[0] the scenario's name.
 */
#ifndef UMN_TOOLS_DEMO_H
#define UMN_TOOLS_DEMO_H

/*
 * umn demo uring [--mmap] [--steps N]: the stale io_uring fixed buffer,
 * through a naive cache and through umn's (demo_uring.c).  0 when umn's
 * cache lost nothing, 1 when it did, 2 on bad usage or a failed run,
 * 77 when io_uring or the process monitor is unavailable here.
 */
int umn_demo_uring(int argc, char **argv);

#endif /* UMN_TOOLS_DEMO_H */
