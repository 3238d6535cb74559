#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Compare `umn trace` with strace, call for call.

    compare.py UMN WORKDIR NAME -- CMD [ARGS...]

Runs  strace -f -k -o WORKDIR/NAME.strace -e trace=<memory calls> \\
          UMN trace --json -o WORKDIR/NAME.trace -- CMD ARGS...
and checks, per thread and in order, that every system call which must
raise an event (the table in include/umn/monitor.h) appears in the trace with
a range that covers it, and that every traced event has such a call.

Not expected in the trace, and printed as the known gap:
  - calls whose innermost frame is in the dynamic loader (ld.so mapping,
    protecting and unmapping libraries, at start and in dlopen);
  - calls a program makes after execve() and before libumn-trace.so's
    constructor subscribed: the loader's, other libraries' constructors',
    and the monitor's own install.  The constructor marks that moment with
    madvise(0x756d6e000, 0, MADV_NORMAL).
The umn process itself and its child before execve() are not traced at all.

Prints one line for the program, then the gap, then any mismatch with the
call's stack.  Exit status 0 if they agree, 1 if not.
"""
import json
import os
import re
import subprocess
import sys

PAGE = os.sysconf("SC_PAGE_SIZE")
MARK_ADDR = 0x756D6E000
CALLS = ["munmap", "mremap", "madvise", "mprotect", "pkey_mprotect", "brk", "shmdt", "mmap"]
PROCS = ["execve", "execveat", "clone", "clone3", "fork", "vfork"]
CLEAR_ADVICE = {"MADV_DONTNEED", "MADV_FREE", "MADV_REMOVE", "MADV_DONTNEED_LOCKED",
                "0x4", "0x8", "0x9", "0x18", "4", "8", "9", "24"}
RET = re.compile(r"\) += ")
LOADER = re.compile(r"/ld(-linux[^/]*)?\.so[^/]*$")
UNMAP, CLEAR, PROTECTION, REMAP = "unmap", "clear", "protection", "remap"


def page_up(x):
    return (x + PAGE - 1) // PAGE * PAGE


def num(text):
    text = text.strip()
    if text == "NULL":
        return 0
    try:
        return int(text, 0)
    except ValueError:
        return None


def split_args(text):
    """Top-level comma-separated arguments of an strace call."""
    args, depth, cur, quote, esc = [], 0, [], False, False
    for ch in text:
        if quote:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                quote = False
            continue
        if ch == '"':
            quote = True
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if cur:
        args.append("".join(cur).strip())
    return args


class Call:
    def __init__(self, seq, tid, name, args):
        self.seq, self.tid, self.name, self.argtext = seq, tid, name, args
        self.ret, self.err = None, True
        self.frames = []  # innermost first, as strace -k prints them

    def finish(self, rest):
        # rest: "remaining args) = ret", padded before the "="; the last
        # such ") = " ends the arguments (a quoted argument may hold one).
        ends = list(RET.finditer(rest))
        if not ends:
            self.argtext += rest
            return
        self.argtext += rest[:ends[-1].start()]
        ret = (rest[ends[-1].end():].split() or ["?"])[0]
        self.ret = num(ret)
        self.err = self.ret is None or ret.startswith("-")

    @property
    def args(self):
        return split_args(self.argtext)

    def text(self):
        return "%s(%s)" % (self.name, self.argtext)

    @property
    def stack(self):
        """The file of each frame."""
        return [re.split(r"[( ]", f, maxsplit=1)[0] for f in self.frames]

    def innermost(self):
        return self.stack[0] if self.frames else ""


LINE = re.compile(r"^(\d+) +(.*)$")


def parse_strace(path):
    calls, pending, last = [], {}, None
    with open(path, errors="replace") as f:
        for seq, line in enumerate(f):
            line = line.rstrip("\n")
            if line.startswith(" > "):
                if last is not None:
                    last.frames.append(line[3:])
                continue
            m = LINE.match(line)
            if not m:
                continue
            tid, body = int(m.group(1)), m.group(2)
            last = None
            r = re.match(r"^<\.\.\. (\w+) resumed>(.*)$", body)
            if r:
                c = pending.pop(tid, None)
                if c is not None:
                    c.finish(r.group(2))
                    last = c
                continue
            r = re.match(r"^(\w+)\((.*)$", body)
            if not r:
                continue  # +++ exited, --- SIGNAL ---
            c = Call(seq, tid, r.group(1), "")
            rest = r.group(2)
            if rest.endswith(" <unfinished ...>"):
                c.argtext = rest[: -len(" <unfinished ...>")]
                pending[tid] = c
            else:
                c.finish(rest)
            calls.append(c)
            last = c
    return calls


class Space:
    """A process's address space as the comparison sees it."""

    def __init__(self, state, brk=None, exe=""):
        self.state, self.brk, self.exe = state, brk, exe
        self.loader_calls = 0
        self.untraced_calls = []


class Expect:
    def __init__(self, call, event, start, end, optional):
        self.call, self.event, self.start, self.end = call, event, start, end
        self.optional = optional
        self.matched = False


def expected_events(c, space):
    """The events a call must raise, by the table in umn/monitor.h."""
    a = c.args
    n = [num(x) for x in a]
    out = []

    def ev(event, start, end):
        if start is not None and end is not None and start < end:
            out.append((event, start, end))

    if c.name == "munmap" and len(a) >= 2 and n[1]:
        ev(UNMAP, n[0], n[0] + page_up(n[1]))
    elif c.name == "mmap" and len(a) >= 4 and "MAP_FIXED" in a[3].split("|") and n[1]:
        ev(UNMAP, n[0], n[0] + page_up(n[1]))
    elif c.name == "mremap" and len(a) >= 4:
        flags = a[3].split("|")
        old, osz, nsz = n[0], n[1], n[2]
        if None not in (old, osz, nsz):
            if "MREMAP_MAYMOVE" in flags:
                ev(REMAP, old, old + page_up(osz))
            elif page_up(nsz) < page_up(osz):
                ev(REMAP, old + page_up(nsz), old + page_up(osz))
            if "MREMAP_FIXED" in flags and len(a) >= 5:
                ev(UNMAP, n[4], n[4] + page_up(nsz))
    elif c.name == "madvise" and len(a) >= 3 and a[2].split()[0] in CLEAR_ADVICE and n[1]:
        ev(CLEAR, n[0], n[0] + page_up(n[1]))
    elif c.name in ("mprotect", "pkey_mprotect") and len(a) >= 2 and n[1]:
        ev(PROTECTION, n[0], n[0] + page_up(n[1]))
    elif c.name == "shmdt" and len(a) >= 1:
        ev(UNMAP, n[0], n[0] + 1)  # the segment's size is not in the call
    elif c.name == "brk" and len(a) >= 1:
        new, old = n[0], space.brk
        if new and c.ret == new and old is not None and page_up(new) < page_up(old):
            ev(UNMAP, page_up(new), page_up(old))
    return out


def clone_flags(c):
    if c.name == "vfork":
        return {"CLONE_VM"}
    m = re.search(r"flags=([A-Z0-9_|]+)", c.argtext)
    return set(m.group(1).split("|")) if m else set()


def is_mark(c):
    a = c.args
    return (c.name == "madvise" and len(a) >= 3 and num(a[0]) == MARK_ADDR
            and num(a[1]) == 0 and a[2] == "MADV_NORMAL")


def classify(calls):
    """Walk the calls in order; return expected events per tid and the gap."""
    spaces, births = {}, {}
    for c in calls:
        if c.name in ("clone", "clone3", "fork", "vfork") and not c.err and c.ret:
            births[c.ret] = (c.tid, clone_flags(c))
    expect, gap = {}, {"loader": [], "before": [], "install": []}
    untraced_processes = []
    root = calls[0].tid if calls else None

    def space_of(tid):
        if tid not in spaces:
            if tid == root:
                spaces[tid] = Space("untraced")
            elif tid in births and births[tid][0] in spaces:
                parent, flags = births[tid]
                ps = space_of(parent)
                if "CLONE_VM" in flags:
                    spaces[tid] = ps  # a thread or a vfork child: one space
                else:
                    spaces[tid] = Space(ps.state, ps.brk, ps.exe)
            else:
                spaces[tid] = Space("untraced")
        return spaces[tid]

    all_spaces = []
    for c in calls:
        sp = space_of(c.tid)
        if c.name in ("execve", "execveat"):
            if c.ret == 0:
                sp = spaces[c.tid] = Space("loading", exe=c.args[0].strip('"'))
                all_spaces.append(sp)
            continue
        if c.name not in CALLS:
            continue
        if is_mark(c):
            sp.state = "traced"
            continue
        events = expected_events(c, sp)
        if c.name == "brk" and c.ret:
            sp.brk = c.ret
        if not events or sp.state == "untraced":
            continue
        if LOADER.search(c.innermost()):
            gap["loader"].append(c)
            sp.loader_calls += 1
        elif sp.state == "loading":
            if any("libumn-trace" in p for p in c.stack):
                gap["install"].append(c)
            else:
                gap["before"].append(c)
                sp.untraced_calls.append(c)
        else:
            optional = c.err
            lst = expect.setdefault(c.tid, [])
            lst.append((c, [Expect(c, e, s, t, optional) for e, s, t in events]))
    for sp in all_spaces:
        # A dynamically linked program that never subscribed, yet ran code.
        if sp.state == "loading" and sp.loader_calls and sp.untraced_calls:
            untraced_processes.append(sp)
    return expect, gap, untraced_processes


def read_trace(path):
    events, execs = {}, 0
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if "exec" in rec:
                execs += 1
            if "event" not in rec:
                continue
            rec["start"], rec["end"] = int(rec["start"], 16), int(rec["end"], 16)
            rec["used"] = False
            events.setdefault(rec["tid"], []).append(rec)
    return events, execs


def matches(rec, e):
    call = rec["call"].split(":", 1)[-1]
    return (rec["event"] == e.event and call == e.call.name
            and rec["start"] <= e.start and rec["end"] >= e.end)


def compare(expect, events):
    matched, via_syscall, missed, spurious = 0, 0, [], []
    for tid in sorted(set(expect) | set(events)):
        recs = events.get(tid, [])
        j = 0
        for c, exps in expect.get(tid, []):
            last = None
            for e in exps:
                k = next((k for k in range(j, len(recs))
                          if not recs[k]["used"] and matches(recs[k], e)), None)
                if k is None:
                    if not e.optional:
                        missed.append(e)
                    continue
                recs[k]["used"] = True
                matched += 1
                via_syscall += recs[k]["call"].startswith("syscall:")
                last = k if last is None else max(last, k)
            if last is not None:
                spurious += [r for r in recs[j:last] if not r["used"]]
                j = last + 1
        spurious += [r for r in recs[j:] if not r["used"]]
    return matched, via_syscall, missed, spurious


def tally(calls):
    counts = {}
    for c in calls:
        key = c.name
        if c.name == "mmap":
            key = "mmap MAP_FIXED"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join("%d %s" % (n, k) for k, n in sorted(counts.items())) or "none"


def show_call(c, why):
    ret = "?" if c.ret is None else "%#x" % c.ret if c.ret > 4096 else str(c.ret)
    print("    %s: tid %d: %s = %s" % (why, c.tid, c.text(), ret))
    for frame in c.frames[:8]:
        print("        " + frame)


def main():
    if len(sys.argv) < 6 or sys.argv[4] != "--":
        sys.exit(__doc__)
    umn, work, name, cmd = (os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]),
                             sys.argv[3], sys.argv[5:])
    spath = os.path.join(work, name + ".strace")
    tpath = os.path.join(work, name + ".trace")
    log = os.path.join(work, name + ".log")
    argv = ["strace", "-f", "-k", "-qq", "-e", "signal=none", "-o", spath,
            "-e", "trace=" + ",".join(CALLS + PROCS),
            umn, "trace", "--json", "-o", tpath, "--"] + cmd
    with open(log, "w") as out:
        rc = subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT, cwd=work)
    if rc != 0:
        print("%s: FAIL: exited %d (see %s):" % (name, rc, log))
        with open(log) as f:
            print("".join(f.readlines()[-15:]), end="")
        return 1

    calls = parse_strace(spath)
    expect, gap, untraced = classify(calls)
    events, execs = read_trace(tpath)
    matched, via_syscall, missed, spurious = compare(expect, events)
    ok = not missed and not spurious and not untraced and matched > 0 and execs > 0
    print("%s: %s: %d calls matched events (%d via syscall()), %d missed, "
          "%d events without a call; %d programs traced"
          % (name, "ok" if ok else "FAIL", matched, via_syscall, len(missed),
             len(spurious), execs))
    print("  known gap, not seen by the patch monitor (the userfaultfd source will see them):")
    print("    the loader's own calls (innermost frame in ld.so): " + tally(gap["loader"]))
    print("    before libumn-trace.so's constructor subscribed: " + tally(gap["before"]))
    print("    the monitor's own install, in that constructor: " + tally(gap["install"]))
    if matched == 0:
        print("  FAIL: no call to compare: the program raised no event")
    if execs == 0:
        print("  FAIL: no program was traced")
    for sp in untraced:
        print("  FAIL: %s was loaded with the preload but never subscribed" % sp.exe)
        for c in sp.untraced_calls[:3]:
            show_call(c, "untraced")
    for e in missed[:20]:
        show_call(e.call, "missed %s [%#x, %#x)" % (e.event, e.start, e.end))
    for r in spurious[:20]:
        print("    event without a call: tid %d: %s %s [%#x, %#x)"
              % (r["tid"], r["call"], r["event"], r["start"], r["end"]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
