#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""kernel/mutants.py [OUT] - check that the KUnit suite catches breakage.

Run after `make kernel-check` (OUT defaults to build/kernel, the tree it
patched and built). Each mutant breaks one promise of patches 1-4 in
mm/mmu_notifier.c, rebuilds UML incrementally and runs the suite; every
mutant must make at least one case fail. The file is restored at the end.
About 20 s a mutant on 2 cores.
"""
import os
import re
import subprocess
import sys

out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else 'build/kernel')
here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(out, 'linux-source-6.1')
path = os.path.join(src, 'mm', 'mmu_notifier.c')
orig = open(path).read()

muts={
 'put_releases_at_once': ('''	if (deferred)
		return;
	interval_sub->ops->release(interval_sub);''','''	interval_sub->ops->release(interval_sub);
	if (deferred)
		return;'''),
 'update_not_deferred': ('''	} else if (mn_itree_is_invalidating(subscriptions)) {
		interval_sub->deferred_start = start;''','''	} else if (0) {
		interval_sub->deferred_start = start;'''),
 'synchronize_no_wait': ('''	wait_event(subscriptions->wq, mn_itree_puts_released(subscriptions));''','''	(void)mn_itree_puts_released;'''),
 'update_no_seq_full': ('''		/* As for a deferred insert, see mmu_interval_read_begin(). */
		WRITE_ONCE(interval_sub->invalidate_seq,
			   subscriptions->invalidate_seq);''',''),
 'update_no_seq_partial': ('''		if (subscriptions->active_invalidate_ranges) {
			subscriptions->invalidate_seq |= 1;''','''		if (0) {
			subscriptions->invalidate_seq |= 1;'''),
 'no_release_at_end': ('''	mn_itree_release_puts(subscriptions, &puts);''','''	(void)puts;'''),
 'remove_keeps_queued_update': ('''			interval_sub->deferred_flags = MMU_INTERVAL_REMOVE;''', '''			interval_sub->deferred_flags |= MMU_INTERVAL_REMOVE;'''),
 'put_deferred_when_partial': ('''	if (!mn_itree_is_invalidating(subscriptions)) {
		/*
		 * No walker is in the itree''', '''	if (!subscriptions->active_invalidate_ranges) {
		/*
		 * No walker is in the itree'''),
 'itree_walk_left_open': ('''		if (ret && subscriptions->has_itree)
			mn_itree_inv_end(subscriptions);''', '''		if (0)
			mn_itree_inv_end(subscriptions);'''),
 'update_first_wins': ('''		interval_sub->deferred_start = start;
		interval_sub->deferred_last = last;''','''		if (!(interval_sub->deferred_flags & MMU_INTERVAL_UPDATE)) {
			interval_sub->deferred_start = start;
			interval_sub->deferred_last = last;
		}'''),
}

survivors = []
try:
    for name, (good, bad) in muts.items():
        if orig.count(good) != 1:
            sys.exit('mutant %s: its code is not in %s once' % (name, path))
        with open(path, 'w') as f:
            f.write(orig.replace(good, bad))
        log_path = os.path.join(out, 'uml', 'test.log')
        if os.path.exists(log_path):
            os.unlink(log_path)
        subprocess.run(
            ['python3', 'tools/testing/kunit/kunit.py', 'run',
             '--kunitconfig=' + os.path.join(here, 'kunitconfig'),
             '--build_dir=' + os.path.join(out, 'uml'), '--jobs=%d' % os.cpu_count(),
             '--timeout=120'],
            cwd=src, capture_output=True, text=True)
        if not os.path.exists(log_path):
            print('%-26s did not build or boot' % name, flush=True)
            survivors.append(name)
            continue
        log = open(log_path).read()
        failed = re.findall(r'^\s+not ok \d+ (\S+)', log, re.M)
        finished = re.search(r'^(not )?ok \d+ mmu_interval_notifier$', log,
                             re.M)
        if failed:
            verdict = 'caught by ' + ', '.join(failed)
        elif not finished:
            # kernel-check fails on this too: the suite never reports.
            verdict = 'caught: the suite hung or crashed'
        else:
            verdict = 'SURVIVED'
            survivors.append(name)
        print('%-26s %s' % (name, verdict), flush=True)
finally:
    with open(path, 'w') as f:
        f.write(orig)
sys.exit(1 if survivors else 0)
