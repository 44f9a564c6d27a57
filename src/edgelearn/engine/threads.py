"""A model's step split over threads by samples, with BLAS itself kept to one thread.

NumPy's BLAS spreads each GEMM over the cores, but a convolution's GEMMs are tall and skinny
(N*OH*OW rows, a few dozen columns) and gain little from that, and every pass around them
(patch matrices, pooling, ReLU, the input gradient's window adds) runs on one thread. Worse,
data that a multi-threaded GEMM just read sits in both cores' caches, and the next single-thread
pass that writes it waits on the other core for every cache line: on the 2-core machine of
benchmarks/README.md a patch matrix took 3x as long to rebuild after a 2-thread GEMM had read
it, and a 2-thread training step ran slower than a 1-thread one.

So, inside :func:`parallel_step`, BLAS runs on one thread and a batch splits into as many
parts as BLAS had threads, one part per thread, whose samples stay in its own core's caches.
``Model`` enters it through :func:`run_batch` for each training step and prediction batch, in
one of two ways:

- where every layer treats each sample on its own (``Layer.splits_by_sample``: convolutions,
  dense layers, pooling, activations, but not a training BatchNormalization or Dropout), each
  part runs the whole step (forward, loss, gradients) on its thread, from
  :data:`MIN_TRAINING_SPLIT_ELEMENTS` / :data:`MIN_INFERENCE_SPLIT_ELEMENTS` input values:
  one hand-off per step;
- otherwise, from :data:`MIN_BATCH_ELEMENTS`, the heavy primitives split their batch
  (:func:`split`): each thread builds, multiplies and pools the samples of its part.

The parts run in a small pool of Python threads; NumPy's GEMMs and copies and the numba kernels
release the GIL while they work.

The width follows the BLAS thread count a user already controls (``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS`` or threadpoolctl's ``threadpool_limits``); with one BLAS thread, with a
BLAS edgelearn cannot control (anything but OpenBLAS, or no ``/proc/self/maps`` to find it in)
or outside :func:`parallel_step`, everything runs on the calling thread as before.

Forward results do not depend on the split (each output comes from one part, computed as the
serial path computes it); gradients summed over samples (kernels, biases, dense weights) add
per-part sums, so they agree with the serial path to float32 rounding.

Example:
    >>> from edgelearn.engine import threads
    >>> with threads.parallel_step(workers=2):
    ...     parts = threads.split(10, lambda start, stop: (start, stop))
    >>> parts
    [(0, 5), (5, 10)]
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# The least values of a memory-bound pass (ReLU, pooling) worth a thread of their own: handing a
# part to a sleeping thread costs ~50-100 us on a virtual machine, what such a pass does with
# ~250k values; below about 1M a split cost more than it saved (benchmarks/README.md).
ELEMENTS_PER_PART = 1 << 20

# The state of the outermost parallel_step: how many parts to split into (1: no split).
_width = 1
_active = False
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()
# Set while a thread runs a part: a split inside a part runs whole on that thread (a nested
# split waiting on the pool that runs it could wait forever).
_local = threading.local()

# OpenBLAS's thread-count functions, as numpy's builds name them (scipy-openblas, 64-bit ints).
_BLAS_SYMBOLS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)
_blas: tuple[Any, Any] | None = None
_blas_searched = False


def _find_blas() -> tuple[Any, Any] | None:
    """OpenBLAS's (get, set) thread-count functions in the library numpy loaded, or None."""
    global _blas, _blas_searched
    if _blas_searched:
        return _blas
    _blas_searched = True
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split(maxsplit=5)[-1].strip() for line in maps if "openblas" in line}
    except OSError:
        return None
    # numpy's own copy first, where other packages brought theirs.
    for path in sorted(paths, key=lambda p: "numpy" not in p):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in _BLAS_SYMBOLS:
            get, set_ = getattr(library, get_name, None), getattr(library, set_name, None)
            if get is not None and set_ is not None:
                get.restype, get.argtypes = ctypes.c_int, []
                set_.restype, set_.argtypes = None, [ctypes.c_int]
                _blas = (get, set_)
                return _blas
    return None


def blas_threads() -> int | None:
    """How many threads numpy's BLAS (OpenBLAS) uses now, or None when edgelearn cannot tell."""
    blas = _find_blas()
    return None if blas is None else int(blas[0]())


# Batches of fewer input values than this are not split by default: their passes are too short
# for a hand-off between threads, and BLAS's own threads (which wait for work spinning) serve
# them better. Measured with 2 threads (benchmarks/README.md): the split lost 7-11% for the
# codelab CNN at batch 64 (50k values) and MobileNetV2 at batch 1 (150k), broke even at batch
# 256 (200k), and won 13% at batch 512 (401k), 22% for the Keras-example CNN at batch 512 and
# 7% for MobileNetV2 at batch 8 (1.2M).
MIN_BATCH_ELEMENTS = 1 << 18

# A model whose layers all split by sample (Layer.splits_by_sample) runs each part of a batch
# through the whole model, one hand-off per step instead of one per primitive, so smaller
# batches gain; but each part repeats the step's Python work. Measured with 2 threads for the
# codelab CNN (benchmarks/README.md), against the primitive split or BLAS's threads: a training
# step lost 31% at batch 16 (12.5k input values) and 6% at 32, and won 8% at 48 (37.6k), 11-15%
# at 64 and 7% at 512; a prediction (a third of the work per value) broke even at batch 64 (50k)
# and won 7% at 96 (75k), 12% at 128, 28% at 256, 6% at 512 and 28% for MobileNetV2 at batch 8.
MIN_TRAINING_SPLIT_ELEMENTS = 1 << 15
MIN_INFERENCE_SPLIT_ELEMENTS = 1 << 16


@contextlib.contextmanager
def parallel_step(
    workers: int | None = None,
    batch_elements: int | None = None,
    min_batch_elements: int = MIN_BATCH_ELEMENTS,
) -> Iterator[int]:
    """Split the primitives' batches over ``workers`` threads with BLAS on one thread, until the
    block ends; yields the width in use.

    By default ``workers`` is BLAS's thread count, or 1 (no split) for a batch of fewer than
    ``min_batch_elements`` input values (``batch_elements``, if given) or without a BLAS
    edgelearn can control. Nested blocks keep the outer block's width, so ``with
    parallel_step(workers=1):`` around ``fit`` or ``predict`` turns the split off (BLAS then
    keeps its own threads, as without this module).
    """
    global _width, _active
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1. Received: workers={workers}")
    if _active:  # inside an outer block
        yield _width
        return
    blas = _find_blas()
    if workers is None:
        small = batch_elements is not None and batch_elements < min_batch_elements
        workers = 1 if blas is None or small else int(blas[0]())
    previous = None
    if blas is not None and workers > 1:
        previous = int(blas[0]())
        blas[1](1)
    _width, _active = workers, True
    try:
        yield workers
    finally:
        _width, _active = 1, False
        if previous is not None:
            blas[1](previous)


def width() -> int:
    """How many parts :func:`split` makes now (1 outside :func:`parallel_step`)."""
    return _width


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None or _pool._max_workers < workers:  # grow only
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="edgelearn")
        return _pool


def _forget_pool() -> None:
    # A forked child has none of its parent's threads: parts posted to the parent's pool would
    # wait forever. The child starts its own pool when it first splits.
    global _pool, _lock
    _pool, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def split(n_items: int, run: Callable[[int, int], T], min_items: int = 1) -> list[T]:
    """``run(start, stop)`` over contiguous parts of ``range(n_items)``, one part per thread.

    Parts hold at least ``min_items`` items (fewer parts if needed); the first part runs on the
    calling thread. Returns the results in part order; an exception in any part is raised here
    after every part has finished.
    """
    parts = max(1, min(_width, n_items // max(1, min_items)))
    if parts == 1 or getattr(_local, "in_part", False):
        return [run(0, n_items)]
    bounds = [n_items * p // parts for p in range(parts + 1)]
    futures = [
        _executor(parts - 1).submit(_run_part, run, bounds[p], bounds[p + 1])
        for p in range(1, parts)
    ]
    try:
        first = _run_part(run, bounds[0], bounds[1])
    finally:
        # Wait for every part even if ours failed: none may still write into shared buffers.
        others = [future.exception() for future in futures]
    for error in others:
        if error is not None:
            raise error
    return [first, *(future.result() for future in futures)]


def run_batch(
    n_samples: int,
    batch_elements: int,
    run: Callable[[int, int], T],
    by_sample: bool = False,
    min_elements: int = MIN_TRAINING_SPLIT_ELEMENTS,
) -> list[T]:
    """``run(start, stop)`` for a model's step on a batch of ``n_samples`` samples holding
    ``batch_elements`` input values, inside :func:`parallel_step`; returns the parts' results.

    With ``by_sample`` (every layer of the model splits by sample), a batch of at least
    ``min_elements`` values runs as parts, each through the whole step on a thread of its own;
    otherwise ``run(0, n_samples)`` runs once, its primitives split from :data:`MIN_BATCH_ELEMENTS`.
    """
    by_sample = by_sample and n_samples > 1
    with parallel_step(
        batch_elements=batch_elements,
        min_batch_elements=min_elements if by_sample else MIN_BATCH_ELEMENTS,
    ) as width:
        if by_sample and width > 1:
            return split(n_samples, run)
        return [run(0, n_samples)]


def _run_part(run: Callable[[int, int], T], start: int, stop: int) -> T:
    _local.in_part = True
    try:
        return run(start, stop)
    finally:
        _local.in_part = False
