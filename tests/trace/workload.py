# SPDX-License-Identifier: MIT
"""What tests/trace/run.sh runs under python3: every call the monitor wraps.

Through Python's own allocator, libc's malloc and free, threads, the mmap
module, and libc's functions (syscall() included) called with ctypes; then a
fork child and a subprocess (whose default close_fds makes the preload
connect to `umn trace` instead of using the inherited socket).
"""
import ctypes
import mmap
import os
import subprocess
import threading

PAGE = mmap.PAGESIZE
SYS = {"x86_64": {"mprotect": 10, "munmap": 11, "madvise": 28},
       "aarch64": {"mprotect": 226, "munmap": 215, "madvise": 233}}.get(os.uname().machine)
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
MADV_DONTNEED = 4

libc = ctypes.CDLL(None, use_errno=True)
for name in ("mmap", "mremap", "sbrk", "shmat"):
    getattr(libc, name).restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int,
                        ctypes.c_void_p]
for name in ("munmap", "madvise", "mprotect"):
    getattr(libc, name).argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int][
        : 2 if name == "munmap" else 3]
libc.sbrk.argtypes = [ctypes.c_long]
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]


def anon(size):
    return libc.mmap(None, size, 3, 0x22, -1, 0)  # read|write, private|anonymous


def python_objects():
    blocks = [bytearray(1 << 20) for _ in range(8)]  # malloc'd by mmap
    del blocks
    buf = bytearray(1 << 20)
    for _ in range(4):
        buf += bytes(1 << 20)  # realloc of a mapped chunk: mremap
    del buf
    small = [bytes(600) + bytes([i % 256]) for i in range(20000)]  # the brk heap
    del small
    libc.malloc_trim(0)


def mmap_module():
    m = mmap.mmap(-1, 1 << 20)
    m.madvise(mmap.MADV_DONTNEED)
    try:
        m.madvise(mmap.MADV_REMOVE)  # shared memory: punch a hole
    except (AttributeError, OSError):
        pass
    m.resize(2 << 20)
    m.close()


def libc_calls():
    a = anon(16 * PAGE)
    libc.mprotect(a, PAGE, 1)
    libc.madvise(a + PAGE, 2 * PAGE, MADV_DONTNEED)
    a = libc.mremap(a, 16 * PAGE, 8 * PAGE, 0, None)  # shrink in place
    b = anon(8 * PAGE)
    a = libc.mremap(a, 8 * PAGE, 8 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, b)
    if hasattr(libc, "pkey_mprotect"):
        libc.pkey_mprotect(ctypes.c_void_p(a), ctypes.c_size_t(PAGE), 1, 0)  # the default key
    if SYS:
        libc.syscall(SYS["mprotect"], ctypes.c_void_p(a), ctypes.c_size_t(PAGE), 3)
        libc.syscall(SYS["madvise"], ctypes.c_void_p(a), ctypes.c_size_t(PAGE), MADV_DONTNEED)
        libc.syscall(SYS["munmap"], ctypes.c_void_p(a), ctypes.c_size_t(4 * PAGE))
    libc.munmap(a + 4 * PAGE, 4 * PAGE)
    fixed = anon(4 * PAGE)
    libc.mmap(fixed, 4 * PAGE, 3, 0x32, -1, 0)  # MAP_FIXED over our own pages
    libc.munmap(fixed, 4 * PAGE)


def brk_and_shm():
    top = libc.sbrk(0)
    if libc.sbrk(64 * PAGE) == top:
        libc.sbrk(-64 * PAGE)  # brk shrinks: 64 pages leave
    shm = libc.shmget(0, 4 * PAGE, 0o600 | 0o1000)  # IPC_PRIVATE, IPC_CREAT
    if shm >= 0:
        at = libc.shmat(shm, None, 0)
        libc.shmctl(shm, 0, None)  # IPC_RMID
        if at not in (None, ctypes.c_void_p(-1).value):
            libc.shmdt(at)


def worker():
    chunks = [bytearray(200 << 10) for _ in range(20)]  # a thread arena's heap
    del chunks


def threads():
    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


python_objects()
mmap_module()
libc_calls()
brk_and_shm()
threads()
pid = os.fork()
if pid == 0:
    python_objects()
    libc_calls()
    os._exit(0)
os.waitpid(pid, 0)
subprocess.run(["python3", "-c", "b = bytearray(1 << 22); del b"], check=True)
