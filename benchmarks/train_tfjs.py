"""Training throughput of the TF.js codelab CNN: edgelearn against TensorFlow.js in node.

The same network (Conv2D 8@5x5 relu, MaxPooling2D 2/2, Conv2D 16@5x5 relu, MaxPooling2D 2/2,
Flatten, Dense 10 softmax; Adam 1e-3) trains on the same real MNIST digits, batch 64, in
edgelearn (``model.train_on_batch``, one BLAS thread, since TF.js' cpu backend is single-threaded
JavaScript) and in node with ``@tensorflow/tfjs`` 4.22 from node_modules (``tfjs-node`` cannot
install offline): the cpu backend from the default build (what ``require('@tensorflow/tfjs')``
gives) and from the es2017 build, and the wasm backend (``@tensorflow/tfjs-backend-wasm``), which
cannot train convnets in 4.22 (no Conv2DBackpropFilter kernel) and is reported as such. The
libraries alternate for ``--repeats`` rounds; medians and ratios are printed.

Run from the repository root after ``make setup``:

    python benchmarks/train_tfjs.py              # ~2 minutes
    python benchmarks/train_tfjs.py --repeats 1  # quick look
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import statistics
import subprocess
import tempfile
import time

import numpy as np
from _common import limit_threads, source_revision

import edgelearn as el
from edgelearn.demos.mnist import codelab_cnn, prepare

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "tfjs_train.js"
VARIANTS = (
    ("tfjs cpu (default build)", "cpu", "default"),
    ("tfjs cpu (es2017 build)", "cpu", "es2017"),
    ("tfjs wasm", "wasm", "default"),
)


def edgelearn_rate(x: np.ndarray, y: np.ndarray, batch: int, steps: int) -> float:
    model = codelab_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.train_on_batch(x[:batch], y[:batch])  # warm-up
    begin = time.perf_counter()
    for i in range(1, steps + 1):
        start = (i * batch) % (len(x) - batch)
        model.train_on_batch(x[start : start + batch], y[start : start + batch])
    return batch * steps / (time.perf_counter() - begin)


def tfjs_rate(data: pathlib.Path, batch: int, steps: int, backend: str, build: str) -> dict:
    result = subprocess.run(
        ["node", str(SCRIPT), str(data), str(batch), str(steps), backend, build],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {
            "error": result.stderr.strip().splitlines()[-1]
            if result.stderr.strip()
            else "no output"
        }
    return json.loads(lines[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50, help="edgelearn steps per measurement")
    parser.add_argument("--tfjs-steps", type=int, default=5, help="TF.js steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    limit_threads(1, None)
    (x_train, y_train), _ = el.datasets.mnist.load_data(source="local")
    x, y = prepare(x_train), y_train
    rates: dict[str, list[float]] = {"edgelearn": []}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as work:
        data = pathlib.Path(work, "digits.bin")
        data.write_bytes(np.concatenate([x.ravel(), y.astype(np.float32)]).astype("<f4").tobytes())
        for _ in range(args.repeats):
            rates["edgelearn"].append(edgelearn_rate(x, y, args.batch_size, args.steps))
            for name, backend, build in VARIANTS:
                if name in errors:
                    continue
                result = tfjs_rate(data, args.batch_size, args.tfjs_steps, backend, build)
                if "error" in result:
                    errors[name] = result["error"]
                else:
                    rates.setdefault(name, []).append(result["images_per_second"])
    print(
        "edgelearn vs TensorFlow.js (node, @tensorflow/tfjs 4.22): codelab CNN training, "
        f"batch {args.batch_size}"
    )
    print(
        f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; edgelearn "
        f"{source_revision()}; edgelearn on 1 BLAS thread; {args.repeats} rounds, interleaved"
    )
    ours = statistics.median(rates["edgelearn"])
    print(f"{'library':<26}{'median images/s':>16}{'edgelearn / it':>16}")
    for name, values in rates.items():
        median = statistics.median(values)
        ratio = "" if name == "edgelearn" else f"{ours / median:>15.0f}x"
        print(f"{name:<26}{median:>16,.1f}{ratio:>16}")
    for name, error in errors.items():
        print(f"{name:<26}  cannot train: {error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
