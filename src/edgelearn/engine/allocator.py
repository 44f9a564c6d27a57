"""Keep freed memory in the process, so each training step or prediction reuses the last one's.

Every step of a network allocates its activations and gradients afresh, arrays of megabytes.
glibc's malloc maps arrays that large from the kernel and unmaps them when freed (above a
threshold that starts at 128 KiB), so the next step's arrays are new pages: page faults and
zero-filling on first touch, up to half of the time of a MobileNetV2 prediction at batch 8 and
more than the work of some elementwise passes (``benchmarks/memory_reuse.py``). With the
thresholds raised, freed arrays go back to malloc's heap and the next step takes them again.
The price: up to ``limit`` bytes of freed memory stay in the process instead of going back to
the system.

``import edgelearn`` calls :func:`keep_freed_memory` once. It changes glibc's settings for the
whole process (numpy and anything else in it allocate through the same malloc); on other C
libraries (macOS, musl, Windows) it does nothing and returns False.

Example:
    >>> from edgelearn.engine import allocator
    >>> allocator.keep_freed_memory(False)   # glibc's defaults again
    >>> allocator.keep_freed_memory()        # what import edgelearn does
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_GLIBC_DEFAULT = 128 * 1024

DEFAULT_LIMIT = 1 << 30


def _mallopt():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt  # glibc and uClibc have it; musl does not
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def keep_freed_memory(enabled: bool = True, limit: int = DEFAULT_LIMIT) -> bool:
    """Let malloc keep and reuse freed arrays of up to ``limit`` bytes (``enabled``), or
    restore glibc's default thresholds. Returns whether the C library took the setting."""
    if not 0 < limit < 2**31:
        raise ValueError(f"limit must be between 1 and 2**31 - 1 bytes. Received: limit={limit}")
    mallopt = _mallopt()
    if mallopt is None:
        return False
    value = limit if enabled else _GLIBC_DEFAULT
    return bool(mallopt(_M_MMAP_THRESHOLD, value)) and bool(mallopt(_M_TRIM_THRESHOLD, value))
