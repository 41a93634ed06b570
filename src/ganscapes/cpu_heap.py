"""Large CPU tensors from a heap the process keeps, instead of fresh pages from the kernel.

glibc's `malloc` serves every request above its mmap threshold with a new mapping and
unmaps it on `free` (`mallopt(3)`: the threshold adapts but never exceeds 32 MB on
64-bit systems). A CPU training iteration allocates and frees the same few hundred
activations every time, and at 64² and above many are larger than that (an
[8, 128, 128, 128] float32 activation at 128² holds 64 MB). Each then comes back from
the kernel as untouched pages, which it zero-fills one page fault at a time on first
write: adding a bias into a fresh 64 MB tensor took 38.7 ms on a 2-core VM, against
5.2 ms into memory the process had used before. Over a training iteration at 128² that
was about 15 % of the time (`benchmarks/train_phases.py`, README).

`keep_freed_memory()` tells glibc to take large blocks from the heap too
(`M_MMAP_MAX` 0) and never to give freed memory back (`M_TRIM_THRESHOLD` -1), which is
what the allocators PyTorch's CPU performance guide recommends (jemalloc, tcmalloc) do
by default. The cost: the process keeps the memory of its busiest moment until it ends,
which for a training run is what it needs at every iteration anyway. Painting on the CPU
gains as much (at 256², batch 8: 3.0 → 2.4 s per batch, the resident peak 1.25 → 1.56 GB).

`GANSCAPES_KEEP_FREED_MEMORY=0` in the environment turns it off, for a process that
should hand memory back between bursts of work (a studio left open on a small laptop).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_MAX = -4
OPT_OUT = "GANSCAPES_KEEP_FREED_MEMORY"  # set to 0 to keep glibc's defaults


@functools.cache
def keep_freed_memory() -> bool:
    """Make this process reuse its freed memory for large allocations (glibc only).

    Process-wide and permanent, so call it from commands that compute on the CPU for a
    long time (training, painting). True when glibc accepted both settings; False
    elsewhere (macOS, Windows, musl) and when `GANSCAPES_KEEP_FREED_MEMORY` is 0, where
    nothing changes. Decided once per process: painting calls it for every batch, and
    the checks (reading the interpreter's binary for its libc, finding libc) are not free.
    """
    if os.environ.get(OPT_OUT, "").strip().lower() in ("0", "no", "false", "off"):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success; -1 for M_TRIM_THRESHOLD means "never trim".
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, -1) == 1
