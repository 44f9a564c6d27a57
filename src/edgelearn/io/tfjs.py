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
    >>> folder = tempfile.mkdtemp() + "/model"
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
import re
import secrets
import shutil
import urllib.parse
from collections.abc import Callable
from typing import Any

import numpy as np

import edgelearn
from edgelearn.layers.base import placeholder_weights
from edgelearn.models import Model, Sequential, model_from_config

SHARD_BYTES = 4 * 1024 * 1024
MODEL_FILE = "model.json"
_DTYPES = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4")}
_QUANTIZED = {"uint8": np.dtype("u1"), "uint16": np.dtype("<u2"), "float16": np.dtype("<f2")}
# A manifest is refused when it claims more than this many elements for one weight, whatever the
# shard sizes say: a guard against shapes crafted to exhaust memory.
_MAX_ELEMENTS = 2**31
# Shard names edgelearn writes (and may remove when it replaces a model it saved).
_SHARD_NAME = re.compile(r"group\d+-shard\d+of\d+(-[0-9a-f]{8})?\.bin")


class ModelFormatError(ValueError):
    """A model file that cannot be read: names the file and what is wrong."""


# --------------------------------------------------------------------------- saving
def quantize(values: np.ndarray, dtype: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Quantize float32 values as the tensorflowjs converter does; returns codes and the
    manifest's ``quantization`` entry.

    Affine (uint8/uint16): ``scale = (max - min) / levels`` over the tensor's own range; when 0 lies
    in the range, ``min`` is nudged to a multiple of ``scale`` so that 0.0 is a code (zero biases
    stay exactly zero); a constant tensor is stored exactly (codes 0, ``min`` = the constant).
    """
    if dtype == "float16":
        return values.astype("<f2"), {"dtype": "float16"}
    if dtype not in ("uint8", "uint16"):
        raise ValueError(
            f"quantize must be 'uint8', 'uint16' or 'float16'. Received: quantize={dtype!r}"
        )
    levels = np.iinfo(_QUANTIZED[dtype]).max
    values64 = np.asarray(values, dtype=np.float64)
    low = float(values64.min()) if values64.size else 0.0
    high = float(values64.max()) if values64.size else 0.0
    if high == low:
        return np.zeros(values64.shape, _QUANTIZED[dtype]), {
            "dtype": dtype,
            "min": low,
            "scale": 1.0,
        }
    scale = (high - low) / levels
    if low <= 0 <= high:
        low = -float(np.round(-low / scale)) * scale
        high = levels * scale + low
    codes = np.round((np.clip(values64, low, high) - low) / scale).astype(_QUANTIZED[dtype])
    return codes, {"dtype": dtype, "min": low, "scale": scale}


def model_artifacts(
    model: Model, quantize_dtype: str | None = None
) -> tuple[dict[str, Any], bytes]:
    """The ``model.json`` content (without paths) and the weight bytes of ``model``."""
    if not model.input_shapes:
        raise ValueError(
            f"Model '{model.name}' is not built yet: "
            "give it an Input or call it on data before saving"
        )
    entries, chunks = [], []
    for variable in model.weights:
        values = np.ascontiguousarray(variable.data, dtype="<f4")
        entry: dict[str, Any] = {
            "name": variable.name,
            "shape": list(values.shape),
            "dtype": "float32",
        }
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


def save(
    model: Model,
    path: str | os.PathLike[str],
    quantize: str | None = None,
    overwrite: bool = True,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` as a TF.js layers-model folder, crash-safely (see :func:`write_artifacts`).

    ``metadata`` (JSON-serialisable) goes into ``model.json`` as ``userDefinedMetadata``, where
    ``tf.loadLayersModel`` keeps it too.
    """
    _check_target(pathlib.Path(path), overwrite)
    content, data = model_artifacts(model, quantize)
    if metadata is not None:
        content["userDefinedMetadata"] = metadata
    write_artifacts(path, content, data, overwrite=overwrite)


def _check_target(target: pathlib.Path, overwrite: bool) -> None:
    if target.exists():
        if not target.is_dir() or not (target / MODEL_FILE).is_file():
            raise FileExistsError(
                f"{target} exists and is not a saved model folder; refusing to replace it"
            )
        if not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")


def write_artifacts(
    path: str | os.PathLike[str], content: dict[str, Any], data: bytes, overwrite: bool = True
) -> None:
    """Write ``model.json`` content and the weight bytes its manifest describes as a model folder.

    The manifest's groups become one group cut into shards of at most 4 MiB. A new folder is
    written beside ``path`` and renamed into place. An existing one is replaced crash-safely: the
    new shards are written and synced under names its ``model.json`` does not use, then
    ``model.json`` is replaced in one atomic rename, and only then are the old shards removed.
    Whenever the process dies, ``model.json`` and the shards it names are one whole model, old
    or new.
    """
    target = pathlib.Path(path)
    _check_target(target, overwrite)
    entries = [entry for group in content["weightsManifest"] for entry in group["weights"]]
    if target.exists():
        _remove_leftovers(target)
        in_use = _referenced_shards(target / MODEL_FILE)
        _write_folder(target, content, entries, data, in_use)
        for name in in_use - set(_manifest_paths(target / MODEL_FILE)):
            (target / name).unlink(missing_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
    staging.mkdir()
    try:
        _write_folder(staging, content, entries, data, set())
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _sync_folder(target.parent)


def _write_folder(
    folder: pathlib.Path, content: dict[str, Any], entries: list[Any], data: bytes, in_use: set[str]
) -> None:
    """Shards first (under names ``in_use`` does not hold), model.json last, by atomic rename."""
    n_shards = math.ceil(len(data) / SHARD_BYTES)
    suffix = "" if not in_use else f"-{secrets.token_hex(4)}"
    paths = [f"group1-shard{i + 1}of{n_shards}{suffix}.bin" for i in range(n_shards)]
    document = {**content, "weightsManifest": [{"paths": paths, "weights": entries}]}
    written: list[pathlib.Path] = []
    try:
        for i, name in enumerate(paths):
            written.append(folder / name)
            _write_synced(folder / name, data[i * SHARD_BYTES : (i + 1) * SHARD_BYTES])
        staged = folder / f".{MODEL_FILE}.{secrets.token_hex(4)}.tmp"
        written.append(staged)
        _write_synced(staged, json.dumps(document, indent=1).encode())
        os.replace(staged, folder / MODEL_FILE)
    except BaseException:
        for file in written:
            file.unlink(missing_ok=True)
        raise
    _sync_folder(folder)


def _manifest_paths(model_file: pathlib.Path) -> list[str]:
    content = json.loads(model_file.read_bytes())
    return [p for group in content["weightsManifest"] for p in group["paths"]]


def _write_synced(path: pathlib.Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_folder(folder: pathlib.Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _referenced_shards(model_file: pathlib.Path) -> set[str]:
    """Shard files the current model.json uses (only plain names inside the folder)."""
    if not model_file.is_file():
        return set()
    try:
        content = json.loads(model_file.read_bytes())
        paths = [p for group in content["weightsManifest"] for p in group["paths"]]
    except (ValueError, KeyError, TypeError):
        return set()
    return {p for p in paths if isinstance(p, str) and _SHARD_NAME.fullmatch(p)}


def _remove_leftovers(folder: pathlib.Path) -> None:
    """Remove what an earlier save killed mid-way left: staged model.json files and shards that
    the current model.json does not name."""
    in_use = _referenced_shards(folder / MODEL_FILE)
    for file in folder.iterdir():
        staged = file.name.startswith(f".{MODEL_FILE}.") and file.name.endswith(".tmp")
        orphan = _SHARD_NAME.fullmatch(file.name) and file.name not in in_use
        if file.is_file() and (staged or orphan):
            file.unlink(missing_ok=True)


# --------------------------------------------------------------------------- loading
def _parse_json(text: bytes, source: str) -> dict[str, Any]:
    try:
        content = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFormatError(f"{source} is not valid JSON: {error}") from None
    if not isinstance(content, dict):
        raise ModelFormatError(f"{source} must hold a JSON object, found {type(content).__name__}")
    return content


def _manifest_plan(
    content: dict[str, Any], source: str
) -> list[tuple[list[str], list[dict[str, Any]], int]]:
    """Validate the manifest; return per group (paths, entries, bytes needed)."""
    manifest = content.get("weightsManifest")
    if not isinstance(manifest, list):
        raise ModelFormatError(f"{source}: 'weightsManifest' must be a list of weight groups")
    plan = []
    for g, group in enumerate(manifest):
        if (
            not isinstance(group, dict)
            or not isinstance(group.get("paths"), list)
            or not isinstance(group.get("weights"), list)
        ):
            raise ModelFormatError(
                f"{source}: weightsManifest[{g}] needs 'paths' and 'weights' lists"
            )
        needed = 0
        for entry in group["weights"]:
            needed += _entry_bytes(entry, f"{source}: weightsManifest[{g}]")
        for path in group["paths"]:
            if not isinstance(path, str):
                raise ModelFormatError(
                    f"{source}: weightsManifest[{g}] has a non-string path {path!r}"
                )
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
                raise ModelFormatError(
                    f"{where}: weight '{name}' quantization lacks a numeric {key!r}"
                )
    return count * _QUANTIZED[quantization["dtype"]].itemsize


def _decode_weights(
    entries: list[dict[str, Any]], data: bytes | memoryview
) -> dict[str, np.ndarray]:
    weights, offset = {}, 0
    for entry in entries:
        shape, quantization = entry["shape"], entry.get("quantization")
        dtype = (
            _DTYPES[entry.get("dtype", "float32")]
            if quantization is None
            else _QUANTIZED[quantization["dtype"]]
        )
        count = math.prod(shape)
        values = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
        offset += count * dtype.itemsize
        if quantization is None:
            values = values.astype(np.float32) if dtype.kind == "f" else values.copy()
        elif quantization["dtype"] == "float16":
            values = values.astype(np.float32)
        else:
            # In float64, rounded once, as TF.js decodes: float32 arithmetic would land an ulp off.
            values = (values * float(quantization["scale"]) + float(quantization["min"])).astype(
                np.float32
            )
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


class WeightSource:
    """Where a model's weight groups come from: ``check`` validates a group's paths (and sizes,
    where that costs no reading) before anything is built; ``read`` returns its bytes."""

    def check(self, paths: list[str], needed: int) -> None:
        raise NotImplementedError

    def read(self, paths: list[str], needed: int) -> bytes:
        raise NotImplementedError


def model_from_artifacts(content: dict[str, Any], weights_from: WeightSource, source: str) -> Model:
    """Build a model from parsed ``model.json`` content, in this order: everything model.json
    alone can show (format, manifest, every weight path and shard size), then the topology with
    placeholder weights compared with the manifest, and only then the shards are read."""
    topology = topology_model_config(content, source)
    plan = _manifest_plan(content, source)
    for paths, group, needed in plan:
        if group:
            weights_from.check(paths, needed)
    try:
        with placeholder_weights():
            model = model_from_config(topology)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise ModelFormatError(
            f"{source}: cannot build the model from its topology: {error}"
        ) from None
    entries = {entry["name"]: entry for _, group, _ in plan for entry in group}
    _check_entries_match(model, entries, source)
    weights: dict[str, np.ndarray] = {}
    for paths, group, needed in plan:
        if group:
            weights.update(_decode_weights(group, weights_from.read(paths, needed)))
    for variable in model.weights:
        variable.data = weights[_manifest_name(variable.name, entries)].astype(
            variable.dtype, copy=False
        )
    return model


def _manifest_name(name: str, entries: dict[str, Any]) -> str:
    # Keras 2 files converted by tensorflowjs sometimes keep the ':0' suffix of TF variables.
    return name if name in entries else f"{name}:0"


def _check_entries_match(model: Model, entries: dict[str, dict[str, Any]], source: str) -> None:
    used = set()
    for variable in model.weights:
        key = _manifest_name(variable.name, entries)
        if key not in entries:
            raise ModelFormatError(
                f"{source}: the weights manifest has no weight '{variable.name}'"
            )
        shape = tuple(entries[key]["shape"])
        if shape != variable.shape:
            raise ModelFormatError(
                f"{source}: weight '{variable.name}' has shape {list(shape)} in the manifest but "
                f"the topology needs {list(variable.shape)}"
            )
        used.add(key)
    unused = sorted(set(entries) - used)
    if unused:
        raise ModelFormatError(
            f"{source}: the weights manifest has weights the model lacks: {unused[:5]}"
        )


class FolderSource(WeightSource):
    """Shards in a model folder; paths must stay inside it."""

    def __init__(self, folder: pathlib.Path, source: str):
        self.folder, self.root, self.source = folder, folder.resolve(), source

    def _files(self, paths: list[str]) -> list[pathlib.Path]:
        return [_safe_local_path(self.root, path, self.source) for path in paths]

    def check(self, paths, needed):
        files = self._files(paths)
        sizes = []
        for file in files:
            if not file.is_file():
                raise ModelFormatError(
                    f"{self.source}: weight shard {file.name} is missing from {self.folder}"
                )
            sizes.append(file.stat().st_size)
        if sum(sizes) < needed:
            raise ModelFormatError(
                f"{self.source}: weight shards {', '.join(f.name for f in files)} "
                f"hold {sum(sizes)} "
                f"bytes but the manifest needs {needed}"
            )

    def read(self, paths, needed):
        data = b"".join(file.read_bytes() for file in self._files(paths))
        if len(data) < needed:  # the files changed since check()
            raise ModelFormatError(
                f"{self.source}: weight shards hold {len(data)} bytes, need {needed}"
            )
        return data


def _safe_local_path(root: pathlib.Path, path: str, source: str) -> pathlib.Path:
    parsed = urllib.parse.urlparse(path)
    if parsed.scheme or parsed.netloc or os.path.isabs(path) or path.startswith(("/", "\\")):
        raise ModelFormatError(
            f"{source}: weight path {path!r} must be relative to the model folder"
        )
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
        raise FileNotFoundError(
            f"No TF.js model at {location}: expected a folder with {MODEL_FILE}"
        )
    source = str(model_file)
    content = _parse_json(model_file.read_bytes(), source)
    return model_from_artifacts(content, FolderSource(model_file.parent, source), source)


class UrlSource(WeightSource):
    """Shards next to a model.json URL: same scheme and host, inside the model's folder."""

    def __init__(self, url: str, fetch: Callable[[str], bytes]):
        self.url, self.base, self.fetch = url, urllib.parse.urlparse(url), fetch

    def _addresses(self, paths: list[str]) -> list[str]:
        folder = posixpath.dirname(self.base.path)
        addresses = []
        for path in paths:
            parsed = urllib.parse.urlparse(path)
            if parsed.scheme or parsed.netloc or path.startswith("/"):
                raise ModelFormatError(
                    f"{self.url}: weight path {path!r} must be relative to the model URL"
                )
            joined = posixpath.normpath(posixpath.join(folder, path))
            if not joined.startswith(folder.rstrip("/") + "/"):
                raise ModelFormatError(
                    f"{self.url}: weight path {path!r} leaves the model's folder"
                )
            addresses.append(
                urllib.parse.urlunparse(self.base._replace(path=joined, query="", fragment=""))
            )
        return addresses

    def check(self, paths, needed):
        self._addresses(paths)

    def read(self, paths, needed):
        data = b"".join(self.fetch(address) for address in self._addresses(paths))
        if len(data) < needed:
            raise ModelFormatError(
                f"{self.url}: weight shards hold {len(data)} bytes but the manifest needs {needed}"
            )
        return data


def load_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``userDefinedMetadata`` of a saved layers model (an empty dict when it has none)."""
    location = pathlib.Path(path)
    model_file = location / MODEL_FILE if location.is_dir() else location
    if not model_file.is_file():
        raise FileNotFoundError(
            f"No TF.js model at {location}: expected a folder with {MODEL_FILE}"
        )
    metadata = (
        _parse_json(model_file.read_bytes(), str(model_file)).get("userDefinedMetadata") or {}
    )
    if not isinstance(metadata, dict):
        raise ModelFormatError(f"{model_file}: 'userDefinedMetadata' must be a JSON object")
    return metadata


def _load_url(url: str, timeout: float = 30.0) -> Model:
    import urllib.request  # only for URLs: it imports http, ssl and email

    def fetch(address: str) -> bytes:
        with urllib.request.urlopen(address, timeout=timeout) as response:  # http(s) only
            return response.read()

    content = _parse_json(fetch(url), url)
    return model_from_artifacts(content, UrlSource(url, fetch), url)


__all__ = [
    "FolderSource",
    "ModelFormatError",
    "UrlSource",
    "WeightSource",
    "load",
    "load_metadata",
    "model_artifacts",
    "model_from_artifacts",
    "quantize",
    "save",
    "write_artifacts",
]
