"""glibc's allocator settings for training on the CPU.

By default glibc serves every allocation above a threshold (128 KiB, growing to at most
32 MiB) with a fresh `mmap` and returns it to the system on free. A training step allocates
and frees the same large activation and gradient tensors every step, so each step maps them
anew and the kernel zero-fills every page on first touch: on the tiny T5 of
benchmarks/train_throughput.py that is a fifth of the process's CPU time (system time).
`keep_freed_memory()` turns that off for this process (no mmap'd chunks, no trimming of the
heap), so freed tensors are reused in place. The process then keeps its peak memory until it
exits; that is what a training process does anyway. A no-op where glibc is not the C library.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's <malloc.h>
_M_MMAP_MAX = -4
_NEVER = 2**31 - 1


def keep_freed_memory() -> bool:
    """Make glibc keep and reuse freed memory in this process; whether it applied."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        return False
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER))
