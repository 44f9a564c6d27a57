"""Keep freed memory in the process, so each training step or prediction reuses the last one's.

Every step of a network allocates its activations and gradients afresh, arrays of megabytes.
glibc's malloc maps arrays that large from the kernel and unmaps them when freed (above a
threshold that starts at 128 KiB), so the next step's arrays are new pages: page faults and
zero-filling on first touch, up to half of the time of a MobileNetV2 prediction at batch 8 and
more than the work of some elementwise passes (``benchmarks/memory_reuse.py``). With the
thresholds raised, freed arrays go back to malloc's heap and the next step takes them again.
The price: up to ``limit`` bytes of freed memory stay in the process instead of going back to
the system.

A model's first training step, prediction or call does this (:func:`use_default`) unless
:func:`keep_freed_memory` was called before. It changes glibc's settings for the whole process
(numpy and anything else in it allocate through the same malloc); on other C libraries (macOS,
musl, Windows) nothing changes.

Example:
    >>> from edgelearn.engine import allocator
    >>> allocator.keep_freed_memory()   # what a model's first call does; returns True on glibc
    True
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

# What keep_freed_memory last chose; None until it ran (models then choose True).
_chosen: bool | None = None


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
    """Let malloc keep and reuse freed arrays of up to ``limit`` bytes (``enabled``), or not.

    ``keep_freed_memory(False)`` before any model has run leaves glibc's own, adaptive settings
    untouched (models then leave them alone too); after, it sets glibc's initial thresholds
    again (glibc's adaptive mmap threshold stays off once changed). Returns whether the C
    library took the setting (True when there was nothing to change).
    """
    global _chosen
    if not 0 < limit < 2**31:
        raise ValueError(f"limit must be between 1 and 2**31 - 1 bytes. Received: limit={limit}")
    unchanged = _chosen is None
    _chosen = enabled
    if not enabled and unchanged:
        return True
    mallopt = _mallopt()
    if mallopt is None:
        return False
    value = limit if enabled else _GLIBC_DEFAULT
    return bool(mallopt(_M_MMAP_THRESHOLD, value)) and bool(mallopt(_M_TRIM_THRESHOLD, value))


def use_default() -> None:
    """Keep freed memory unless :func:`keep_freed_memory` decided otherwise: what models call
    before they run."""
    if _chosen is None:
        keep_freed_memory()
