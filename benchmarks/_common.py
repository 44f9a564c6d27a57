"""Set-up shared by the benchmark scripts: the PyTorch pin, thread limits and the source revision.

The scripts run as ``python benchmarks/<script>.py``, which puts this folder first on sys.path,
so they import this module as ``_common``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

TORCH_PIN = "torch==2.13.0"


def limit_threads(threads: int, torch: Any | None) -> Any | None:
    """Limit numpy's BLAS (through threadpoolctl) and torch, when given, to ``threads`` threads.

    Returns threadpoolctl's limits, whose ``restore_original_limits()`` undoes them, or None
    when threadpoolctl is missing.
    """
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print(
            "note: threadpoolctl is missing, so only OPENBLAS_NUM_THREADS (where set) limits "
            "numpy's BLAS threads",
            file=sys.stderr,
        )
        return None
    return threadpool_limits(threads)


def two_core_slowdown(repeats: int = 5) -> str:
    """How much longer two threads take, each running its own 1-thread float32 GEMM loop (256^3,
    in cache, the GIL released), than one thread alone: 1.00x on two independent cores, toward
    2x where the two logical CPUs share one core's arithmetic units (hyperthreads, or a VM's
    vCPUs on them). 2-thread figures are bounded by it; described as text for the reports."""
    import numpy as np

    from edgelearn.engine import threads

    if os.cpu_count() is None or os.cpu_count() < 2:
        return "n/a (one logical CPU)"
    if threads.blas_threads() is None:
        return "n/a (numpy's BLAS is not an OpenBLAS edgelearn can pin to one thread)"
    a = np.random.default_rng(0).random((256, 256), dtype=np.float32)

    def loop(seconds: list[float]) -> None:
        begin = time.perf_counter()
        for _ in range(200):
            np.matmul(a, a)
        seconds.append(time.perf_counter() - begin)

    alone: list[float] = []
    together: list[float] = []
    with threads.parallel_step(workers=2):  # BLAS on one thread per caller
        for _ in range(repeats):
            loop(alone)
            both: list[float] = []
            workers = [threading.Thread(target=loop, args=(both,)) for _ in range(2)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            together.append(max(both))
    ratio = statistics.median(together) / statistics.median(alone)
    return f"two 1-thread GEMM loops at once take {ratio:.2f}x one alone (1.00x: independent cores)"


def codelab_training(batch: int) -> tuple[Any, Any, Any]:
    """The MNIST demo's codelab CNN compiled as the demo compiles it (seed 0), and the first
    ``batch`` local MNIST training digits and labels, prepared: what the engine-only scripts
    train on."""
    import edgelearn as el
    from edgelearn.demos.mnist import codelab_cnn, prepare

    el.random.set_random_seed(0)
    model = codelab_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    (images, labels), _ = el.datasets.mnist.load_data(source="local")
    return model, prepare(images[:batch]), labels[:batch]


def use_kernels(choice: str) -> str:
    """Select edgelearn's kernels ("auto", "numba" or "numpy", see ``edgelearn.engine.jit``) and
    return the ones in use (they run on the calling thread)."""
    from edgelearn.engine import jit

    jit.set_kernels(choice)
    return "numba" if jit.enabled() else "numpy"


def add_kernels_argument(parser: Any) -> None:
    parser.add_argument(
        "--kernels",
        choices=["auto", "numba", "numpy"],
        default="auto",
        help="edgelearn's kernels: numba (the `jit` extra) when installed, or force one "
        "(default auto)",
    )


def source_revision() -> str:
    """The commit of the edgelearn checkout and whether src/ has uncommitted changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # --no-optional-locks: only read, never refresh the index others may be using.
    git = ["git", "--no-optional-locks", "-C", root]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = (
            subprocess.run(
                [*git, "diff", "--quiet", "HEAD", "--", "src"], capture_output=True, check=False
            ).returncode
            != 0
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" + uncommitted changes in src/" if dirty else "")
