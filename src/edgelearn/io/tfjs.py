"""The TensorFlow.js layers-model format: edgelearn's own format for saved models.

A model folder holds:

- ``model.json``: ``{"format": "layers-model", "generatedBy": ..., "modelTopology": {Keras JSON},
  "weightsManifest": [{"paths": ["group1-shard1of1.bin", ...], "weights": [{"name":
  "dense/kernel", "shape": [784, 10], "dtype": "float32", "quantization"?: {...}}, ...]}]}``;
- the shards: the weights' little-endian bytes, in manifest order, concatenated across a group's
  paths and cut into files of at most 4 MiB.

A quantized weight stores ``uint8``/``uint16`` codes ``q`` with ``value = q * scale + min``, or
``float16`` values. ``tf.loadLayersModel`` reads these folders unchanged, and edgelearn reads what
TensorFlow.js and its converter write. See docs/formats.md.

Reading checks everything it can before it allocates: JSON syntax, the manifest's dtypes and
shapes against the file sizes and the model's weights, and that every weight path stays inside
the model's folder (or, for a URL, on the same host).

Example:
    >>> import tempfile, numpy as np, edgelearn as el
    >>> model = el.Sequential([el.layers.Input((3,)), el.layers.Dense(2)])
    >>> folder = tempfile.mkdtemp()
    >>> model.save(folder)
    >>> np.allclose(el.load_model(folder).predict(np.ones((1, 3))), model.predict(np.ones((1, 3))))
    True
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import posixpath
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import numpy as np

import edgelearn
from edgelearn.models import Model, Sequential, model_from_config

SHARD_BYTES = 4 * 1024 * 1024
MODEL_FILE = "model.json"
_DTYPES = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4")}
_QUANTIZED = {"uint8": np.dtype("u1"), "uint16": np.dtype("<u2"), "float16": np.dtype("<f2")}
# A manifest is refused when it claims more than this many elements for one weight, whatever the
# shard sizes say: a guard against shapes crafted to exhaust memory.
_MAX_ELEMENTS = 2**31


class ModelFormatError(ValueError):
    """A model file that cannot be read: names the file and what is wrong."""


# --------------------------------------------------------------------------- saving
def quantize(values: np.ndarray, dtype: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Quantize float32 values as the TF.js converter does; returns codes and the manifest entry.

    Affine (uint8/uint16) quantization nudges ``min`` so that 0.0 is exactly representable, as
    the converter does, so zero weights (biases) stay exactly zero.
    """
    if dtype == "float16":
        return values.astype("<f2"), {"dtype": "float16"}
    if dtype not in ("uint8", "uint16"):
        raise ValueError(f"quantize must be 'uint8', 'uint16' or 'float16'. Received: quantize={dtype!r}")
    levels = np.iinfo(_QUANTIZED[dtype]).max
    low, high = min(float(values.min(initial=0.0)), 0.0), max(float(values.max(initial=0.0)), 0.0)
    scale = (high - low) / levels if high > low else 1.0
    zero_point = round(-low / scale)
    nudged_min = -zero_point * scale
    codes = np.clip(np.round((values - nudged_min) / scale), 0, levels).astype(_QUANTIZED[dtype])
    return codes, {"dtype": dtype, "min": nudged_min, "scale": scale}


def model_artifacts(model: Model, quantize_dtype: str | None = None) -> tuple[dict[str, Any], bytes]:
    """The ``model.json`` content (without paths) and the weight bytes of ``model``."""
    if not model.input_shapes:
        raise ValueError(
            f"Model '{model.name}' is not built yet: give it an Input or call it on data before saving"
        )
    entries, chunks = [], []
    for variable in model.weights:
        values = np.ascontiguousarray(variable.data, dtype="<f4")
        entry: dict[str, Any] = {"name": variable.name, "shape": list(values.shape), "dtype": "float32"}
        if quantize_dtype is not None:
            values, entry["quantization"] = quantize(values, quantize_dtype)
        entries.append(entry)
        chunks.append(values.tobytes())
    class_name = "Sequential" if isinstance(model, Sequential) else "Model"
    topology = {
        "class_name": class_name,
        "config": model.get_config(),
        "keras_version": f"edgelearn {edgelearn.__version__}",
        "backend": "tensor_flow.js",
    }
    content = {
        "format": "layers-model",
        "generatedBy": f"edgelearn {edgelearn.__version__}",
        "convertedBy": None,
        "modelTopology": topology,
        "weightsManifest": [{"paths": [], "weights": entries}],
    }
    return content, b"".join(chunks)


def save(model: Model, path: str | os.PathLike[str], quantize: str | None = None,
         overwrite: bool = True) -> None:
    """Write ``model`` as a TF.js layers-model folder, atomically.

    Everything is written into a temporary folder beside ``path`` and renamed into place, so a
    crash mid-save leaves any previous model at ``path`` intact.
    """
    target = pathlib.Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    if target.exists() and not (target / MODEL_FILE).is_file():
        raise FileExistsError(f"{target} exists and is not a saved model folder; refusing to replace it")
    content, data = model_artifacts(model, quantize)
    n_shards = max(1, math.ceil(len(data) / SHARD_BYTES))
    paths = [f"group1-shard{i + 1}of{n_shards}.bin" for i in range(n_shards)]
    content["weightsManifest"][0]["paths"] = paths
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for i, name in enumerate(paths):
            _write_synced(staging / name, data[i * SHARD_BYTES : (i + 1) * SHARD_BYTES])
        _write_synced(staging / MODEL_FILE, json.dumps(content, indent=1).encode())
        _replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_synced(path: pathlib.Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _replace_folder(staging: pathlib.Path, target: pathlib.Path) -> None:
    """Swap ``staging`` into ``target``: the old folder is moved aside first, removed last."""
    if not target.exists():
        os.replace(staging, target)
        return
    backup = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    backup.rmdir()
    os.replace(target, backup)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)


# --------------------------------------------------------------------------- loading
def _parse_json(text: bytes, source: str) -> dict[str, Any]:
    try:
        content = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFormatError(f"{source} is not valid JSON: {error}") from None
    if not isinstance(content, dict):
        raise ModelFormatError(f"{source} must hold a JSON object, found {type(content).__name__}")
    return content


def _manifest_plan(content: dict[str, Any], source: str) -> list[tuple[list[str], list[dict[str, Any]], int]]:
    """Validate the manifest; return per group (paths, entries, bytes needed)."""
    manifest = content.get("weightsManifest")
    if not isinstance(manifest, list):
        raise ModelFormatError(f"{source}: 'weightsManifest' must be a list of weight groups")
    plan = []
    for g, group in enumerate(manifest):
        if not isinstance(group, dict) or not isinstance(group.get("paths"), list) or not isinstance(
            group.get("weights"), list
        ):
            raise ModelFormatError(f"{source}: weightsManifest[{g}] needs 'paths' and 'weights' lists")
        needed = 0
        for entry in group["weights"]:
            needed += _entry_bytes(entry, f"{source}: weightsManifest[{g}]")
        for path in group["paths"]:
            if not isinstance(path, str):
                raise ModelFormatError(f"{source}: weightsManifest[{g}] has a non-string path {path!r}")
        plan.append((group["paths"], group["weights"], needed))
    return plan


def _entry_bytes(entry: Any, where: str) -> int:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ModelFormatError(f"{where}: every weight needs a 'name', found {entry!r}")
    name, shape, dtype = entry["name"], entry.get("shape"), entry.get("dtype", "float32")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ModelFormatError(f"{where}: weight '{name}' has an invalid shape {shape!r}")
    if dtype not in _DTYPES:
        raise ModelFormatError(
            f"{where}: weight '{name}' has dtype {dtype!r}; supported: {', '.join(_DTYPES)}"
        )
    count = math.prod(shape)
    if count > _MAX_ELEMENTS:
        raise ModelFormatError(f"{where}: weight '{name}' claims an absurd shape {shape}")
    quantization = entry.get("quantization")
    if quantization is None:
        return count * _DTYPES[dtype].itemsize
    if not isinstance(quantization, dict) or quantization.get("dtype") not in _QUANTIZED:
        raise ModelFormatError(
            f"{where}: weight '{name}' has quantization {quantization!r}; supported dtypes: "
            f"{', '.join(_QUANTIZED)}"
        )
    if quantization["dtype"] != "float16":
        for key in ("scale", "min"):
            if not isinstance(quantization.get(key), (int, float)):
                raise ModelFormatError(f"{where}: weight '{name}' quantization lacks a numeric {key!r}")
    return count * _QUANTIZED[quantization["dtype"]].itemsize


def _decode_weights(entries: list[dict[str, Any]], data: bytes | memoryview) -> dict[str, np.ndarray]:
    weights, offset = {}, 0
    for entry in entries:
        shape, quantization = entry["shape"], entry.get("quantization")
        dtype = _DTYPES[entry.get("dtype", "float32")] if quantization is None else _QUANTIZED[quantization["dtype"]]
        count = math.prod(shape)
        values = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
        offset += count * dtype.itemsize
        if quantization is None:
            values = values.astype(np.float32) if dtype.kind == "f" else values.copy()
        elif quantization["dtype"] == "float16":
            values = values.astype(np.float32)
        else:
            values = (values.astype(np.float32) * np.float32(quantization["scale"])
                      + np.float32(quantization["min"]))
        weights[entry["name"]] = values
    return weights


def topology_model_config(content: dict[str, Any], source: str) -> dict[str, Any]:
    """The ``{"class_name", "config"}`` of the model, whether or not wrapped in ``model_config``."""
    if content.get("format") not in (None, "layers-model"):
        raise ModelFormatError(
            f"{source} is a {content.get('format')!r}, not a layers model (format 'layers-model')"
        )
    topology = content.get("modelTopology")
    if not isinstance(topology, dict):
        raise ModelFormatError(f"{source}: 'modelTopology' must be a JSON object")
    if "model_config" in topology:  # written by the tensorflowjs converter from Keras files
        topology = topology["model_config"]
    if not isinstance(topology, dict) or "class_name" not in topology:
        raise ModelFormatError(f"{source}: the model topology needs a 'class_name' and a 'config'")
    return topology


def model_from_artifacts(content: dict[str, Any], read_group: Callable[[list[str], int], bytes],
                         source: str) -> Model:
    """Build a model from parsed ``model.json`` content; ``read_group(paths, n_bytes)`` returns a
    weight group's bytes after checking it holds ``n_bytes``."""
    topology = topology_model_config(content, source)
    plan = _manifest_plan(content, source)
    try:
        model = model_from_config(topology)
    except (ValueError, TypeError, KeyError) as error:
        raise ModelFormatError(f"{source}: cannot build the model from its topology: {error}") from None
    entries = {entry["name"]: entry for _, group, _ in plan for entry in group}
    _check_entries_match(model, entries, source)
    weights: dict[str, np.ndarray] = {}
    for paths, group, needed in plan:
        if group:
            weights.update(_decode_weights(group, read_group(paths, needed)))
    model.set_weights([weights[_manifest_name(v.name, entries)] for v in model.weights])
    return model


def _manifest_name(name: str, entries: dict[str, Any]) -> str:
    # Keras 2 files converted by tensorflowjs sometimes keep the ':0' suffix of TF variables.
    return name if name in entries else f"{name}:0"


def _check_entries_match(model: Model, entries: dict[str, dict[str, Any]], source: str) -> None:
    used = set()
    for variable in model.weights:
        key = _manifest_name(variable.name, entries)
        if key not in entries:
            raise ModelFormatError(f"{source}: the weights manifest has no weight '{variable.name}'")
        shape = tuple(entries[key]["shape"])
        if shape != variable.shape:
            raise ModelFormatError(
                f"{source}: weight '{variable.name}' has shape {list(shape)} in the manifest but "
                f"the topology needs {list(variable.shape)}"
            )
        used.add(key)
    unused = sorted(set(entries) - used)
    if unused:
        raise ModelFormatError(f"{source}: the weights manifest has weights the model lacks: {unused[:5]}")


def _folder_reader(folder: pathlib.Path, source: str) -> Callable[[list[str], int], bytes]:
    root = folder.resolve()

    def read_group(paths: list[str], needed: int) -> bytes:
        files = [_safe_local_path(root, path, source) for path in paths]
        sizes = []
        for file in files:
            if not file.is_file():
                raise ModelFormatError(f"{source}: weight shard {file.name} is missing from {folder}")
            sizes.append(file.stat().st_size)
        if sum(sizes) < needed:
            raise ModelFormatError(
                f"{source}: weight shards {', '.join(f.name for f in files)} hold {sum(sizes)} bytes "
                f"but the manifest needs {needed}"
            )
        return b"".join(file.read_bytes() for file in files)

    return read_group


def _safe_local_path(root: pathlib.Path, path: str, source: str) -> pathlib.Path:
    parsed = urllib.parse.urlparse(path)
    if parsed.scheme or parsed.netloc or os.path.isabs(path) or path.startswith(("/", "\\")):
        raise ModelFormatError(f"{source}: weight path {path!r} must be relative to the model folder")
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise ModelFormatError(f"{source}: weight path {path!r} leaves the model folder")
    return resolved


def load(path: str | os.PathLike[str]) -> Model:
    """Load a layers model from a folder, its ``model.json``, or an ``http(s)://`` URL."""
    text = str(path)
    if text.startswith(("http://", "https://")):
        return _load_url(text)
    location = pathlib.Path(path)
    model_file = location / MODEL_FILE if location.is_dir() else location
    if not model_file.is_file():
        raise FileNotFoundError(f"No TF.js model at {location}: expected a folder with {MODEL_FILE}")
    source = str(model_file)
    content = _parse_json(model_file.read_bytes(), source)
    return model_from_artifacts(content, _folder_reader(model_file.parent, source), source)


def _load_url(url: str, timeout: float = 30.0) -> Model:
    base = urllib.parse.urlparse(url)

    def fetch(address: str) -> bytes:
        with urllib.request.urlopen(address, timeout=timeout) as response:  # noqa: S310 (http(s) only)
            return response.read()

    content = _parse_json(fetch(url), url)

    def read_group(paths: list[str], needed: int) -> bytes:
        chunks = []
        for path in paths:
            parsed = urllib.parse.urlparse(path)
            if parsed.scheme or parsed.netloc or path.startswith("/"):
                raise ModelFormatError(f"{url}: weight path {path!r} must be relative to the model URL")
            joined = posixpath.normpath(posixpath.join(posixpath.dirname(base.path), path))
            if not joined.startswith(posixpath.dirname(base.path).rstrip("/") + "/"):
                raise ModelFormatError(f"{url}: weight path {path!r} leaves the model's folder")
            chunks.append(fetch(urllib.parse.urlunparse(base._replace(path=joined, query="", fragment=""))))
        data = b"".join(chunks)
        if len(data) < needed:
            raise ModelFormatError(f"{url}: weight shards hold {len(data)} bytes but the manifest needs {needed}")
        return data

    return model_from_artifacts(content, read_group, url)


__all__ = ["ModelFormatError", "load", "model_artifacts", "model_from_artifacts", "quantize", "save"]
