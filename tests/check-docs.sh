#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check-docs.sh LIB - check that the public API of a built libumn.so is
# documented.  LIB is the shared library, e.g. build/libumn.so.
#
#   (a) LIB exports only umn_* symbols (the version node, e.g. UMN_0.1, is
#       not a symbol of ours and is skipped);
#   (b) every exported function has a kernel-doc block in include/umn/*.h:
#       a "/**" comment whose first line is " * <name>() - ...", closed on
#       the line right above the declaration, with a "Context:" and a
#       "Return:" line;
#   (c) every exported function has man/man3/<name>.3, titled <name>;
#   (d) every page in man/man3 renders without groff warnings (skipped, with
#       a note on stderr, when groff is not installed).
#
# Prints one line per problem.  Exit status: 0 no problem, 1 problems found,
# 2 the check could not run (usage, missing library or tool).
set -u

if [ $# -ne 1 ]; then
	echo "usage: $0 path/to/libumn.so" >&2
	exit 2
fi
lib=$1
case $lib in
/*) ;;
*) lib=$PWD/$lib ;;
esac

cd "$(dirname "$0")/.." || exit 2
export LC_ALL=C

if [ ! -f "$lib" ]; then
	echo "check-docs: $1: no such file" >&2
	exit 2
fi
if ! command -v nm >/dev/null 2>&1; then
	echo "check-docs: nm not found (binutils)" >&2
	exit 2
fi
if ! syms=$(nm -D --defined-only "$lib"); then
	echo "check-docs: nm -D failed on $1" >&2
	exit 2
fi

problems=0
problem() {
	echo "$*"
	problems=$((problems + 1))
}

# (a) Exported symbols.  nm prints "address type name", and recent binutils
# append the version to the name ("umn_mm_new@@UMN_0.1").
funcs=()
while read -r type name; do
	name=${name%%@*}
	if [ "$type" = A ] && [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*_[0-9]+(\.[0-9]+)*$ ]]; then
		continue # version node
	fi
	if [[ $name != umn_* ]]; then
		problem "$1: exports $name, which is not a umn_* symbol"
		continue
	fi
	case $type in
	T | W | i) funcs+=("$name") ;;
	esac
done < <(awk 'NF >= 2 { print $(NF - 1), $NF }' <<<"$syms")

if [ ${#funcs[@]} -eq 0 ]; then
	problem "$1: exports no umn_* function"
fi

# (b) Kernel-doc blocks.  One record per "/** name() - ..." block:
#   name <TAB> file:line <TAB> ok | missing parts, comma-separated
shopt -s nullglob
headers=(include/umn/*.h)
docs=$(awk '
	function flush(after) {
		if (name == "")
			return
		bad = ""
		if (!ctx)
			bad = bad ",no Context: line"
		if (!ret)
			bad = bad ",no Return: line"
		pat = "(^|[^A-Za-z0-9_])" name "[ \t]*\\("
		if (after !~ pat)
			bad = bad ",not immediately above the declaration of " name "()"
		printf "%s\t%s:%d\t%s\n", name, wfile, where, bad == "" ? "ok" : substr(bad, 2)
		name = ""
	}
	FNR == 1 { if (closed) flush(""); closed = inblk = 0 }
	closed { closed = 0; flush($0) }
	/^[ \t]*\/\*\*[ \t]*$/ { inblk = 1; first = 1; name = ""; ctx = ret = 0; where = FNR; wfile = FILENAME; next }
	inblk && /^[ \t]*\*\// { inblk = 0; closed = 1; next }
	inblk {
		if (first) {
			first = 0
			if ($0 ~ /^[ \t]*\*[ \t]+[A-Za-z_][A-Za-z0-9_]*\(\) - ./) {
				name = $0
				sub(/^[ \t]*\*[ \t]+/, "", name)
				sub(/\(\).*/, "", name)
			}
		}
		if ($0 ~ /^[ \t]*\*[ \t]+Context:/)
			ctx = 1
		if ($0 ~ /^[ \t]*\*[ \t]+Return:/)
			ret = 1
	}
	END { if (closed) flush("") }
' "${headers[@]}" /dev/null)

for f in "${funcs[@]}"; do
	recs=$(awk -F '\t' -v n="$f" '$1 == n' <<<"$docs")
	if [ -z "$recs" ]; then
		problem "$f: no kernel-doc block (\"/**\" then \" * $f() - ...\") in include/umn/*.h"
	elif ! awk -F '\t' '$3 == "ok" { found = 1 } END { exit !found }' <<<"$recs"; then
		while IFS=$'\t' read -r _ loc what; do
			IFS=, read -ra list <<<"$what"
			for w in "${list[@]}"; do
				problem "$loc: kernel-doc of $f(): $w"
			done
		done <<<"$recs"
	fi
done

# (c) Man pages.
for f in "${funcs[@]}"; do
	page=man/man3/$f.3
	if [ ! -f "$page" ]; then
		problem "$f: no man page $page"
	elif ! grep -Eq "^\.TH \"?$f\"? 3( |$)" "$page"; then
		problem "$page: no \".TH $f 3\" title line"
	fi
done

# (d) Every page renders cleanly.
if command -v groff >/dev/null 2>&1; then
	for page in man/man3/*.3; do
		while IFS= read -r w; do
			[ -n "$w" ] && problem "$page: groff: $w"
		done < <(groff -man -Tutf8 -ww -z "$page" 2>&1)
	done
else
	echo "check-docs: groff not found; man page rendering not checked" >&2
fi

[ "$problems" -eq 0 ]
