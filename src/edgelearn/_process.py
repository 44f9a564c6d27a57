"""Process-wide settings ``import edgelearn`` makes, first thing; each is measured in
benchmarks/README.md and can be undone.

1. OpenBLAS's idle threads sleep at once instead of spinning for ~0.1 s after every GEMM
   (:mod:`edgelearn.engine.blas`): OPENBLAS_THREAD_TIMEOUT=4 unless the environment sets it.
2. Freed arrays stay in the process for the next step (:mod:`edgelearn.engine.allocator`;
   ``allocator.keep_freed_memory(False)`` undoes it).
"""

import os
import sys

_CHOSEN_BY_USER = "OPENBLAS_THREAD_TIMEOUT" in os.environ
_NUMPY_FIRST = "numpy" in sys.modules
if not _CHOSEN_BY_USER:
    # Read by OpenBLAS when numpy loads it below; if numpy came first, applied after.
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"

from edgelearn.engine import allocator, blas  # after the variable above: this loads numpy

if not _CHOSEN_BY_USER and _NUMPY_FIRST:
    blas.apply_thread_timeout()
allocator.keep_freed_memory()
