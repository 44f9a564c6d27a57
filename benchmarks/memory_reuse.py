"""How much of edgelearn's time goes to faulting in fresh memory, measured without PyTorch.

Every training step and every inference call allocates its activations, gradients and
temporaries afresh and frees them at the end. With glibc's default settings, freeing that much
at once gives the memory back to the kernel (heap trimming, or munmap for large blocks), so the
next step page-faults it in again and the kernel zeroes every page: system time, not NumPy's.
A model's first run therefore raises glibc's mmap and trim thresholds
(``edgelearn.engine.allocator``), which keeps freed memory in the process for the next step (the
resident size then stays at the peak of one step).

For each workload (codelab CNN ``train_on_batch`` at batch 64 and 512, nsfwjs MobileNetV2
``predict_on_batch`` at batch 1 and 8) this runs child processes with glibc's own settings
(``keep_freed_memory(False)`` before any model runs leaves them untouched) and with edgelearn's,
alternating, ``--rounds`` times each,
and reports the median wall time per call with the minor page faults and system time per call.
Only edgelearn is imported: in one process with PyTorch, as ``train_cnn.py`` and
``mobilenet_inference.py`` measure, the two libraries share glibc's heap.

    python benchmarks/memory_reuse.py                   # ~2 min
    python benchmarks/memory_reuse.py --workloads train64 infer1 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

# Setting name -> the argument of keep_freed_memory in the child.
SETTINGS = {"glibc": False, "edgelearn": True}
WORKLOADS = {
    "train64": ("train", 64),
    "train512": ("train", 512),
    "infer1": ("infer", 1),
    "infer8": ("infer", 8),
}


def make_call(kind: str, batch: int):
    import edgelearn as el

    if kind == "train":
        from _common import codelab_training

        model, x, y = codelab_training(batch)
        return lambda: model.train_on_batch(x, y)
    from edgelearn.applications import nsfwjs

    model = el.load_model(nsfwjs.extract_model())
    x = np.random.default_rng(0).uniform(size=(batch, 224, 224, 3)).astype(np.float32)
    return lambda: model.predict_on_batch(x)


def child(workload: str, calls: int, keep_freed: bool) -> None:
    from _common import limit_threads

    from edgelearn.engine import allocator

    limit_threads(1, None)  # OPENBLAS_NUM_THREADS=1 is set already; threadpoolctl if present
    allocator.keep_freed_memory(keep_freed)
    call = make_call(*WORKLOADS[workload])
    for _ in range(3):
        call()
    before, begin = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(calls):
        call()
    seconds, after = time.perf_counter() - begin, resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "ms": seconds / calls * 1e3,
                "faults": (after.ru_minflt - before.ru_minflt) / calls,
                "sys_ms": (after.ru_stime - before.ru_stime) / calls * 1e3,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=3, help="child processes per setting")
    parser.add_argument("--calls", type=int, default=10, help="timed calls per child process")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--keep-freed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.calls, bool(args.keep_freed))
        return 0
    print("edgelearn alone, 1 thread: time per call and what the kernel spends on fresh memory")
    print(
        f"{'workload':<9} {'malloc':<11} {'median ms':>10} {'faults/call':>12} {'sys ms/call':>12}"
    )
    for workload in args.workloads:
        results: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
        for _ in range(args.rounds):
            for name, keep_freed in SETTINGS.items():
                env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
                for variable in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
                    env.pop(variable, None)  # as train_cnn.py: they force a slower kernel
                done = subprocess.run(
                    [
                        sys.executable,
                        os.path.abspath(__file__),
                        "--child",
                        workload,
                        "--calls",
                        str(args.calls),
                        "--keep-freed",
                        str(int(keep_freed)),
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
        for name, runs in results.items():
            print(
                f"{workload:<9} {name:<11} {statistics.median(r['ms'] for r in runs):>10.1f} "
                f"{statistics.median(r['faults'] for r in runs):>12,.0f} "
                f"{statistics.median(r['sys_ms'] for r in runs):>12.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
