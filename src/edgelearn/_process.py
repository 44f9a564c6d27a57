"""The process-wide setting ``import edgelearn`` makes, first thing (measured in
benchmarks/README.md): OpenBLAS's idle threads sleep at once instead of spinning for ~0.1 s
after every GEMM (:mod:`edgelearn.engine.blas`), OPENBLAS_THREAD_TIMEOUT=4 unless the
environment sets it. (The other, keeping freed memory for the next step, happens at a model's
first run: :mod:`edgelearn.engine.allocator`.)
"""

import os
import sys

_CHOSEN_BY_USER = "OPENBLAS_THREAD_TIMEOUT" in os.environ
_NUMPY_FIRST = "numpy" in sys.modules
if not _CHOSEN_BY_USER:
    # Read by OpenBLAS when numpy loads it below; if numpy came first, applied after.
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"

from edgelearn.engine import blas  # after the variable above: this loads numpy

if not _CHOSEN_BY_USER and _NUMPY_FIRST:
    blas.apply_thread_timeout()
