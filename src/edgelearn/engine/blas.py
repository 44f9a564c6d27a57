"""Let OpenBLAS's idle worker threads sleep at once instead of spinning.

After every GEMM, OpenBLAS's worker threads spin for 2**OPENBLAS_THREAD_TIMEOUT cycles (2**28 by
default, about 0.1 s) before they sleep. edgelearn alternates small GEMMs with other passes
(NumPy's, and the numba kernels' threads), and the spinning threads take the cores those need:
on 2 cores, MobileNetV2 inference took 1.5x as long with 2 BLAS threads as with 1, 8x with the
numba kernels on 2 threads, and a training step of the codelab CNN 1.8x (benchmarks/README.md).
A timeout of 4 (OpenBLAS's minimum) makes them sleep at once.

OpenBLAS reads OPENBLAS_THREAD_TIMEOUT when its thread pool starts. ``import edgelearn`` sets the
variable (unless the user did) and, if numpy had already loaded OpenBLAS, calls
:func:`apply_thread_timeout`, which has OpenBLAS read it again and restarts its pool. Linux only
(the loaded libraries are found in /proc/self/maps); elsewhere nothing changes.

Example:
    >>> from edgelearn.engine import blas
    >>> blas.apply_thread_timeout()   # what import edgelearn does
    True
"""

from __future__ import annotations

import ctypes
import os

VARIABLE = "OPENBLAS_THREAD_TIMEOUT"
TIMEOUT = 4


def openblas_libraries() -> list[ctypes.CDLL]:
    """The OpenBLAS libraries loaded in this process that can re-read their settings."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return []
    libraries = []
    for path in sorted(paths):
        if ".so" not in os.path.basename(path):
            continue
        try:
            library = ctypes.CDLL(path)  # already loaded: the same handle, nothing runs
            functions = (
                library.openblas_thread_timeout,
                library.openblas_read_env,
                library.blas_thread_shutdown_,
            )
        except (OSError, AttributeError):
            continue
        for function in functions:
            function.argtypes, function.restype = [], ctypes.c_int
        libraries.append(library)
    return libraries


def apply_thread_timeout() -> bool:
    """Make every loaded OpenBLAS use the OPENBLAS_THREAD_TIMEOUT now in the environment (see
    above). Returns whether each one does (False where none is found).

    It restarts OpenBLAS's thread pool, so no other thread may be inside a BLAS call meanwhile.
    """
    wanted = os.environ.get(VARIABLE)
    libraries = openblas_libraries()
    if wanted is None or not wanted.isdigit() or not libraries:
        return False
    done = True
    for library in libraries:
        if library.openblas_thread_timeout() != int(wanted):
            library.openblas_read_env()
            library.blas_thread_shutdown_()  # the next BLAS call starts the pool afresh
        done &= library.openblas_thread_timeout() == int(wanted)
    return done
