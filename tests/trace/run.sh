#!/bin/sh
# SPDX-License-Identifier: MIT
#
# run.sh BUILD_DIR - check `umn trace` against strace on real programs.
#
# For each program (python3 on workload.py, sort, cc, git), compare.py runs
# it under `strace -f -k` and `BUILD_DIR/umn trace` at once and checks, call
# for call, that the two agree, apart from the known gap it prints (the
# loader's own calls, and calls before the preload's constructor).
# Prints one line per program.  Exit status: 0 all agree, 1 a mismatch,
# 77 skipped (strace cannot trace here, or a program is missing).
set -u

if [ $# -ne 1 ]; then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
build=$(cd "$1" 2>/dev/null && pwd) || { echo "trace: $1: no such directory"; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)

if [ ! -x "$build/umn" ] || [ ! -f "$build/libumn-trace.so" ]; then
	echo "trace: $build/umn or $build/libumn-trace.so is missing (make O=$build)"
	exit 1
fi
for prog in strace python3 sort cc git; do
	if ! command -v "$prog" >/dev/null 2>&1; then
		echo "trace: skipped: $prog is not installed"
		exit 77
	fi
done
if ! strace -f -k -o /dev/null true >/dev/null 2>&1; then
	echo "trace: skipped: strace -f -k cannot trace here (no ptrace, or no stack traces):"
	strace -f -k -o /dev/null true 2>&1 | head -3
	exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/umn-trace-test.XXXXXX") || exit 1
export LC_ALL=C HOME="$work" GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=umn \
	GIT_AUTHOR_EMAIL=umn@localhost GIT_COMMITTER_NAME=umn \
	GIT_COMMITTER_EMAIL=umn@localhost
# The interpreter itself, not a wrapper script in front of it.
py=$(python3 -c 'import sys; print(sys.executable)')

cd "$work" || exit 1
python3 -c '
import random
random.seed(1)
with open("words", "w") as f:
    for i in range(200000):
        f.write("%08x %d\n" % (random.getrandbits(32), i))
' || exit 1
cat >"$work/hello.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	qsort(argv, (size_t)argc, sizeof(*argv), cmp);
	for (int i = 0; i < argc; i++)
		puts(argv[i]);
	return 0;
}
EOF
cat >"$work/git.sh" <<'EOF'
set -e
git init -q repo
cd repo
for i in 1 2 3 4 5; do seq 1 2000 | sed "s/^/line $i /" >"file$i"; done
git add .
git commit -q -m first
sed -i 's/line 3/LINE 3/' file3
git commit -q -a -m second
git log --stat >/dev/null
git gc -q
EOF

status=0
check() {
	name=$1
	shift
	python3 "$here/compare.py" "$build/umn" "$work" "$name" -- "$@" || status=1
}

# The command itself: text output, the summary, exit statuses.
cli() {
	"$build/umn" trace -o text.out -- "$py" -c 'b = bytearray(1 << 22); del b' \
		>/dev/null 2>summary.out || return 1
	events=$(grep -c ' 0x[0-9a-f]*-0x[0-9a-f]* ' text.out)
	total=$(awk '$1 == "total" { print $2 }' summary.out)
	grep -q '^ *[0-9.]* *[0-9]* *[0-9]* munmap  *unmap ' text.out &&
		grep -q '^  munmap  *unmap ' summary.out && [ "$events" = "$total" ] || return 1
	"$build/umn" trace -- sh -c 'exit 3' >/dev/null 2>&1
	[ $? -eq 3 ] || return 1
	"$build/umn" trace -- ./no-such-command >/dev/null 2>&1
	[ $? -eq 127 ]
}
if cli; then
	echo "cli: ok: text output and summary agree ($events events), exit statuses passed on"
else
	echo "cli: FAIL: see text.out and summary.out:"
	cat text.out summary.out
	status=1
fi

check python3 "$py" "$here/workload.py"
check sort sort -S 64M --parallel=2 -T "$work" -o sorted words
check cc cc -O2 -o hello hello.c
check git sh git.sh

cd / || exit 1
if [ $status -eq 0 ]; then
	rm -rf "$work"
else
	echo "trace: the runs' strace, trace and logs are in $work"
fi
exit $status
