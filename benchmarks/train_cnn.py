"""Training throughput of the TensorFlow.js codelab CNN: edgelearn against PyTorch CPU eager.

The model is the MNIST codelab CNN (Conv2D 8@5x5 relu, MaxPooling2D 2/2, Conv2D 16@5x5 relu,
MaxPooling2D 2/2, Flatten, Dense 10 softmax; Adam lr 1e-3; sparse categorical cross-entropy) on
28x28x1 float32 MNIST digits. A measurement is ``--steps`` full optimizer steps (forward, loss,
backward, update) timed with ``time.perf_counter``; images/s = batch size * steps / seconds.
edgelearn and PyTorch are measured in turn (edgelearn, torch, edgelearn, torch, ...) for
``--repeats`` rounds in one process, on the same batches of real digits, and the median of each
library is reported with the ratio edgelearn / PyTorch.

Each thread count runs in its own child process, started with OMP_NUM_THREADS and
OPENBLAS_NUM_THREADS set, because OpenBLAS sizes its thread pool when it is loaded; inside the
child ``threadpoolctl.threadpool_limits(n)`` and ``torch.set_num_threads(n)`` pin both libraries
to the same count. The children run without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (this
workplace sets them for old OpenBLAS builds; they force a slower kernel on current numpy), and
the OpenBLAS kernel that actually ran is printed.

Run (from the repository root, with the bench extra: ``pip install -e ".[bench]"``):

    python benchmarks/train_cnn.py                          # batch 64, 1 and 2 threads
    python benchmarks/train_cnn.py --batch-size 64 512      # both batch sizes, interleaved
    python benchmarks/train_cnn.py --threads 2 --steps 100 --repeats 11
    python benchmarks/train_cnn.py --check                  # smoke test: a few steps, < 30 s

PyTorch is optional: without it only edgelearn is measured (install it with
``pip install torch==2.13.0``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import (
    TORCH_PIN,
    add_kernels_argument,
    limit_threads,
    source_revision,
    two_core_slowdown,
    use_kernels,
)

import edgelearn as el
from edgelearn.demos.mnist import codelab_cnn, prepare

# Old-OpenBLAS workarounds set by this workplace; they make current numpy pick a slower kernel.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
LIBRARIES = ("edgelearn", "torch")
SEED = 0

StepFn = Callable[[int], float]


# ------------------------------------------------------------------------------ optional imports
def import_torch() -> Any | None:
    """Return the torch module, or None (with a message saying how to get it) if it is missing."""
    try:
        import torch
    except ImportError:
        print(
            f"note: PyTorch is not installed, so only edgelearn is measured. For the comparison "
            f"run: pip install {TORCH_PIN}",
            file=sys.stderr,
        )
        return None
    return torch


def blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's view of the loaded thread pools (empty if threadpoolctl is missing)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return threadpool_info()


# ------------------------------------------------------------------------------ machine facts
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def virtualized() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return "yes (hypervisor flag)" if " hypervisor" in f.read() else "no"
    except OSError:
        return "unknown"


# ------------------------------------------------------------------------------ the two models
def fashion_cnn() -> el.Sequential:
    """The Keras example CNN (mnist_cnn.py), as used for Fashion-MNIST: Conv2D 32@3x3 relu,
    Conv2D 64@3x3 relu, MaxPooling2D 2, Dropout 0.25, Flatten, Dense 128 relu, Dropout 0.5,
    Dense 10 softmax."""
    layers = el.layers
    return el.Sequential(
        [
            layers.Input((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )


MODELS = {"codelab": codelab_cnn, "fashion": fashion_cnn}


def make_edgelearn_step(batches: list[tuple[np.ndarray, np.ndarray]], name: str) -> StepFn:
    """One edgelearn training step on batch ``i`` (mod the pool), returning the loss."""
    model = MODELS[name]()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def step(i: int) -> float:
        x, y = batches[i % len(batches)]
        loss, _accuracy = model.train_on_batch(x, y)
        return float(loss)

    return step


def make_torch_step(torch: Any, batches: list[tuple[np.ndarray, np.ndarray]], name: str) -> StepFn:
    """The same step in PyTorch eager: NCHW (its native layout), log-softmax + NLL, Adam."""
    nn, functional = torch.nn, torch.nn.functional
    if name == "codelab":
        model = nn.Sequential(
            nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Flatten(), nn.Linear(256, 10),
        )  # fmt: skip
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, 10),
        )  # fmt: skip
    # Keras' Adam epsilon, as edgelearn uses; it does not change the amount of work.
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    # Converted once, outside the timing: each library gets its batches in its native layout.
    tensors = [
        (
            torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))),
            torch.from_numpy(y.astype(np.int64)),
        )
        for x, y in batches
    ]

    def step(i: int) -> float:
        x, y = tensors[i % len(tensors)]
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = functional.nll_loss(functional.log_softmax(logits, dim=1), y)
        loss.backward()
        optimizer.step()
        # train_on_batch returns the loss and the accuracy as Python floats; do the same work.
        (logits.argmax(dim=1) == y).float().mean().item()
        return loss.item()

    return step


def make_batches(batch_size: int, name: str = "codelab") -> list[tuple[np.ndarray, np.ndarray]]:
    """Real images scaled to [0, 1], one shuffled pass: the 7,000 local MNIST training digits
    for the codelab CNN, the first 7,000 Fashion-MNIST training images for the fashion CNN."""
    if name == "codelab":
        (x_train, y_train), _ = el.datasets.mnist.load_data(source="local")
    else:
        (x_train, y_train), _ = el.datasets.fashion_mnist.load_data()
        x_train, y_train = x_train[:7000], y_train[:7000]
    order = np.random.default_rng(SEED).permutation(len(x_train))
    count = max(1, len(x_train) // batch_size)
    batches = []
    for b in range(count):
        index = order[(b * batch_size) % len(order) :][:batch_size]
        if len(index) < batch_size:  # batch sizes above 7,000 wrap around the data
            index = np.resize(order, batch_size)
        batches.append((prepare(x_train[index]), y_train[index]))
    return batches


def timed(step: StepFn, start: int, steps: int) -> tuple[float, float]:
    """Seconds for ``steps`` steps from batch ``start``, and the last loss (to check it is sane)."""
    loss = float("nan")
    begin = time.perf_counter()
    for i in range(start, start + steps):
        loss = step(i)
    return time.perf_counter() - begin, loss


# ------------------------------------------------------------------------------ child: measure
def child(args: argparse.Namespace) -> int:
    threads = args.threads[0]
    torch = import_torch()
    # Belt and braces for numpy: OPENBLAS_NUM_THREADS already sized the pool when numpy loaded.
    limits = limit_threads(threads, torch)
    kernels_used = use_kernels(args.kernels)
    if torch is not None:
        torch.manual_seed(SEED)
    el.random.set_random_seed(SEED)

    libraries = [lib for lib in LIBRARIES if lib == "edgelearn" or torch is not None]
    steps_fns: dict[tuple[str, int], StepFn] = {}
    for batch_size in args.batch_size:
        batches = make_batches(batch_size, args.model)
        steps_fns["edgelearn", batch_size] = make_edgelearn_step(batches, args.model)
        if torch is not None:
            steps_fns["torch", batch_size] = make_torch_step(torch, batches, args.model)
        for lib in libraries:  # warm-up: first-call allocations, caches, thread start-up
            timed(steps_fns[lib, batch_size], 0, args.warmup)

    rates: dict[str, list[float]] = {f"{lib}/{b}": [] for lib in libraries for b in args.batch_size}
    losses: dict[str, float] = {}
    for repeat in range(args.repeats):
        for batch_size in args.batch_size:
            # Same batches for both libraries in this round: steps start at the same index.
            start = args.warmup + repeat * args.steps
            for lib in libraries:
                seconds, loss = timed(steps_fns[lib, batch_size], start, args.steps)
                rates[f"{lib}/{batch_size}"].append(batch_size * args.steps / seconds)
                losses[f"{lib}/{batch_size}"] = loss

    info = blas_info()
    result = {
        "threads": threads,
        "rates": rates,
        "last_loss": losses,
        "blas": [
            {
                k: entry.get(k)
                for k in (
                    "internal_api",
                    "version",
                    "architecture",
                    "num_threads",
                    "threading_layer",
                    "filepath",
                )
            }
            for entry in info
        ],
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "kernels": kernels_used,
        "torch_version": torch.__version__ if torch is not None else None,
        "torch_cpu_capability": (
            torch.backends.cpu.get_cpu_capability() if torch is not None else None
        ),
        "env": {
            k: os.environ.get(k)
            for k in (
                "OMP_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "OPENBLAS_THREAD_TIMEOUT",
                *OPENBLAS_OVERRIDES,
            )
        },
    }
    if limits is not None:
        limits.restore_original_limits()
    with open(args.child_output, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


# ------------------------------------------------------------------------------ parent: report
def child_env(threads: int, keep_openblas_env: bool) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    if not keep_openblas_env:
        for name in OPENBLAS_OVERRIDES:
            env.pop(name, None)
    return env


def run_child(args: argparse.Namespace, threads: int) -> dict[str, Any]:
    print(f"measuring with {threads} thread(s) ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="train_cnn_") as folder:
        output = os.path.join(folder, "result.json")
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "--child-output",
            output,
            "--kernels",
            args.kernels,
            "--threads",
            str(threads),
            "--steps",
            str(args.steps),
            "--repeats",
            str(args.repeats),
            "--warmup",
            str(args.warmup),
            "--model",
            args.model,
            "--batch-size",
            *map(str, args.batch_size),
        ]
        done = subprocess.run(command, env=child_env(threads, args.keep_openblas_env), check=False)
        if done.returncode != 0:
            raise SystemExit(
                f"the benchmark process for {threads} thread(s) failed "
                f"(exit code {done.returncode})"
            )
        with open(output, encoding="utf-8") as f:
            return json.load(f)


def print_header(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    first = results[0]
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    network = (
        "TF.js codelab CNN" if args.model == "codelab" else "Keras example CNN (Fashion-MNIST)"
    )
    print(f"edgelearn vs PyTorch CPU eager: training throughput of the {network}")
    print(f"date:     {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(
        f"cpu:      {cpu_model()}, {os.cpu_count()} logical CPUs ({affinity} usable), "
        f"virtualized: {virtualized()}"
    )
    print(f"cores:    {two_core_slowdown()}")
    print(
        f"software: python {platform.python_version()}, numpy {np.__version__}, "
        f"edgelearn {el.__version__} (source {source_revision()}), "
        f"torch {first['torch_version'] or 'not installed'}"
        + (
            f" (CPU capability {first['torch_cpu_capability']})"
            if first["torch_cpu_capability"]
            else ""
        )
    )
    for result in results:
        blas = [b for b in result["blas"] if b["internal_api"] == "openblas"]
        described = (
            ", ".join(
                f"OpenBLAS {b['version']} kernel {b['architecture']} ({b['num_threads']} threads)"
                for b in blas
            )
            or "unknown (pip install threadpoolctl to see it)"
        )
        torch_threads = result["torch_threads"] or "n/a (not installed)"
        print(
            f"blas:     threads={result['threads']}: numpy uses {described}; "
            f"torch threads {torch_threads}; edgelearn kernels {result['kernels']}"
        )
    was = {k: os.environ.get(k) for k in OPENBLAS_OVERRIDES if os.environ.get(k)}
    if args.keep_openblas_env:
        print(f"env:      kept {was or 'no OPENBLAS overrides'} in the benchmark processes")
    elif was:
        print(
            "env:      unset "
            + ", ".join(f"{k}={v}" for k, v in was.items())
            + " in the benchmark processes"
        )
    timeout = results[0]["env"].get("OPENBLAS_THREAD_TIMEOUT")
    print(
        "env:      OPENBLAS_THREAD_TIMEOUT="
        f"{timeout or 'unset (OpenBLAS default: idle threads spin)'}"
    )
    print(
        f"method:   {args.steps} steps per measurement, {args.repeats} rounds of edgelearn then "
        f"torch, {args.warmup} warm-up steps; "
        + ("real MNIST digits (local copy)" if args.model == "codelab" else "real Fashion-MNIST")
        + ", same batches for both"
    )
    print()


def print_table(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    print(f"{'library':<10} {'threads':>7} {'batch':>6} {'median img/s':>13} {'min':>9} {'max':>9}")
    for result in results:
        for batch_size in args.batch_size:
            for lib in LIBRARIES:
                rates = result["rates"].get(f"{lib}/{batch_size}")
                if not rates:
                    continue
                print(
                    f"{lib:<10} {result['threads']:>7} {batch_size:>6} "
                    f"{statistics.median(rates):>13,.0f} {min(rates):>9,.0f} "
                    f"{max(rates):>9,.0f}"
                )
    print()
    for result in results:
        for batch_size in args.batch_size:
            ours = result["rates"][f"edgelearn/{batch_size}"]
            theirs = result["rates"].get(f"torch/{batch_size}")
            if not theirs:
                print(
                    f"ratio edgelearn/torch, threads={result['threads']} batch={batch_size}: "
                    f"n/a (torch not installed: pip install {TORCH_PIN})"
                )
                continue
            ratio = statistics.median(ours) / statistics.median(theirs)
            # Each round measured both back to back; the median of those ratios resists drift.
            paired = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
            print(
                f"ratio edgelearn/torch, threads={result['threads']} batch={batch_size}: "
                f"{ratio:.3f} (torch is {1 / ratio:.1f}x faster; median of per-round ratios "
                f"{paired:.3f})"
            )


def check_results(results: list[dict[str, Any]]) -> list[str]:
    problems = []
    for result in results:
        for key, loss in result["last_loss"].items():
            if not math.isfinite(loss):
                problems.append(f"threads={result['threads']} {key}: loss is {loss}")
        for key, rates in result["rates"].items():
            if not rates or not all(r > 0 and math.isfinite(r) for r in rates):
                problems.append(f"threads={result['threads']} {key}: bad rates {rates}")
    return problems


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="codelab",
        help="codelab: the TF.js codelab CNN on MNIST (default); fashion: the Keras example CNN "
        "on Fashion-MNIST",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        nargs="+",
        default=[64],
        help="one or more batch sizes, measured interleaved (default 64)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        help="thread counts, one child process each (default 1 2)",
    )
    parser.add_argument(
        "--steps", type=int, default=50, help="timed optimizer steps per measurement (default 50)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=11,
        help="rounds of edgelearn-then-torch measurements (default 11)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=5,
        help="untimed steps per library and batch size first (default 5)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="smoke test: 3 steps x 2 rounds, fails on a non-finite loss",
    )
    parser.add_argument(
        "--keep-openblas-env",
        action="store_true",
        help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in the child processes",
    )
    add_kernels_argument(parser)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check:
        args.steps, args.repeats, args.warmup = 3, 2, 1
    for name in ("batch_size", "threads"):
        if any(v <= 0 for v in getattr(args, name)):
            parser.error(f"--{name.replace('_', '-')} values must be positive")
    if args.steps <= 0 or args.repeats <= 0 or args.warmup < 0:
        parser.error("--steps and --repeats must be positive, --warmup non-negative")
    if args.child_output and len(args.threads) != 1:
        parser.error("a child process measures exactly one thread count")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_output:
        return child(args)
    results = [run_child(args, threads) for threads in args.threads]
    print()
    print_header(args, results)
    print_table(args, results)
    if args.check:
        problems = check_results(results)
        if problems:
            print("check FAILED:\n  " + "\n  ".join(problems))
            return 1
        print("check OK: every step ran and every loss is finite")
    return 0


if __name__ == "__main__":
    sys.exit(main())
