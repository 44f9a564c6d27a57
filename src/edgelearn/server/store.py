"""The playground's models folder: listing, serving, receiving uploads and predicting.

Every model is a TF.js layers-model folder ``<models>/<name>/`` (``model.json`` + shards), the
format ``model.save`` writes and ``tf.loadLayersModel`` reads. This module has no web framework
in it: the FastAPI routes in :mod:`edgelearn.server.app` call it and turn its exceptions into
HTTP status codes, so the rules (names, validation, atomic writes) are testable on their own.

Example:
    >>> import tempfile, edgelearn as el
    >>> store = ModelStore(tempfile.mkdtemp())
    >>> el.Sequential([el.layers.Input((3,)), el.layers.Dense(2)]).save(store.folder / "tiny")
    >>> [info["name"] for info in store.list()]
    ['tiny']
    >>> store.predict("tiny", [[1.0, 2.0, 3.0]])["shape"]
    [1, 2]
    >>> check_name("../etc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    edgelearn.server.store.InvalidName: invalid model name '../etc': use 1-64 letters, ...
"""

from __future__ import annotations

import datetime
import json
import math
import os
import pathlib
import re
import shutil
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from edgelearn.io import tfjs
from edgelearn.io.tfjs import ModelFormatError, WeightSource
from edgelearn.layers.base import placeholder_weights
from edgelearn.models import Model, model_from_config

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MODEL_FILE = tfjs.MODEL_FILE
# What building a model from an untrusted topology may raise besides ModelFormatError: a crafted
# model.json must get a 422 with the reason, never a 500.
_BUILD_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError)
#: What ``tf.io.http`` names the two parts of its multipart body (tfjs-core ``io/http.js``).
UPLOAD_JSON_PART = "model.json"
UPLOAD_WEIGHTS_PART = "model.weights.bin"
# Staging folders live inside the models folder (same file system, so the final rename is
# atomic) and start with a dot, so listing and name validation never see them.


class StoreError(Exception):
    """Base class: ``status`` is the HTTP status the server answers with."""

    status = 400


class InvalidName(StoreError):
    status = 400


class NotFound(StoreError):
    status = 404


class AlreadyExists(StoreError):
    status = 409


class InvalidModel(StoreError):
    """The upload is not a layers model edgelearn can build (bad JSON, manifest or topology)."""

    status = 422


class ShapeMismatch(StoreError):
    """Predict inputs whose shape the model cannot take."""

    status = 422

    def __init__(
        self, message: str, input_name: str, expected: list[int | None], received: list[int]
    ):
        super().__init__(message)
        self.input_name, self.expected, self.received = input_name, expected, received


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`InvalidName`.

    Names are one path component by construction (no ``/``, no leading dot), so they can never
    leave the models folder.

    Example:
        >>> check_name("mnist-cnn_v1.2")
        'mnist-cnn_v1.2'
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidName(
            f"invalid model name {name!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def manifest_files(content: dict[str, Any]) -> list[str]:
    """The weight files a parsed ``model.json`` names (plain relative paths, './' removed)."""
    files = []
    for group in content.get("weightsManifest") or []:
        for path in group.get("paths", []) if isinstance(group, dict) else []:
            if isinstance(path, str):
                files.append(path[2:] if path.startswith("./") else path)
    return files


def _tensor_specs(names: Iterable[str], shapes: Iterable[tuple]) -> list[dict[str, Any]]:
    return [{"name": n, "shape": list(s)} for n, s in zip(names, shapes)]


def describe_model(model: Model) -> dict[str, Any]:
    """Names, shapes and parameter count of a built model (what ``GET /api/models`` lists)."""
    return {
        "params": int(model.count_params()),
        "inputs": _tensor_specs(model.input_names, model.input_shapes),
        "outputs": _tensor_specs(model.output_names, model.output_shapes),
    }


class _UploadedWeights(WeightSource):
    """The bytes of the ``model.weights.bin`` part: every weight group, in manifest order.

    ``tf.io.http`` sends one group whose path is ``./model.weights.bin``; the paths are ignored
    (the server names its own shard) and the groups are read one after the other.
    """

    def __init__(self, data: bytes, source: str):
        self.data, self.source = data, source
        self.claimed = 0
        self.offset = 0

    def check(self, paths: list[str], needed: int) -> None:
        self.claimed += needed
        if self.claimed > len(self.data):
            raise ModelFormatError(
                f"{self.source}: the '{UPLOAD_WEIGHTS_PART}' part holds {len(self.data)} bytes "
                f"but the weights manifest needs at least {self.claimed}"
            )

    def read(self, paths: list[str], needed: int) -> bytes:
        chunk = self.data[self.offset : self.offset + needed]
        self.offset += needed
        return chunk


def _parse_upload_json(data: bytes, source: str) -> dict[str, Any]:
    try:
        content = json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidModel(
            f"{source}: the '{UPLOAD_JSON_PART}' part is not valid JSON: {error}"
        ) from None
    if not isinstance(content, dict) or not isinstance(content.get("weightsManifest"), list):
        raise InvalidModel(
            f"{source}: the '{UPLOAD_JSON_PART}' part must be a JSON object with "
            "'modelTopology' and 'weightsManifest' (what tf.io.http sends)"
        )
    return content


class ModelStore:
    """A folder of TF.js layers models, one sub-folder per model.

    Args:
        folder: the models folder (created if missing).
        allow_overwrite: whether an upload may replace an existing model (it must also ask for
            it); without it an upload to an existing name is refused with 409.
    """

    def __init__(self, folder: str | os.PathLike[str], allow_overwrite: bool = False):
        self.folder = pathlib.Path(folder).expanduser().resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.allow_overwrite = allow_overwrite
        # One lock for commits (check-then-rename must not interleave) and one per model for
        # predict: a model's layers keep no per-call state we rely on, but NumPy work on one
        # model from many threads only competes for the same cores anyway.
        self._commit_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._models: dict[str, tuple[tuple[int, int], Model, threading.Lock]] = {}
        self._descriptions: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}

    # ------------------------------------------------------------------ reading
    def model_dir(self, name: str) -> pathlib.Path:
        """The folder of an existing model; :class:`NotFound` if there is none."""
        folder = self.folder / check_name(name)
        if not (folder / MODEL_FILE).is_file():
            raise NotFound(f"no model named {name!r}")
        return folder

    def _content(self, name: str) -> tuple[pathlib.Path, dict[str, Any]]:
        model_file = self.model_dir(name) / MODEL_FILE
        try:
            content = json.loads(model_file.read_bytes())
        except (OSError, ValueError) as error:
            raise InvalidModel(f"{name}/model.json cannot be read: {error}") from None
        if not isinstance(content, dict):
            raise InvalidModel(f"{name}/model.json does not hold a JSON object")
        return model_file, content

    def file_path(self, name: str, filename: str) -> pathlib.Path:
        """``model.json`` or a weight file that the model's manifest names, else NotFound.

        Only files the manifest lists are served, and only when they resolve inside the
        model's folder: a manifest cannot be used to read anything else.
        """
        folder = self.model_dir(name)
        if filename == MODEL_FILE:
            return folder / MODEL_FILE
        _, content = self._content(name)
        if filename not in manifest_files(content):
            raise NotFound(f"model {name!r} has no weight file {filename!r}")
        path = (folder / filename).resolve()
        if not path.is_relative_to(folder.resolve()) or not path.is_file():
            raise NotFound(f"model {name!r} has no weight file {filename!r}")
        return path

    @staticmethod
    def _stamp(model_file: pathlib.Path) -> tuple[int, int]:
        stat = model_file.stat()
        return stat.st_mtime_ns, stat.st_size

    def describe(self, name: str) -> dict[str, Any]:
        """name, size, created, params, input and output shapes of one model.

        Shapes come from building the topology with placeholder weights (no shard is read);
        the result is cached until ``model.json`` changes.
        """
        model_file, content = self._content(name)
        folder = model_file.parent
        stamp = self._stamp(model_file)
        cached = self._descriptions.get(name)
        if cached is None or cached[0] != stamp:
            try:
                topology = tfjs.topology_model_config(content, f"{name}/model.json")
                with placeholder_weights():
                    model = model_from_config(topology)
            except _BUILD_ERRORS as error:
                raise InvalidModel(f"{name}/model.json: {error}") from None
            cached = (stamp, describe_model(model))
            self._descriptions[name] = cached
        files = [folder / MODEL_FILE] + [folder / f for f in manifest_files(content)]
        size = sum(f.stat().st_size for f in files if f.is_file())
        created = datetime.datetime.fromtimestamp(model_file.stat().st_mtime, datetime.UTC)
        return {"name": name, "size": size, "created": created.isoformat(), **cached[1]}

    def list(self) -> list[dict[str, Any]]:
        """Every readable model in the folder, by name. Unreadable ones are skipped (a model
        being replaced, a folder someone dropped in by hand), never fatal to the listing."""
        models = []
        for entry in sorted(self.folder.iterdir()):
            if not NAME_PATTERN.fullmatch(entry.name) or not (entry / MODEL_FILE).is_file():
                continue
            try:
                models.append(self.describe(entry.name))
            except (StoreError, OSError):
                continue
        return models

    def load(self, name: str) -> tuple[Model, threading.Lock]:
        """The model (cached until its ``model.json`` changes) and the lock to predict under."""
        model_file = self.model_dir(name) / MODEL_FILE
        stamp = self._stamp(model_file)
        with self._cache_lock:
            cached = self._models.get(name)
            if cached is not None and cached[0] == stamp:
                return cached[1], cached[2]
        try:
            model = tfjs.load(model_file.parent)
        except ModelFormatError as error:
            raise InvalidModel(str(error)) from None
        except _BUILD_ERRORS as error:
            raise InvalidModel(f"{name}: cannot build the model: {error!r}") from None
        entry = (stamp, model, threading.Lock())
        with self._cache_lock:
            self._models[name] = entry
        return model, entry[2]

    # ------------------------------------------------------------------ predicting
    def predict(self, name: str, inputs: Any) -> dict[str, Any]:
        """Run model ``name`` on nested-list ``inputs``; the answer ``/api/predict`` returns.

        A single-input model takes one array (its first axis is the batch); a model with several
        inputs takes a dict ``{input_name: array}``. The outputs come back as nested lists of
        float32 values (exact in JSON: each float32 is a float64 that round-trips).

        Example:
            >>> import tempfile, edgelearn as el
            >>> store = ModelStore(tempfile.mkdtemp())
            >>> el.Sequential([el.layers.Input((2,)), el.layers.Dense(1)]).save(store.folder / "m")
            >>> store.predict("m", [[1, 2, 3]])  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            edgelearn.server.store.ShapeMismatch: input '...' expects shape [None, 2] ...[1, 3]
        """
        model, lock = self.load(name)
        names = model.input_names
        if len(names) == 1:
            arrays = [self._array(inputs, names[0])]
        elif isinstance(inputs, dict) and set(inputs) == set(names):
            arrays = [self._array(inputs[n], n) for n in names]
        else:
            raise InvalidModel(
                f'model {name!r} has {len(names)} inputs: send {{"inputs": {{name: array}}}} '
                f"with the names {names}"
            )
        for array, input_name, shape in zip(arrays, names, model.input_shapes):
            expected = list(shape)
            fits = array.ndim == len(expected) and all(
                e is None or e == r for e, r in zip(expected, array.shape)
            )
            if not fits or array.shape[0] == 0:
                raise ShapeMismatch(
                    f"input {input_name!r} expects shape {expected} (None: any size), received "
                    f"{list(array.shape)}",
                    input_name,
                    expected,
                    list(array.shape),
                )
        with lock:
            outputs = model.predict(arrays if len(arrays) > 1 else arrays[0])
        if len(model.output_names) == 1:
            return {"outputs": np.asarray(outputs).tolist(), "shape": list(np.shape(outputs))}
        return {
            "outputs": {n: np.asarray(o).tolist() for n, o in zip(model.output_names, outputs)},
            "shape": {n: list(np.shape(o)) for n, o in zip(model.output_names, outputs)},
        }

    @staticmethod
    def _array(value: Any, input_name: str) -> np.ndarray:
        try:
            array = np.asarray(value, dtype=np.float32)
        except (ValueError, TypeError):
            raise ShapeMismatch(
                f"input {input_name!r} must be a rectangular nested list of numbers",
                input_name,
                [],
                [],
            ) from None
        if not np.all(np.isfinite(array)):
            raise InvalidModel(f"input {input_name!r} holds NaN or infinite values")
        return array

    # ------------------------------------------------------------------ receiving
    def receive(
        self, name: str, model_json: bytes, weights: bytes | None, overwrite: bool = False
    ) -> dict[str, Any]:
        """Validate an upload (the two parts ``tf.io.http`` sends) and commit it atomically.

        Order: name, then existence (409 before any work), then the JSON, manifest and topology
        are parsed and the whole model is built by edgelearn with the uploaded weights; only a
        model that builds is written. A new model is written into a staging folder and renamed
        into place; a replaced model gets a freshly named shard and then one atomic rename of
        ``model.json`` (the scheme ``model.save`` uses). Readers see the old model or the new
        one, never a mixture; on any error the folder is as it was.
        """
        check_name(name)
        self.check_may_write(name, overwrite)
        source = f"upload '{name}'"
        content = _parse_upload_json(model_json, source)
        data = weights or b""
        reader = _UploadedWeights(data, source)
        try:
            model = tfjs.model_from_artifacts(content, reader, source)
        except ModelFormatError as error:
            raise InvalidModel(str(error)) from None
        except _BUILD_ERRORS as error:  # a topology edgelearn cannot build
            raise InvalidModel(f"{source}: cannot build the model: {error!r}") from None
        if reader.offset != len(data):
            raise InvalidModel(
                f"{source}: the '{UPLOAD_WEIGHTS_PART}' part holds {len(data)} bytes but the "
                f"weights manifest describes {reader.offset}"
            )
        with self._commit_lock:
            self.check_may_write(name, overwrite)
            target = self.folder / name
            tfjs.write_artifacts(target, content, data, overwrite=True)
            # The model just built is the one on disk now: keep it for /api/predict. (Inside the
            # commit lock, so the stamp cannot belong to a later upload.)
            entry = (self._stamp(target / MODEL_FILE), model, threading.Lock())
            with self._cache_lock:
                self._models[name] = entry
        return self.describe(name)

    def check_may_write(self, name: str, overwrite: bool) -> None:
        """Raise :class:`AlreadyExists` unless an upload to ``name`` may be written."""
        check_name(name)
        target = self.folder / name
        if not target.exists():
            return
        if not (target / MODEL_FILE).is_file():
            raise AlreadyExists(f"{name!r} exists in the models folder and is not a model")
        if not self.allow_overwrite:
            raise AlreadyExists(
                f"a model named {name!r} exists and this server does not replace models "
                "(start it with --allow-overwrite, then ask with ?overwrite=true)"
            )
        if not overwrite:
            raise AlreadyExists(
                f"a model named {name!r} exists: choose another name or ask to replace it "
                "with ?overwrite=true"
            )

    def remove_staging_leftovers(self) -> None:
        """Remove staging folders a killed server left behind (called at start-up)."""
        for entry in self.folder.iterdir():
            # edgelearn.io.tfjs.write_artifacts stages a new model as .<name>.<hex>.tmp
            if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)


def upload_limit_text(limit: int) -> str:
    """``104857600`` -> ``'100 MiB'`` (for error messages).

    Example:
        >>> upload_limit_text(3 * 2**20)
        '3 MiB'
    """
    mib = limit / 2**20
    return f"{mib:g} MiB" if mib >= 1 else f"{math.ceil(limit / 1024)} KiB"
