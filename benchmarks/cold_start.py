"""Cold start: a fresh Python process that imports a library, loads a saved model, predicts once.

The issue's target is under 0.5 s for edgelearn. Two models, batch 1:

- the TensorFlow.js codelab CNN (Conv 8@5x5 relu, max-pool, Conv 16@5x5 relu, max-pool,
  Flatten, Dense 10 softmax; 28x28x1), with seeded random weights;
- the real MobileNetV2 that npm nsfwjs@4.4.0 ships (224x224x3, 162 layers, 2.6 M parameters).

Each is saved once, before timing, in each library's own format:

- edgelearn: a TF.js layers-model folder (``model.save``; nsfwjs' own folder for MobileNetV2),
  read back with ``el.load_model``: with the core install (numba blocked in the child), with
  the jit extra, and with the jit extra in pieces (numba's import and the kernel module's
  timed apart before the model loads, printed under the table);
- edgelearn + ONNX Runtime: the same folder, then ``edgelearn.runtime.OnnxRuntimePredictor``
  (the export to ONNX happens inside the timed process);
- PyTorch: a TorchScript file (``torch.jit.trace`` of an equivalent NCHW network built from the
  edgelearn weights, then ``torch.jit.freeze``, which folds the BatchNormalizations), read with
  ``torch.jit.load`` and run under ``torch.inference_mode()``;
- ONNX Runtime: the ``.onnx`` file written by ``edgelearn.io.onnx.export``, read by
  ``onnxruntime.InferenceSession``.

Every variant takes NHWC float32 pixels and returns the class probabilities; before timing,
the PyTorch and ONNX outputs are checked against edgelearn's. A measurement is the wall time of
``subprocess.run([python, "-c", snippet])`` from the parent: interpreter start-up, imports,
loading and the one prediction; the snippet also reports its own phases (import, load,
predict). A bare ``python -c pass`` is measured too. edgelearn's modules are byte-compiled
first, as an install compiles them (:func:`byte_compile_edgelearn`). One discarded round warms the OS file cache
(so this is a fresh process, not a cold boot), then ``--runs`` rounds run every variant once
each, interleaved; the table gives medians (min and max beside them).

Threads: children run with OMP_NUM_THREADS / OPENBLAS_NUM_THREADS = ``--threads`` (default 1),
ONNX Runtime with that many intra-op threads, and without the workplace's OPENBLAS_CORETYPE /
OPENBLAS_L2_SIZE (as in ``train_cnn.py``).

Run (from the repository root, with the bench extra: ``pip install -e ".[bench]"``):

    python benchmarks/cold_start.py                 # 7 rounds (~1 min)
    python benchmarks/cold_start.py --runs 15 --threads 2
    python benchmarks/cold_start.py --check         # smoke test: 1 round
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import importlib.util
import json
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
from _common import source_revision
from train_cnn import child_env, cpu_model, import_torch

import edgelearn as el
from edgelearn.applications import nsfwjs
from edgelearn.demos.mnist import codelab_cnn
from edgelearn.engine import kernels
from edgelearn.io import onnx as el_onnx

TARGET_S = 0.5

# The timed snippets: argv[1] = model file or folder, argv[2] = raw float32 input, argv[3] = its
# shape as "1,28,28,1", argv[4] = threads. Each prints its phases as JSON.
_CLOCK = "import time; t0 = time.perf_counter()\n"
_REPORT = (
    "import json; t3 = time.perf_counter()\n"
    "print(json.dumps({'import': t1 - t0, 'load': t2 - t1, 'predict': t3 - t2, "
    "'sum': float(y.sum())}))\n"
)
_EDGELEARN = (
    "import numpy as np\n"
    "import edgelearn as el\n"
    "t1 = time.perf_counter()\n"
    "model = el.load_model(sys.argv[1])\n"
    "t2 = time.perf_counter()\n"
    "shape = tuple(int(d) for d in sys.argv[3].split(','))\n"
    "y = model.predict(np.fromfile(sys.argv[2], dtype=np.float32).reshape(shape))\n"
)
SNIPPETS = {
    "python": "pass",
    # The core install, NumPy only: numba cannot be imported, as where the jit extra is absent.
    "edgelearn": _CLOCK + "import sys\nsys.modules['numba'] = None\n" + _EDGELEARN + _REPORT,
    # With the jit extra: the first prediction imports numba and loads its cached kernels.
    "edgelearn + numba": _CLOCK + "import sys\n" + _EDGELEARN + _REPORT,
    # The same, with numba's import and the kernel module's (its decorators) timed apart before
    # the model loads: what is left in "predict" is loading the cached kernels (numba's type
    # registries first) and the prediction itself.
    "edgelearn + numba, in pieces": _CLOCK
    + (
        "import json\n"
        "import sys\n"
        "import numpy as np\n"
        "import edgelearn as el\n"
        "ta = time.perf_counter()\n"
        "import numba\n"
        "tb = time.perf_counter()\n"
        "from edgelearn.engine import jit\n"
        "jit.enabled()\n"
        "tc = time.perf_counter()\n"
        "model = el.load_model(sys.argv[1])\n"
        "t2 = time.perf_counter()\n"
        "shape = tuple(int(d) for d in sys.argv[3].split(','))\n"
        "y = model.predict(np.fromfile(sys.argv[2], dtype=np.float32).reshape(shape))\n"
        "t3 = time.perf_counter()\n"
        "print(json.dumps({'import': ta - t0, 'numba': tb - ta, 'kernels': tc - tb, "
        "'load': t2 - tc, 'predict': t3 - t2, 'sum': float(y.sum())}))\n"
    ),
    "edgelearn + ORT": _CLOCK
    + (
        "import sys\n"
        "import numpy as np\n"
        "import edgelearn as el\n"
        "from edgelearn.runtime import OnnxRuntimePredictor\n"
        "t1 = time.perf_counter()\n"
        "predictor = OnnxRuntimePredictor(el.load_model(sys.argv[1]), threads=int(sys.argv[4]))\n"
        "t2 = time.perf_counter()\n"
        "shape = tuple(int(d) for d in sys.argv[3].split(','))\n"
        "y = predictor.predict(np.fromfile(sys.argv[2], dtype=np.float32).reshape(shape))\n"
    )
    + _REPORT,
    "PyTorch (TorchScript)": _CLOCK
    + (
        "import sys\n"
        "import torch\n"
        "t1 = time.perf_counter()\n"
        "model = torch.jit.load(sys.argv[1])\n"
        "t2 = time.perf_counter()\n"
        "shape = tuple(int(d) for d in sys.argv[3].split(','))\n"
        "size = 1\n"
        "for d in shape: size *= d\n"
        "x = torch.from_file(sys.argv[2], size=size, dtype=torch.float32).reshape(shape)\n"
        "with torch.inference_mode():\n"
        "    y = model(x)\n"
    )
    + _REPORT,
    "ONNX Runtime": _CLOCK
    + (
        "import sys\n"
        "import numpy as np\n"
        "import onnxruntime as ort\n"
        "t1 = time.perf_counter()\n"
        "options = ort.SessionOptions()\n"
        "options.intra_op_num_threads = int(sys.argv[4])\n"
        "options.inter_op_num_threads = 1\n"
        "session = ort.InferenceSession(sys.argv[1], options, providers=['CPUExecutionProvider'])\n"
        "t2 = time.perf_counter()\n"
        "shape = tuple(int(d) for d in sys.argv[3].split(','))\n"
        "x = np.fromfile(sys.argv[2], dtype=np.float32).reshape(shape)\n"
        "(y,) = session.run(None, {session.get_inputs()[0].name: x})\n"
    )
    + _REPORT,
}


# ------------------------------------------------------------------------------ PyTorch twin
def _steps(model: el.Model) -> list[tuple[Any, list[Any], Any, list[tuple]]]:
    """(layer, input keys, output key, input shapes) in running order, for either model kind."""
    if isinstance(model, el.Sequential):
        shape, steps = model.input_shape, []
        for i, layer in enumerate(model.layers):
            steps.append((layer, [i], i + 1, [shape]))
            shape = layer.compute_output_shape(shape)
        return steps
    return [
        (
            node.layer,
            [id(t) for t in node.input_tensors],
            id(node.outputs[0]),
            [t.shape for t in node.input_tensors],
        )
        for node in model._nodes
    ]


def torch_twin(torch: Any, model: el.Model) -> Any:
    """An eval-mode torch module computing what ``model`` computes: NHWC in, NCHW inside.

    Covers the layers of the two benchmark models (convolutions, BatchNormalization, ReLU,
    padding, pooling, Flatten, Dense, Dropout, Add, softmax).
    """
    nn, F = torch.nn, torch.nn.functional
    L = el.layers

    def tensor(variable: Any) -> Any:
        return torch.from_numpy(np.array(variable.data, dtype=np.float32))

    def activation(function: Callable[..., Any]) -> Callable[[Any], Any]:
        name = el.activations.serialize(function)
        table = {
            "linear": lambda x: x,
            "relu": torch.relu,
            "relu6": F.relu6,
            "softmax": lambda x: torch.softmax(x, dim=1),
        }
        if name not in table:
            raise NotImplementedError(f"no PyTorch twin for activation {name!r}")
        return table[name]

    def same_pad(layer: Any, shape: tuple) -> Callable[[Any], Any]:
        (top, bottom), (left, right) = kernels.pad_amounts(
            shape[1], shape[2], layer.kernel_size, layer.strides, layer.padding
        )
        if not (top or bottom or left or right):
            return lambda x: x
        return lambda x: F.pad(x, (left, right, top, bottom))

    class Twin(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.parts = nn.ModuleList()
            self.plan: list[tuple[Callable[..., Any], list[Any], Any]] = []
            self.inputs = [0] if isinstance(model, el.Sequential) else [id(t) for t in model.inputs]
            self.outputs = (
                [len(model.layers)]
                if isinstance(model, el.Sequential)
                else [id(t) for t in model.outputs]
            )
            for layer, inputs, output, shapes in _steps(model):
                self.plan.append((self.convert(layer, shapes[0]), inputs, output))

        def add(self, module: Any) -> Any:
            self.parts.append(module)
            return module

        def convert(self, layer: Any, shape: tuple) -> Callable[..., Any]:
            kind = type(layer)
            if kind in (L.Conv2D, L.DepthwiseConv2D):
                depthwise = kind is L.DepthwiseConv2D
                kernel = tensor(layer.depthwise_kernel if depthwise else layer.kernel)
                kh, kw, cin, cout = kernel.shape
                if depthwise:  # (kh, kw, C, M) -> (C*M, 1, kh, kw), groups of M per channel
                    weight = kernel.reshape(kh, kw, cin * cout).permute(2, 0, 1)[:, None]
                    conv = nn.Conv2d(
                        cin,
                        cin * cout,
                        (kh, kw),
                        layer.strides,
                        groups=cin,
                        bias=layer.bias is not None,
                    )
                else:
                    weight = kernel.permute(3, 2, 0, 1)
                    conv = nn.Conv2d(
                        cin, cout, (kh, kw), layer.strides, bias=layer.bias is not None
                    )
                conv.weight.data.copy_(weight)
                if layer.bias is not None:
                    conv.bias.data.copy_(tensor(layer.bias))
                self.add(conv)
                pad, act = same_pad(layer, shape), activation(layer.activation)
                return lambda x: act(conv(pad(x)))
            if kind is L.BatchNormalization and layer.axis in (-1, len(shape) - 1):
                norm = self.add(
                    (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(
                        shape[-1], eps=layer.epsilon
                    )
                )
                norm.running_mean.copy_(tensor(layer.moving_mean))
                norm.running_var.copy_(tensor(layer.moving_variance))
                if layer.gamma is not None:
                    norm.weight.data.copy_(tensor(layer.gamma))
                if layer.beta is not None:
                    norm.bias.data.copy_(tensor(layer.beta))
                return norm
            if kind is L.ReLU and not layer.negative_slope and not layer.threshold:
                top = layer.max_value
                return torch.relu if top is None else (lambda x: torch.clamp(x, 0.0, top))
            if kind is L.ZeroPadding2D:
                (top, bottom), (left, right) = layer.padding
                return lambda x: F.pad(x, (left, right, top, bottom))
            if kind in (L.MaxPooling2D, L.AveragePooling2D) and layer.padding == "valid":
                pool = nn.MaxPool2d if kind is L.MaxPooling2D else nn.AvgPool2d
                return self.add(pool(layer.pool_size, layer.strides))
            if kind is L.Flatten:  # Keras flattens NHWC
                return lambda x: x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)
            if kind is L.Dense:
                linear = self.add(
                    nn.Linear(*tensor(layer.kernel).shape, bias=layer.bias is not None)
                )
                linear.weight.data.copy_(tensor(layer.kernel).T)
                if layer.bias is not None:
                    linear.bias.data.copy_(tensor(layer.bias))
                act = activation(layer.activation)
                return lambda x: act(linear(x))
            if kind is L.Dropout:
                return lambda x: x
            if kind is L.Add:
                return lambda *xs: sum(xs[1:], xs[0])
            raise NotImplementedError(f"no PyTorch twin for {kind.__name__} '{layer.name}'")

        def forward(self, *xs: Any) -> Any:
            values = {
                key: x.permute(0, 3, 1, 2) if x.dim() == 4 else x for key, x in zip(self.inputs, xs)
            }
            for function, inputs, output in self.plan:
                values[output] = function(*(values[k] for k in inputs))
            outs = [
                values[k].permute(0, 2, 3, 1) if values[k].dim() == 4 else values[k]
                for k in self.outputs
            ]
            return outs[0] if len(outs) == 1 else tuple(outs)

    return Twin().eval()


# ------------------------------------------------------------------------------ preparation
def prepare(folder: str, torch: Any | None, threads: int) -> list[dict[str, Any]]:
    """Save both models in every format under ``folder``; check the saved copies agree."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    el.random.set_random_seed(0)
    cnn = codelab_cnn()
    cnn_folder = os.path.join(folder, "codelab_cnn")
    cnn.save(cnn_folder)
    mobilenet_folder = str(nsfwjs.extract_model("mobilenet_v2"))
    cases = []
    for name, model, saved, shape in (
        ("codelab CNN", cnn, cnn_folder, (1, 28, 28, 1)),
        (
            "MobileNetV2 (nsfwjs)",
            el.load_model(mobilenet_folder),
            mobilenet_folder,
            (1, 224, 224, 3),
        ),
    ):
        stem = os.path.join(folder, name.split()[0].lower())
        x = rng.random(shape, dtype=np.float32)
        x.tofile(stem + ".f32")
        expected = model.predict(x)
        onnx_path = stem + ".onnx"
        el_onnx.export(model, onnx_path)
        session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        diffs = {
            "ONNX Runtime": float(
                np.abs(session.run(None, {session.get_inputs()[0].name: x})[0] - expected).max()
            )
        }
        files = {
            "python": "",
            "edgelearn": saved,
            "edgelearn + ORT": saved,
            "ONNX Runtime": onnx_path,
        }
        if importlib.util.find_spec("numba") is not None:  # the jit extra is installed
            files["edgelearn + numba"] = saved
            files["edgelearn + numba, in pieces"] = saved
        if torch is not None:
            torch.set_num_threads(threads)
            with torch.inference_mode():
                traced = torch.jit.freeze(
                    torch.jit.trace(torch_twin(torch, model), torch.from_numpy(x))
                )
            torch_path = stem + ".pt"
            torch.jit.save(traced, torch_path)
            with torch.inference_mode():
                ours = torch.jit.load(torch_path)(torch.from_numpy(x)).numpy()
            diffs["PyTorch (TorchScript)"] = float(np.abs(ours - expected).max())
            files["PyTorch (TorchScript)"] = torch_path
        cases.append(
            {
                "name": name,
                "shape": shape,
                "input": stem + ".f32",
                "files": files,
                "diffs": diffs,
                "params": model.count_params(),
            }
        )
    return cases


# ------------------------------------------------------------------------------ measuring
def run_once(variant: str, case: dict[str, Any], threads: int, env: dict[str, str]) -> dict:
    command = [sys.executable, "-c", SNIPPETS[variant]]
    if variant != "python":
        command += [
            case["files"][variant],
            case["input"],
            ",".join(map(str, case["shape"])),
            str(threads),
        ]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{variant} on {case['name']} failed:\n{done.stderr[-2000:]}")
    phases = json.loads(done.stdout.strip().splitlines()[-1]) if variant != "python" else {}
    return {"wall": wall, **phases}


def byte_compile_edgelearn() -> None:
    """Compile edgelearn's modules to ``.pyc`` files, as ``pip install`` does. This checkout is
    an editable install, and where PYTHONDONTWRITEBYTECODE is set (this workplace sets it) no
    child would write them: each would compile every edgelearn module from source (~0.1 s on
    this project's machine), a cost PyTorch and ONNX Runtime, installed with theirs, never pay.
    """
    compileall.compile_dir(os.path.dirname(el.__file__), quiet=1)


def measure(cases: list[dict[str, Any]], runs: int, threads: int, keep_env: bool) -> dict:
    env = child_env(threads, keep_env)
    byte_compile_edgelearn()
    jobs = [("python", cases[0])] + [
        (variant, case)
        for case in cases
        for variant in SNIPPETS
        if variant != "python" and variant in case["files"]
    ]
    results: dict[tuple[str, str], list[dict]] = {}
    for round_ in range(runs + 1):  # round 0 warms the file cache and is discarded
        print(f"round {round_}/{runs} ...", file=sys.stderr, flush=True)
        for variant, case in jobs:
            result = run_once(variant, case, threads, env)
            if round_:
                key = (variant, "-" if variant == "python" else case["name"])
                results.setdefault(key, []).append(result)
    return results


def summarize(samples: list[dict]) -> dict[str, float]:
    summary = {
        "median": statistics.median(s["wall"] for s in samples),
        "min": min(s["wall"] for s in samples),
        "max": max(s["wall"] for s in samples),
    }
    for phase in ("import", "load", "predict", "numba", "kernels"):
        if phase in samples[0]:
            summary[phase] = statistics.median(s[phase] for s in samples)
    return summary


def print_report(args: argparse.Namespace, cases: list[dict], results: dict) -> None:
    import onnxruntime as ort

    torch = sys.modules.get("torch")
    print(f"# cold start, {datetime.datetime.now(datetime.UTC):%a %b %d %H:%M UTC %Y}")
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs; Python "
        f"{platform.python_version()}; numpy {np.__version__}; onnxruntime {ort.__version__}; "
        f"torch {torch.__version__ if torch else 'not installed'}; edgelearn {el.__version__} "
        f"at {source_revision()}"
    )
    print(
        f"{args.runs} interleaved rounds after 1 warm-up round; {args.threads} thread(s); "
        "wall time of the whole child process, seen by the parent\n"
    )
    for case in cases:
        checks = ", ".join(f"{k} {v:.1e}" for k, v in case["diffs"].items())
        print(
            f"{case['name']}: input {case['shape']}, {case['params']:,} parameters; max abs "
            f"difference from edgelearn's predict: {checks}"
        )
    print()
    header = (
        "| model | library | median s | min | max | import | load | predict "
        f"| median / {TARGET_S} s target |"
    )
    print(header)
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    for (variant, model), samples in results.items():
        s = summarize(samples)
        phases = " | ".join(f"{s[p]:.3f}" if p in s else "" for p in ("import", "load", "predict"))
        print(
            f"| {model} | {variant} | {s['median']:.3f} | {s['min']:.3f} | {s['max']:.3f} "
            f"| {phases} | {s['median'] / TARGET_S:.2f}x |"
        )
    print()
    for (variant, model), samples in results.items():
        if variant == "edgelearn + numba, in pieces":
            s = summarize(samples)
            print(
                f"- {model}, the jit extra in pieces: numba's import {s['numba']:.3f} s, the "
                f"kernel module's decorators {s['kernels']:.3f} s, then the first prediction "
                f"{s['predict']:.3f} s (numba's type registries and the cached kernels load "
                "in it)"
            )
    for case in cases:
        own = summarize(results[("edgelearn", case["name"])])["median"]
        verdict = "meets" if own < TARGET_S else "misses"
        others = ", ".join(
            f"{variant} {summarize(results[(variant, case['name'])])['median'] / own:.2f}x"
            for variant in SNIPPETS
            if variant not in ("python", "edgelearn", "edgelearn + numba, in pieces")
            and (variant, case["name"]) in results
        )
        print(
            f"- {case['name']}: edgelearn {own:.3f} s {verdict} the < {TARGET_S} s target "
            f"({own / TARGET_S:.2f}x of it); the others relative to edgelearn: {others}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--threads", type=int, default=1, help="threads per child (default 1)")
    parser.add_argument(
        "--keep-openblas-env",
        action="store_true",
        help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in the children",
    )
    parser.add_argument("--check", action="store_true", help="smoke test: one round")
    args = parser.parse_args(argv)
    if args.check:
        args.runs = 1
    if args.runs < 1 or args.threads < 1:
        parser.error("--runs and --threads must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        el_onnx.require("onnxruntime")
        el_onnx.require("onnx")
    except ImportError as error:
        raise SystemExit(str(error)) from None
    torch = import_torch()
    with tempfile.TemporaryDirectory(prefix="cold_start_") as folder:
        cases = prepare(folder, torch, args.threads)
        results = measure(cases, args.runs, args.threads, args.keep_openblas_env)
        print_report(args, cases, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
