"""Run TensorFlow.js reference computations from the tests.

``run_tfjs(cases)`` sends a whole batch of cases to one ``node tests/tfjs/reference.js`` process
(starting Node and TF.js dominates the cost of a case) and returns one result per case, with
arrays decoded to float32 NumPy arrays; ``script=MERGE_SCRIPT`` sends them to
``tests/tfjs/reference_merge.js`` instead. The case and result formats are described at the top of
those scripts and in ``tests/tfjs/common.js``. Without Node or the npm packages the calling test
is skipped.
"""

import base64
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "tfjs" / "reference.js"
MERGE_SCRIPT = ROOT / "tests" / "tfjs" / "reference_merge.js"
LAYERS_MODEL_SCRIPT = ROOT / "tests" / "tfjs" / "layers_model.js"
TFJS_PACKAGE = ROOT / "node_modules" / "@tensorflow" / "tfjs" / "package.json"


def encode(array):
    """A float32 array as the reference's exact wire form (little-endian bytes in base64)."""
    a = np.ascontiguousarray(array, dtype="<f4")
    return {"dtype": "float32", "shape": list(a.shape), "b64": base64.b64encode(a).decode()}


def decode(obj):
    """Inverse of `encode`; other values (numbers, strings) pass through, containers recurse."""
    if isinstance(obj, dict) and obj.keys() == {"dtype", "shape", "b64"}:
        if obj["dtype"] != "float32":
            raise ValueError(f"unexpected dtype {obj['dtype']!r} from the reference")
        data = np.frombuffer(base64.b64decode(obj["b64"]), dtype="<f4")
        return data.reshape(obj["shape"]).astype(np.float32)
    if isinstance(obj, dict):
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def _encode_tree(obj):
    if isinstance(obj, np.ndarray):
        return encode(obj)
    if isinstance(obj, dict):
        return {k: _encode_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode_tree(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def skip_reason():
    """Why the reference cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not TFJS_PACKAGE.is_file():
        return f"@tensorflow/tfjs is not installed ({TFJS_PACKAGE.parent}); run `npm install`"
    return None


def _run_node(script, args=(), job=None, timeout=120):
    """stdout of ``node script *args`` fed `job` on stdin; skips the test when TF.js is missing."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(f"TF.js unavailable: {reason}")
    proc = subprocess.run(
        ["node", str(script), *args],
        input=job,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        command = " ".join([script.name, *args[:1]])
        raise RuntimeError(f"{command} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


def _results(out, cases, script):
    """The decoded results of a script's output `out` for `cases`, once it is known complete."""
    if out["backend"] != "cpu":
        raise RuntimeError(f"{script.name} ran on backend {out['backend']!r}, expected 'cpu'")
    results = decode(out["results"])
    if len(results) != len(cases):
        raise RuntimeError(f"{len(cases)} cases sent, {len(results)} results came back")
    return results


def run_tfjs(cases, timeout=120, script=SCRIPT):
    """Results for `cases` (dicts whose NumPy arrays are encoded on the way) in the same order.

    A case TF.js could not compute comes back as ``{"error": message}``; a crash of the whole
    process or a timeout raises. Skips the calling test when Node or TF.js is missing.
    """
    job = json.dumps({"cases": _encode_tree(list(cases))})
    return _results(json.loads(_run_node(script, job=job, timeout=timeout)), cases, script)


def run_layers_model(command, cases, workdir):
    """Results of `layers_model.js command` for `cases`, from one Node process, arrays decoded."""
    job, out = workdir / f"{command}-job.json", workdir / f"{command}-out.json"
    job.write_text(json.dumps({"cases": cases}))
    _run_node(LAYERS_MODEL_SCRIPT, [command, str(job), str(out)])
    return _results(json.loads(out.read_text()), cases, LAYERS_MODEL_SCRIPT)
