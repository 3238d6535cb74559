#!/usr/bin/env bash
# The whole test suite, as `make check` and .ci/run run it:
#   1. every test under AddressSanitizer + UBSan (gcc, -Werror)
#   2. every test under ThreadSanitizer (clang, -Werror)
#   3. plain builds with gcc and clang (-Werror), examples run from both
#   4. the library cross-compiled for aarch64
#   5. exported symbols, kernel-doc blocks and man pages (tests/check-docs.sh)
#   6. make install into a scratch root, then a program built with pkg-config
#   7. the monitor suite in the plain builds too (glibc's own malloc paths),
#      and umn trace against strace (tests/trace/run.sh)
# The monitor suite does not run under ThreadSanitizer: its runtime tears a
# thread's state down before glibc's thread exit calls madvise on the
# stack, and an instrumented wrapper run there crashes.  The core, where
# the concurrency is, runs under it in full.
# Ends with one line: "N passed, N failed, N skipped".
# UMN_STRESS_SECONDS bounds each stress test (default 2).
set -u
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
passed=0 failed=0 skipped=0
log=build/test-logs
mkdir -p "$log"

pass() { passed=$((passed + $1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
skip() { skipped=$((skipped + 1)); echo "SKIP: $*"; }

# build NAME MAKE-ARGS...: a build step that counts as one test.
build() {
	local name=$1; shift
	if make -s -j"$jobs" WERROR=1 "$@" >"$log/$name.build" 2>&1; then
		pass 1
		return 0
	fi
	fail "build $name (see $log/$name.build)"
	tail -20 "$log/$name.build"
	return 1
}

# run_cmocka VARIANT BINARY: count cmocka's tests; a non-zero exit with no
# failed test (a sanitizer report at exit, a crash) counts as one failure.
run_cmocka() {
	local variant=$1 bin=$2 out rc p f s
	out="$log/$variant-$(basename "$bin").log"
	"$bin" >"$out" 2>&1
	rc=$?
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
	pass "${p:-0}"
	if [ "$rc" -eq 77 ]; then
		skip "$variant $(basename "$bin")"
	elif [ "${f:-0}" -gt 0 ]; then
		failed=$((failed + f))
		echo "FAIL: $variant $(basename "$bin"): $f test(s) (see $out)"
		grep -E '^\[  (FAILED|  ERROR) \]|^\[  ERROR   \]' "$out" | head
	elif [ "$rc" -ne 0 ]; then
		fail "$variant $(basename "$bin") exited $rc (see $out)"
		grep -E 'Sanitizer|ERROR|runtime error' "$out" | head -5
	elif [ "${s:-0}" -gt 0 ]; then
		# cmocka's own skips (skip() inside a test): count each one.
		skipped=$((skipped + s))
		echo "SKIP: $variant $(basename "$bin"): $s test(s) (see $out)"
	fi
	echo "  $variant $(basename "$bin"): ${p:-0} passed, ${f:-0} failed${s:+, $s skipped}"
}

# suite VARIANT CC SAN LAYERS...: build the tests, run those of LAYERS.
suite() {
	local variant=$1 cc=$2 san=$3 layer t
	shift 3
	echo "== tests under $variant ($cc)"
	build "$variant" O="build/$variant" CC="$cc" SAN="$san" tests || return
	for layer in "$@"; do
		for t in build/"$variant"/tests/"$layer"/*; do
			[ -x "$t" ] && run_cmocka "$variant" "$t"
		done
	done
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

suite asan gcc asan core monitor rcache uring mirror
suite tsan clang tsan core rcache uring mirror

for cc in gcc clang; do
	echo "== plain build and examples ($cc)"
	if build "$cc" O="build/$cc" CC="$cc" all; then
		for ex in build/"$cc"/examples/*; do
			[ -x "$ex" ] || continue
			if "$ex" >"$log/$cc-$(basename "$ex").log" 2>&1; then
				pass 1
				echo "  example $(basename "$ex"): ok"
			else
				fail "example $(basename "$ex") ($cc)"
			fi
		done
		if make -s -j"$jobs" WERROR=1 O="build/$cc" CC="$cc" tests \
			build/"$cc"/tests/static/static_program \
			>>"$log/$cc.build" 2>&1; then
			for t in build/"$cc"/tests/monitor/* build/"$cc"/tests/rcache/process_* \
				build/"$cc"/tests/uring/* build/"$cc"/tests/mirror/*; do
				[ -x "$t" ] && run_cmocka "$cc" "$t"
			done
			if build/"$cc"/tests/static/static_program \
				>"$log/$cc-static.log" 2>&1; then
				pass 1
				echo "  static program: ok"
			else
				fail "$cc static program (see $log/$cc-static.log)"
			fi
		else
			fail "build $cc tests (see $log/$cc.build)"
		fi
	fi
done

echo "== umn trace against strace"
tests/trace/run.sh build/gcc >"$log/trace.log" 2>&1
case $? in
0) pass 1; sed 's/^/  /' "$log/trace.log" | head -20 ;;
77) skip "umn trace: $(tail -1 "$log/trace.log")" ;;
*) fail "umn trace against strace (see $log/trace.log)"; tail -20 "$log/trace.log" ;;
esac

echo "== aarch64 cross build"
if command -v aarch64-linux-gnu-gcc >/dev/null; then
	if build aarch64 O=build/aarch64 CC=aarch64-linux-gnu-gcc \
		AR=aarch64-linux-gnu-ar CROSS=1 lib; then
		if file -L build/aarch64/libumn.so | grep -q 'ARM aarch64'; then
			pass 1
			echo "  build/aarch64/libumn.so: ARM aarch64"
		else
			fail "build/aarch64/libumn.so is not an aarch64 object"
		fi
	fi
else
	skip "aarch64 cross build: aarch64-linux-gnu-gcc is not installed"
fi

echo "== exports, kernel-doc and man pages"
if [ -f build/gcc/libumn.so ] && tests/check-docs.sh build/gcc/libumn.so; then
	pass 1
	echo "  only umn_* exported; every function has kernel-doc and a man page"
else
	fail "tests/check-docs.sh"
fi

if [ -f build/gcc/libumn_uring.so ]; then
	if tests/check-docs.sh build/gcc/libumn_uring.so; then
		pass 1
		echo "  libumn_uring: only umn_* exported, each documented"
	else
		fail "tests/check-docs.sh build/gcc/libumn_uring.so"
	fi
else
	skip "libumn_uring: not built (liburing-dev is not installed)"
fi

echo "== make install and pkg-config"
# A prefix outside /usr: pkg-config drops -I/usr/include as a system path.
root=$(mktemp -d) prefix=/opt/umn
if make -s O=build/gcc PREFIX=$prefix DESTDIR="$root" install >"$log/install" 2>&1 &&
	[ -f "$root$prefix/share/man/man3/umn_interval_put.3" ] &&
	[ -L "$root$prefix/lib/libumn.so.0" ] &&
	flags=$(PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_LIBDIR="$root$prefix/lib/pkgconfig" \
		pkg-config --cflags --libs umn) &&
	gcc -std=c11 -Werror -Wall examples/seed_mirror.c $flags -o "$root/seed" \
		>>"$log/install" 2>&1 &&
	LD_LIBRARY_PATH="$root$prefix/lib" "$root/seed" >/dev/null &&
	readelf -d "$root/seed" | grep -q 'libumn.so.0'; then
	pass 1
	echo "  installed, built with pkg-config against libumn.so.0, ran"
else
	fail "make install / pkg-config (see $log/install)"
fi
rm -rf "$root"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
