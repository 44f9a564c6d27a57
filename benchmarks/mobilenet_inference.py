"""Inference latency of a real MobileNetV2 (the nsfwjs classifier): edgelearn against PyTorch.

The model is nsfwjs' MobileNetV2 (224x224x3 inputs in [0, 1], 5 classes), loaded with
``el.load_model(nsfwjs.extract_model())``. A measurement is one call on a batch of random
pixels: edgelearn's ``model.predict_on_batch(x)`` (no graph, as ``predict`` runs it), the same
through ``edgelearn.runtime.Predictor(model)`` (row ``el-predictor``: the inference planned
once with the batch normalisations folded, as ONNX Runtime's session plans it when it loads the
model, instead of at every call) and the same network in PyTorch CPU eager under
``torch.inference_mode()``, built layer by layer from the edgelearn model's weights (Conv2D,
DepthwiseConv2D as a grouped convolution, BatchNormalization with the moving statistics,
ReLU6, Add, ZeroPadding2D, AveragePooling2D, Dense) in the channels_last memory format, which is
NHWC like edgelearn's arrays. Before timing, the outputs are compared on the same batch.

The libraries alternate call by call after warm-up calls, each run starting with the next one
(a call right after a peer's can meet that peer's threads still spinning), and the medians are
reported with the ratios. As in ``train_cnn.py``, each thread count runs in
its own child process with OMP_NUM_THREADS / OPENBLAS_NUM_THREADS set and without the
workplace's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE.

edgelearn's first model call raises glibc's mmap and trim thresholds, so that memory freed after
a call is reused by the next one instead of going back to the kernel and being faulted in (and
zeroed) again (``edgelearn.engine.allocator``); both libraries share that heap.
``--glibc-malloc`` leaves glibc's own settings in the children, to show what that is worth.

Run (from the repository root, with the bench extra: ``pip install -e ".[bench]"``):

    python benchmarks/mobilenet_inference.py                    # batch 1 and 8, 1 and 2 threads
    python benchmarks/mobilenet_inference.py --threads 1 --runs 25
    python benchmarks/mobilenet_inference.py --glibc-malloc
    python benchmarks/mobilenet_inference.py --check            # smoke test: 2 runs, 1 warm-up

The first run unpacks the nsfwjs model with node (``edgelearn.applications.nsfwjs``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
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
from train_cnn import blas_info, child_env, cpu_model, import_torch, virtualized

import edgelearn as el
from edgelearn.applications import nsfwjs
from edgelearn.engine import allocator, kernels
from edgelearn.runtime import Predictor

SEED = 0
LIBRARIES = ("edgelearn", "el-predictor", "torch", "onnxruntime")


# ------------------------------------------------------------------------------ the torch twin
def torch_twin(torch: Any, model: Any):
    """A function running ``model`` (an edgelearn Functional model) in PyTorch eager, NCHW
    tensors in the channels_last memory format, with the model's own weights."""
    functional = torch.nn.functional

    def tensor(array: np.ndarray) -> Any:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    def conv_padding(layer: Any, x: Any) -> tuple[Any, int | tuple[int, int]]:
        """TF's 'same' puts the odd pixel after; PyTorch pads symmetrically, so pad first."""
        (top, bottom), (left, right) = kernels.pad_amounts(
            x.shape[2], x.shape[3], layer.kernel_size, layer.strides, layer.padding
        )
        if (top, left) == (bottom, right):
            return x, (top, left)
        return functional.pad(x, (left, right, top, bottom)), 0

    def activation(layer: Any, x: Any) -> Any:
        name = el.activations.serialize(layer.activation)
        ops = {
            "linear": lambda t: t,
            "relu": functional.relu,
            "softmax": lambda t: functional.softmax(t, dim=-1),
        }
        if name not in ops:
            raise NotImplementedError(f"torch twin: activation {name!r} of {layer.name}")
        return ops[name](x)

    ops: list[tuple[Any, list[int], list[int]]] = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        node = layer.inbound_nodes[0]
        ins, outs = [id(t) for t in node.input_tensors], [id(t) for t in node.outputs]
        weights = {w.name.split("/")[-1].split(":")[0]: w.numpy() for w in layer.weights}
        if kind == "Conv2D":
            w = tensor(weights["kernel"].transpose(3, 2, 0, 1)).contiguous(
                memory_format=torch.channels_last
            )
            b = tensor(weights["bias"]) if "bias" in weights else None

            def op(x, layer=layer, w=w, b=b):
                x, pad = conv_padding(layer, x)
                return activation(layer, functional.conv2d(x, w, b, layer.strides, pad))
        elif kind == "DepthwiseConv2D":
            kh, kw, c, m = weights["depthwise_kernel"].shape
            w = tensor(weights["depthwise_kernel"].transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw))
            w = w.contiguous(memory_format=torch.channels_last)
            b = tensor(weights["bias"]) if "bias" in weights else None

            def op(x, layer=layer, w=w, b=b, c=c):
                x, pad = conv_padding(layer, x)
                return activation(layer, functional.conv2d(x, w, b, layer.strides, pad, groups=c))
        elif kind == "BatchNormalization":
            if layer.axis not in (-1, 3):
                raise NotImplementedError(f"torch twin: BatchNormalization axis {layer.axis}")
            stats = [
                tensor(weights[k]) if k in weights else None
                for k in ("moving_mean", "moving_variance", "gamma", "beta")
            ]

            def op(x, stats=stats, eps=layer.epsilon):
                return functional.batch_norm(
                    x, stats[0], stats[1], stats[2], stats[3], training=False, eps=eps
                )
        elif kind == "ReLU":
            if layer.negative_slope or layer.threshold:
                raise NotImplementedError(f"torch twin: leaky or thresholded ReLU {layer.name}")
            top = layer.max_value

            def op(x, top=top):
                return functional.relu(x) if top is None else functional.hardtanh(x, 0.0, top)
        elif kind == "Add":

            def op(*xs):
                return sum(xs[1:], xs[0])
        elif kind == "ZeroPadding2D":
            (top, bottom), (left, right) = layer.padding

            def op(x, pad=(left, right, top, bottom)):
                return functional.pad(x, pad)
        elif kind == "AveragePooling2D" and layer.padding == "valid":

            def op(x, layer=layer):
                return functional.avg_pool2d(x, layer.pool_size, layer.strides)
        elif kind == "Flatten":

            def op(x):
                return x.permute(0, 2, 3, 1).flatten(1)  # NHWC order, as edgelearn flattens
        elif kind == "Dense":
            w, b = tensor(weights["kernel"].T), tensor(weights["bias"])

            def op(x, layer=layer, w=w, b=b):
                return activation(layer, functional.linear(x, w, b))
        elif kind == "Dropout":

            def op(x):
                return x
        else:
            raise NotImplementedError(f"torch twin: layer {kind} ({layer.name})")
        ops.append((op, ins, outs))
    input_id, output_id = id(model.inputs[0]), id(model.outputs[0])

    def run(x_nchw: Any) -> Any:
        values = {input_id: x_nchw}
        for op, ins, outs in ops:
            values[outs[0]] = op(*(values[i] for i in ins))
        return values[output_id]

    return run


# ------------------------------------------------------------------------------ child: measure
def child(args: argparse.Namespace) -> int:
    threads = args.threads[0]
    torch = import_torch()
    limit_threads(threads, torch)
    kernels_used = use_kernels(args.kernels)
    if args.glibc_malloc:
        allocator.keep_freed_memory(False)
    model = el.load_model(nsfwjs.extract_model())
    # edgelearn's inference snapshot: batch norms folded once, as the sessions it is compared
    # with fold them when they load the model.
    predictor = Predictor(model)
    twin = None if torch is None else torch_twin(torch, model)
    try:  # ONNX Runtime on edgelearn's own export: the `onnx` extra's predict backend
        from edgelearn.runtime import OnnxRuntimePredictor

        ort = OnnxRuntimePredictor(model, threads=threads)
    except ImportError:
        ort = None
    rng = np.random.default_rng(SEED)
    times: dict[str, list[float]] = {}
    agreement: dict[str, float] = {}
    for batch in args.batch_size:
        x = rng.uniform(size=(batch, 224, 224, 3)).astype(np.float32)
        calls = {
            "edgelearn": lambda x=x: model.predict_on_batch(x),
            "el-predictor": lambda x=x: predictor.predict_on_batch(x),
        }
        agreement[f"el-predictor/{batch}"] = float(
            np.abs(calls["edgelearn"]() - calls["el-predictor"]()).max()
        )
        if twin is not None:
            # NHWC memory seen as NCHW: the channels_last layout, without a copy.
            x_torch = torch.from_numpy(x).permute(0, 3, 1, 2)

            def run_torch(x_torch=x_torch):
                with torch.inference_mode():
                    return twin(x_torch).numpy()

            calls["torch"] = run_torch
            agreement[f"torch/{batch}"] = float(np.abs(calls["edgelearn"]() - run_torch()).max())
        if ort is not None:
            calls["onnxruntime"] = lambda x=x: ort.predict(x)
            agreement[f"onnxruntime/{batch}"] = float(
                np.abs(calls["edgelearn"]() - ort.predict(x)).max()
            )
        for call in calls.values():
            for _ in range(args.warmup):
                call()
        order = list(calls.items())
        for run in range(args.runs):
            # Each run starts with the next library: a call right after a peer's may share the
            # cores with that peer's threads, still spinning (OpenMP's, ONNX Runtime's).
            for lib, call in order[run % len(order) :] + order[: run % len(order)]:
                begin = time.perf_counter()
                call()
                times.setdefault(f"{lib}/{batch}", []).append(time.perf_counter() - begin)
    result = {
        "threads": threads,
        "times": times,
        "max_abs_difference": agreement,
        "blas": [
            {k: b.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for b in blas_info()
        ],
        "torch_version": torch.__version__ if torch is not None else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "kernels": kernels_used,
        "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
    }
    with open(args.child_output, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


# ------------------------------------------------------------------------------ parent: report
def run_child(args: argparse.Namespace, threads: int) -> dict[str, Any]:
    print(f"measuring with {threads} thread(s) ...", file=sys.stderr, flush=True)
    env = child_env(threads, keep_openblas_env=False)
    with tempfile.TemporaryDirectory(prefix="mobilenet_") as folder:
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
            "--runs",
            str(args.runs),
            "--warmup",
            str(args.warmup),
            "--batch-size",
            *map(str, args.batch_size),
            *(["--glibc-malloc"] if args.glibc_malloc else []),
        ]
        if subprocess.run(command, env=env, check=False).returncode != 0:
            raise SystemExit(f"the benchmark process for {threads} thread(s) failed")
        with open(output, encoding="utf-8") as f:
            return json.load(f)


def report(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    first = results[0]
    print("edgelearn vs PyTorch CPU eager and ONNX Runtime: MobileNetV2 (nsfwjs) inference latency")
    print(
        "(the onnxruntime row is also edgelearn's optional backend: edgelearn.runtime."
        "OnnxRuntimePredictor runs edgelearn's ONNX export of the same model)"
    )
    print(f"date:     {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"cpu:      {cpu_model()}, {os.cpu_count()} logical CPUs, virtualized: {virtualized()}")
    print(f"cores:    {two_core_slowdown()}")
    print(
        f"software: python {platform.python_version()}, numpy {np.__version__}, "
        f"edgelearn {el.__version__} (source {source_revision()}), "
        f"torch {first['torch_version'] or 'not installed'}"
    )
    for result in results:
        blas = ", ".join(
            f"OpenBLAS {b['version']} kernel {b['architecture']}"
            for b in result["blas"]
            if b["internal_api"] == "openblas"
        )
        print(
            f"blas:     threads={result['threads']}: {blas or 'unknown'}; "
            f"torch threads {result['torch_threads'] or 'n/a'}; "
            f"edgelearn kernels {result['kernels']}"
        )
    print(
        "env:      OPENBLAS_THREAD_TIMEOUT="
        f"{first['openblas_thread_timeout'] or 'unset (OpenBLAS default: idle threads spin)'}"
    )
    memory = (
        "glibc's own malloc settings"
        if args.glibc_malloc
        else "freed memory kept in the process (edgelearn's malloc thresholds)"
    )
    print(
        f"method:   median of {args.runs} calls after {args.warmup} warm-up calls, libraries "
        f"alternating; random pixels in [0, 1]; {memory}"
    )
    for result in results:
        for key, diff in result["max_abs_difference"].items():
            peer, batch = key.split("/")
            print(
                f"check:    threads={result['threads']} batch={batch}: max |edgelearn - {peer}| "
                f"of the class probabilities {diff:.1e}"
            )
    print()
    print(
        f"{'library':<12} {'threads':>7} {'batch':>6} {'median ms':>10} {'ms/image':>9} "
        f"{'min':>8} {'max':>8}"
    )
    for result in results:
        for batch in args.batch_size:
            for lib in LIBRARIES:
                times = result["times"].get(f"{lib}/{batch}")
                if times:
                    median = statistics.median(times) * 1e3
                    print(
                        f"{lib:<12} {result['threads']:>7} {batch:>6} {median:>10.1f} "
                        f"{median / batch:>9.1f} {min(times) * 1e3:>8.1f} "
                        f"{max(times) * 1e3:>8.1f}"
                    )
    print()
    for result in results:
        for batch in args.batch_size:
            for peer, hint in (
                ("torch", f"pip install {TORCH_PIN}"),
                ("onnxruntime", "pip install 'edgelearn[onnx]'"),
            ):
                theirs = result["times"].get(f"{peer}/{batch}")
                if not theirs:
                    print(
                        f"threads={result['threads']} batch={batch}: no {peer} to compare "
                        f"with ({hint})"
                    )
                    continue
                for ours, label in (
                    ("edgelearn", "model.predict_on_batch"),
                    ("el-predictor", "runtime.Predictor"),
                ):
                    ratio = statistics.median(result["times"][f"{ours}/{batch}"]) / (
                        statistics.median(theirs)
                    )
                    print(
                        f"edgelearn {label} ({result['kernels']} kernels) time / {peer} time, "
                        f"threads={result['threads']} batch={batch}: {ratio:.2f}"
                    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batch-size", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        help="thread counts, one child process each (default 1 2)",
    )
    parser.add_argument(
        "--runs", type=int, default=15, help="timed calls per library and batch size (default 15)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=3,
        help="untimed calls per library and batch size first (default 3)",
    )
    parser.add_argument(
        "--glibc-malloc",
        action="store_true",
        help="leave glibc's malloc settings as they are (see above)",
    )
    parser.add_argument("--check", action="store_true", help="smoke test: 2 runs, 1 warm-up")
    add_kernels_argument(parser)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check:
        args.runs, args.warmup = 2, 1
    if min(args.batch_size) <= 0 or min(args.threads) <= 0 or args.runs <= 0 or args.warmup < 0:
        parser.error("batch sizes, threads and runs must be positive, warm-up non-negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_output:
        return child(args)
    results = [run_child(args, threads) for threads in args.threads]
    print()
    report(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
