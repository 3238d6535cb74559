#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# kernel/check.sh [OUT] - test the patch series against Debian's
# linux-source-6.1 (apt-get install linux-source-6.1), in OUT
# (default build/kernel), which is wiped first:
#
#  1. every patch applies with git apply and checkpatch.pl --strict reports
#     nothing;
#  2. every patch builds on its own: after each one, the objects it touches
#     (and mm/mmu_notifier.o) compile with -Werror for x86_64;
#  3. the KUnit suite runs under UML, judged by the KTAP lines in the build
#     directory's test.log (kunit.py in 6.1 can misreport a passing suite);
#  4. lib/test_hmm.o compiles for x86_64 (it needs ZONE_DEVICE, which UML
#     lacks) and the hmm selftests compile against the patched headers.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-build/kernel}
tarball=${LINUX_SOURCE_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
jobs=$(nproc)

step() { printf '== kernel-check: %s\n' "$*"; }
fail() { printf 'kernel-check: FAIL: %s\n' "$*" >&2; exit 1; }

[ -r "$tarball" ] || fail "$tarball is missing: apt-get install linux-source-6.1"
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "${out:?}"/*
src=$out/linux-source-6.1
x86=$out/x86

# OUT is usually inside umn's own work tree: keep git from finding that
# repository, or git apply would patch paths relative to it and skip ours.
export GIT_CEILING_DIRECTORIES=$out

step "unpacking $(basename "$tarball")"
tar -C "$out" -xf "$tarball"

# x86_64 with everything the series touches: KVM selects MMU_NOTIFIER,
# test_hmm needs device-private memory. Re-run after each patch, since a
# patch may add a symbol.
configure_x86() {
	[ -f "$x86/.config" ] || make -s -C "$src" O="$x86" defconfig
	"$src/scripts/config" --file "$x86/.config" \
		-e VIRTUALIZATION -e KVM -e KVM_INTEL -e TRANSPARENT_HUGEPAGE \
		-e MEMORY_HOTPLUG -e MEMORY_HOTREMOVE -e ZONE_DEVICE \
		-e DEVICE_PRIVATE -m TEST_HMM \
		-e KUNIT -e MMU_INTERVAL_NOTIFIER_KUNIT_TEST
	make -s -C "$src" O="$x86" olddefconfig
}

build_x86() {
	make -s -C "$src" O="$x86" -j"$jobs" KCFLAGS=-Werror "$@"
}

patches=("$here"/[0-9][0-9][0-9][0-9]-*.patch)
[ "${#patches[@]}" -gt 1 ] || fail "no patches in $here"
for p in "${patches[@]}"; do
	name=$(basename "$p")
	[[ $name == 0000-* ]] && continue
	step "$name"

	report=$(cd "$src" && ./scripts/checkpatch.pl --strict "$p" || true)
	grep -q '^total: 0 errors, 0 warnings, 0 checks' <<<"$report" ||
		{ printf '%s\n' "$report" >&2; fail "checkpatch: $name"; }

	(cd "$src" && git apply --check "$p" && git apply "$p" &&
		git apply --check --reverse "$p") ||
		fail "does not apply: $name"

	objs=(mm/mmu_notifier.o)
	while read -r _ _ file; do
		case $file in
		tools/*) ;;
		mm/mmu_notifier.c) ;;
		*.c) objs+=("${file%.c}.o") ;;
		esac
	done < <(cd "$src" && git apply --numstat "$p")
	configure_x86
	build_x86 "${objs[@]}" || fail "$name does not build: ${objs[*]}"
done

step "KUnit under UML"
(cd "$src" && python3 tools/testing/kunit/kunit.py run \
	--kunitconfig="$here/kunitconfig" --build_dir="$out/uml" \
	--jobs="$jobs" --timeout=300) || true
log=$out/uml/test.log
[ -f "$log" ] || fail "UML did not run: no $log"
cases=$(grep -c 'KUNIT_CASE(' "$src/mm/mmu_interval_notifier_kunit.c")
passed=$(grep -Ec '^[[:space:]]+ok [0-9]+ ' "$log" || true)
if grep -Eq '^[[:space:]]*not ok ' "$log" ||
   ! grep -Eq '^ok [0-9]+ mmu_interval_notifier$' "$log" ||
   [ "$passed" -ne "$cases" ]; then
	grep -E '(not )?ok |Expected|ASSERT|BUG|WARNING' "$log" >&2 || true
	fail "KUnit: $passed of $cases cases passed (see $log)"
fi
step "KUnit: $passed of $cases cases passed"

step "x86_64: lib/test_hmm.o"
configure_x86
build_x86 lib/test_hmm.o mm/mmu_notifier.o mm/mmu_interval_notifier_kunit.o

step "hmm selftests"
make -s -C "$src" O="$out/hdr" headers_install INSTALL_HDR_PATH="$out/hdr/usr"
sel=$src/tools/testing/selftests
gcc -Wall -Werror -I"$sel" -I"$src" -isystem "$out/hdr/usr/include" \
	-o "$out/hmm-tests" "$sel/vm/hmm-tests.c" -lrt -lpthread ||
	fail "hmm-tests does not compile"

step "PASS"
