"""What each of edgelearn's engine settings is worth, edgelearn alone, one switch at a time.

The switches (see benchmarks/README.md for why each exists):

- kernels: NumPy only, or the numba kernels of the ``jit`` extra (``jit.set_kernels``);
- folding: batch norms, ReLUs and paddings folded into the convolutions at inference, or each
  layer on its own (the private ``model._folds`` emptied: there is no public switch, folding is
  always on where it applies);
- thread split: a step's batch split over the BLAS thread count with BLAS on one thread (each
  part through the whole model, or primitive by primitive: ``edgelearn.engine.threads``), or not (``threads.parallel_step(workers=1)`` around the call:
  BLAS then spreads each GEMM over its threads as before); only differs with 2 threads;
- OpenBLAS's idle threads: spinning for ~0.1 s after each GEMM as OpenBLAS does by default, or
  sleeping at once (OPENBLAS_THREAD_TIMEOUT=4, which edgelearn does not set: see the README).

(Keeping freed memory is measured by ``memory_reuse.py``: glibc's own settings cannot come back
in a process once changed.)

Workloads: nsfwjs' MobileNetV2 ``predict`` at batch 1 and 8, and ``train_on_batch`` of the
TF.js codelab CNN at batch 64 and 512 on real MNIST digits. Each thread count and OpenBLAS
setting runs in its own child process (OpenBLAS reads the variable when it starts its threads);
inside, the variants alternate call by call and the medians are printed with the ratio to the
default (all on). Run from the repository root after ``make test``'s setup:

    python benchmarks/engine_ablation.py                  # ~5 min
    python benchmarks/engine_ablation.py --threads 1 --workloads infer1 --rounds 9
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

WORKLOADS = {"infer1": 1, "infer8": 8, "train64": 64, "train512": 512}
# Variants run inside one process: (kernels, folding, thread split).
VARIANTS = {
    "default": ("auto", True, True),
    "NumPy kernels": ("numpy", True, True),
    "no folding": ("auto", False, True),
    "no thread split": ("auto", True, False),
}


def child(workload: str, threads: int, rounds: int) -> dict[str, list[float]]:
    import numpy as np
    from _common import codelab_training, limit_threads

    import edgelearn as el
    from edgelearn.engine import jit
    from edgelearn.engine import threads as engine_threads

    limit_threads(threads, None)  # OPENBLAS_NUM_THREADS already set; threadpoolctl if present
    batch = WORKLOADS[workload]
    if workload.startswith("infer"):
        from edgelearn.applications import nsfwjs

        model = el.load_model(nsfwjs.extract_model())
        x = np.random.default_rng(0).uniform(size=(batch, 224, 224, 3)).astype(np.float32)
        folds = model._folds

        def call(fold: bool) -> None:
            model._folds = folds if fold else {}
            model.predict(x)

        calls_per_round = max(1, 8 // batch)
    else:
        model, x, y = codelab_training(batch)

        def call(fold: bool) -> None:
            model.train_on_batch(x, y)

        calls_per_round = max(1, 2048 // batch)
    names = [n for n in VARIANTS if workload.startswith("infer") or n != "no folding"]
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds + 1):  # round 0 warms up (and compiles the numba kernels)
        for name, (kernels, fold, split) in VARIANTS.items():
            if workload.startswith("train") and name == "no folding":
                continue  # training never folds
            jit.set_kernels(kernels)
            # Let OpenBLAS's threads, spinning after the last variant's multi-threaded GEMMs
            # (~0.1 s), go to sleep: else they share the cores with this variant's threads.
            # One untimed call after the pause wakes the cores and caches again.
            time.sleep(0.25)
            with engine_threads.parallel_step(workers=None if split else 1):
                call(fold)
                start = time.perf_counter()
                for _ in range(calls_per_round):
                    call(fold)
            if round_:
                times[name].append((time.perf_counter() - start) / calls_per_round * 1e3)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per process")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        workload, threads, rounds = args.child
        print(json.dumps(child(workload, int(threads), int(rounds))))
        return 0
    print("edgelearn alone: median ms per call (predict) or per training step; ratio to default")
    print(f"{'workload':<9} {'thr':>3}  {'variant':<30} {'median ms':>10} {'/ default':>10}")
    for workload in args.workloads:
        for threads in args.threads:
            results: dict[str, Any] = {}
            for timeout in (None, "4"):
                env = dict(os.environ)
                env.pop("OPENBLAS_THREAD_TIMEOUT", None)
                if timeout:
                    env["OPENBLAS_THREAD_TIMEOUT"] = timeout
                env.update({k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
                for variable in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
                    env.pop(variable, None)  # as train_cnn.py: they force a slower kernel
                done = subprocess.run(
                    [sys.executable, __file__, "--child", workload, str(threads), str(args.rounds)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                times = json.loads(done.stdout.strip().splitlines()[-1])
                if timeout is None:
                    results.update(times)
                else:
                    results["OPENBLAS_THREAD_TIMEOUT=4"] = times["default"]
            default = statistics.median(results["default"])
            for name, samples in results.items():
                median = statistics.median(samples)
                print(
                    f"{workload:<9} {threads:>3}  {name:<30} {median:>10.1f} "
                    f"{median / default:>9.2f}x"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
