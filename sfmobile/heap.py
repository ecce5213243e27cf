"""Handing freed memory back to the system: one place for export's steps and the runtime's
one-component-at-a-time generation.

Memory a step or a component frees stays in glibc's heap unless it is trimmed, and the next
one's peak then adds to it: measured on a narrowed SnapFusion UNet (0.19 GB of weights), an
export process stayed 0.23 GB larger after onnxsim until `malloc_trim`; a generation's UNet
peak fell from 2.86 GB to 2.40 GB with the mmap threshold fixed (docs/memory.md). Releasing
cyclic garbage first lets those pages be freed at all.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from functools import cache

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's default, fixed so it no longer grows


@cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - absent on musl: then there is nothing to trim
    except (OSError, AttributeError):
        return None
    return libc


def return_freed_memory() -> None:
    """Collect unreachable Python objects and give the C heap's free pages back to the system
    (glibc only; elsewhere the allocator decides)."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def prefer_returnable_memory() -> None:
    """Serve every allocation of MMAP_THRESHOLD_BYTES or more with its own mapping, returned to
    the system when freed (glibc only; a no-op elsewhere)."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
