"""Keras model files: Keras 3 ``.keras`` archives and Keras 2 ``.h5`` / ``.hdf5`` files.

Both formats hold the model's Keras JSON and its weights in HDF5; they differ in where:

- ``.keras`` (Keras 3, and tf.keras 2.13+): a zip archive with ``config.json`` (``{"module":
  "keras", "class_name": "Sequential" | "Functional", "config": {...}}``), ``metadata.json`` and
  ``model.weights.h5``. In the HDF5 file the weights of the i-th layer of ``model.layers`` lie
  at ``layers/<key>/vars/0``, ``.../vars/1``, ... in the layer's ``weights`` order, where
  ``<key>`` is the snake_case class name made unique by a counter in layer order (``dense``,
  ``dense_1``, ``conv2d``...), not the layer's name. Recent Keras 3 versions (3.15.1 does)
  record the layer's name in the ``name`` attribute of each ``vars`` group; it is checked when
  present. tf.keras 2.13-2.15 wrote ``_layer_checkpoint_dependencies/`` where Keras 3 writes
  ``layers/``. Other members of the archive (``assets/``, optimizer state) are ignored.
- ``.h5`` (Keras 2 ``model.save("x.h5")``, also written by Keras 3 on request): root attributes
  ``model_config`` (the JSON), ``keras_version`` and ``backend``; the weights under
  ``model_weights/<layer name>/``, whose ``weight_names`` attribute lists the datasets in the
  layer's ``weights`` order (``conv2d_1/kernel:0`` in Keras 2, ``sequential/conv2d/kernel`` in
  Keras 3). Weights-only files (``model.save_weights("x.h5")``) have the same layout at the
  root; :func:`load_weights` reads those, matching layers by order as Keras does, or by name.

Nothing is unpickled or executed: ``Lambda`` layers (marshalled Python code) are refused, HDF5
soft and external links and external datasets are refused, and every weight's count and shape is
checked against the model before any is assigned. Activity regularizers and weight constraints,
which only act in training and which edgelearn does not implement yet, are dropped with a
warning; weight regularizers are kept.

h5py is an optional dependency: ``pip install edgelearn[keras]``.

Example (a one-layer ``.keras`` archive written by hand, to show the layout):
    >>> import io, json, tempfile, zipfile
    >>> import h5py, numpy as np, edgelearn as el
    >>> config = {"class_name": "Sequential", "config": {"layers": [
    ...     {"class_name": "InputLayer", "config": {"batch_shape": [None, 2]}},
    ...     {"class_name": "Dense", "config": {"name": "out", "units": 1}}]}}
    >>> weights = io.BytesIO()
    >>> with h5py.File(weights, "w") as h5:
    ...     h5["layers/dense/vars/0"] = np.ones((2, 1), np.float32)
    ...     h5["layers/dense/vars/1"] = np.zeros(1, np.float32)
    >>> path = tempfile.mkdtemp() + "/tiny.keras"
    >>> with zipfile.ZipFile(path, "w") as archive:
    ...     archive.writestr("config.json", json.dumps(config))
    ...     archive.writestr("model.weights.h5", weights.getvalue())
    >>> el.load_model(path).predict(np.array([[1.0, 2.0]]))
    array([[3.]], dtype=float32)
"""

from __future__ import annotations

import copy
import io
import json
import os
import pathlib
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from edgelearn.io.tfjs import ModelFormatError
from edgelearn.layers import InputLayer, Layer
from edgelearn.layers.base import snake_case
from edgelearn.models import Model, Sequential, model_from_config

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
INSTALL_HINT = "pip install edgelearn[keras] (or: pip install h5py)"
# config.json is read whole; a model's JSON is kilobytes, so a bigger member is not a model.
_MAX_CONFIG_BYTES = 64 * 1024 * 1024
# Members are read into memory. Keras stores them uncompressed; one that would expand more than
# this many times past this size is a zip bomb (Keras' own loader has the same guard).
_MAX_EXPANSION = 100
_BOMB_FLOOR_BYTES = 256 * 1024 * 1024
# Keras 3 config keys edgelearn's layers and initializers do not take, with the value at which
# they change nothing: such entries are dropped, any other value is passed on (and refused).
_INERT_KEYS: dict[str, Any] = {
    "optional": False,  # InputLayer
    "synchronized": False,  # BatchNormalization (cross-device statistics)
    "renorm": False,
    "renorm_clipping": None,
    "quantization_config": None,  # Dense, EinsumDense
    "lora_rank": None,
}
_INERT_INITIALIZER_KEYS: dict[str, Any] = {"input_axes": None, "output_axes": None}


# --------------------------------------------------------------------------- files
def _h5py() -> Any:
    """Import h5py on first use, so ``import edgelearn`` works without it."""
    try:
        import h5py
    except ImportError:
        raise ImportError(f"Reading Keras files needs h5py: {INSTALL_HINT}") from None
    return h5py


def sniff(path: str | os.PathLike[str]) -> str | None:
    """``"zip"``, ``"hdf5"`` or None, from the first bytes of the file at ``path``.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile(suffix=".bin") as handle:
        ...     _ = handle.write(b"PK\\x03\\x04rest"); handle.flush()
        ...     sniff(handle.name)
        'zip'
    """
    with open(path, "rb") as handle:
        head = handle.read(len(HDF5_MAGIC))
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head == HDF5_MAGIC:
        return "hdf5"
    return None


def _open_h5(file: Any, source: str) -> Any:
    """Open an HDF5 file (path or file object) read-only, naming ``source`` if it is corrupt."""
    h5py = _h5py()
    try:
        return h5py.File(file, "r")
    except OSError as error:
        raise ModelFormatError(f"{source} is not a readable HDF5 file: {error}") from None


def _decode(value: Any) -> Any:
    """h5py returns attribute strings as bytes or str depending on how they were written."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8")
    return value


def _names(value: Any) -> list[str]:
    """A ``layer_names`` / ``weight_names`` attribute as a list of str (an empty one may be a
    float array)."""
    return [str(_decode(v)) for v in np.asarray(value).reshape(-1)] if np.size(value) else []


def _child(parent: Any, name: str, source: str) -> Any:
    """``parent[name]`` (a group or dataset, or None if absent), refusing soft and external
    links: they point elsewhere in the file or into other files."""
    h5py = _h5py()
    current = parent
    for part in name.split("/"):
        if not isinstance(current, h5py.Group):  # a crafted file may put a dataset on the path
            raise ModelFormatError(f"{source}: {current.name} must be an HDF5 group")
        link = current.get(part, getlink=True) if part else None
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            raise ModelFormatError(
                f"{source}: {current.name.rstrip('/')}/{part} is a {type(link).__name__}; only "
                "plain HDF5 groups and datasets are read"
            )
        current = current[part]
    return current


def _checked_dataset(dataset: Any, where: str, source: str) -> Any:
    """``dataset`` once it is known to be a float dataset stored in the file itself; it is read
    only after its shape has been checked, so a crafted shape cannot exhaust memory."""
    h5py = _h5py()
    if not isinstance(dataset, h5py.Dataset):
        raise ModelFormatError(f"{source}: {where} must be an HDF5 dataset")
    if dataset.external or dataset.is_virtual:
        raise ModelFormatError(f"{source}: {where} stores its data outside the file; refused")
    if dataset.dtype.kind != "f":
        raise ModelFormatError(
            f"{source}: {where} has dtype {dataset.dtype}; expected float16, float32 or float64"
        )
    return dataset


# --------------------------------------------------------------------------- config
def _walk_dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk_dicts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_dicts(item)


def _layer_configs(config: Any) -> list[dict[str, Any]]:
    """The layer entries of a model config, in Keras' ``model.layers`` order (none where the
    config has no such list)."""
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else inner
    if not isinstance(layers, list):
        return []
    return [layer for layer in layers if isinstance(layer, dict)]


def _config_entries(config: Any) -> list[tuple[str, Any]]:
    """(class name, layer name) of each layer of a model config that Keras 3 keys weights by: all
    but InputLayer, which Sequential.layers omits and which has none."""
    entries = []
    for layer in _layer_configs(config):
        if layer.get("class_name") == "InputLayer":
            continue
        arguments = layer.get("config")
        named = isinstance(arguments, dict) and "name" in arguments
        entries.append(
            (str(layer.get("class_name")), arguments["name"] if named else layer.get("name"))
        )
    return entries


def _drop_inert(mapping: dict[str, Any], inert: dict[str, Any]) -> None:
    for key, value in inert.items():
        if key in mapping and mapping[key] == value:
            del mapping[key]


def prepare_config(config: Any, source: str) -> dict[str, Any]:
    """Check a Keras model config and adapt it to edgelearn's layers; returns a copy.

    Refuses ``Lambda`` layers, drops Keras 3 keys that are at values which change nothing, and
    drops activity regularizers and weight constraints (training-only) with a warning.

    Example:
        >>> config = {"class_name": "Sequential", "config": {"layers": [{"class_name":
        ...     "InputLayer", "config": {"batch_shape": [None, 3], "optional": False}}]}}
        >>> prepare_config(config, "model.keras")["config"]["layers"][0]["config"]
        {'batch_shape': [None, 3]}
    """
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ModelFormatError(f"{source}: the model config needs a 'class_name' and a 'config'")
    for entry in _walk_dicts(config):
        if entry.get("class_name") == "Lambda":
            name = (entry.get("config") or {}).get("name", "?")
            raise ModelFormatError(
                f"{source}: layer '{name}' is a Lambda layer, whose function is stored as "
                "marshalled Python bytecode; edgelearn never runs code from model files. Rebuild "
                "the model without Lambda layers (or with a built-in layer that does the same)"
            )
    config = copy.deepcopy(config)
    dropped: list[str] = []
    for layer in _layer_configs(config):
        layer_config = layer.get("config")
        if not isinstance(layer_config, dict):
            continue
        _drop_inert(layer_config, _INERT_KEYS)
        if "renorm" not in layer_config:  # renorm_momentum only acts with renorm on
            layer_config.pop("renorm_momentum", None)
        for key, value in layer_config.items():
            arguments = value.get("config") if isinstance(value, dict) else None
            if key.endswith("_initializer") and isinstance(arguments, dict):
                _drop_inert(arguments, _INERT_INITIALIZER_KEYS)
            if (key == "activity_regularizer" or key.endswith("_constraint")) and value is not None:
                layer_config[key] = None
                dropped.append(f"{layer_config.get('name', layer.get('class_name'))}.{key}")
    if dropped:
        warnings.warn(
            f"{source}: edgelearn does not implement activity regularizers and weight "
            f"constraints yet; dropped "
            f"{', '.join(dropped[:6])}{' ...' if len(dropped) > 6 else ''}. Predictions are "
            "unaffected; training the loaded model will not apply them.",
            UserWarning,
            stacklevel=3,
        )
    return config


def _build(config: Any, source: str) -> tuple[Model, dict[str, Any]]:
    config = prepare_config(config, source)
    try:
        model = model_from_config(config)
        # tf.keras 2 records the input shape of a Sequential model built by build() or on data
        # here, not on its first layer (Keras 3 adds an InputLayer instead).
        inner = config["config"]
        shape = inner.get("build_input_shape") if isinstance(inner, dict) else None
        if isinstance(model, Sequential) and not model.input_shapes and shape is not None:
            model.build(tuple(shape))
    except (ValueError, TypeError, KeyError) as error:
        raise ModelFormatError(
            f"{source}: cannot build the model from its config: {error}"
        ) from None
    return model, config


def _parse_json(text: Any, source: str, what: str) -> Any:
    try:
        return json.loads(_decode(text))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFormatError(f"{source}: {what} is not valid JSON: {error}") from None


# --------------------------------------------------------------------------- weights
# A plan: per layer, its HDF5 datasets in the layer's weights order, and where they are.
Plan = list[tuple[Layer, list[Any], str]]
# Weights found by layer name: each layer's datasets (or arrays), and where they are.
Named = dict[str, tuple[list[Any], str]]
# How many problems an error or warning spells out; the rest are counted.
_LISTED = 6


def _misfit(layer: Layer, datasets: list[Any], where: str) -> str | None:
    """Why ``datasets`` cannot be ``layer``'s weights (their count or a shape), or None."""
    if len(datasets) != len(layer.weights):
        return (
            f"{where} holds {len(datasets)} weights but layer '{layer.name}' has "
            f"{len(layer.weights)} ({[w.name for w in layer.weights]})"
        )
    for variable, dataset in zip(layer.weights, datasets):
        if tuple(dataset.shape) != variable.shape:
            return (
                f"weight '{variable.name}' has shape {list(dataset.shape)} in {where} but the "
                f"model needs {list(variable.shape)}"
            )
    return None


def _report(missing: list[str], misfits: list[str]) -> str:
    """The layers that lack weights and the weights that do not fit, the first few spelled out."""
    parts = []
    if missing:
        names = ", ".join(f"'{name}'" for name in missing[:_LISTED])
        more = f" and {len(missing) - _LISTED} more" if len(missing) > _LISTED else ""
        parts.append(f"the file has no weights for layer{'s' * (len(missing) > 1)} {names}{more}")
    parts.extend(misfits[:_LISTED])
    if len(misfits) > _LISTED:
        parts.append(f"and {len(misfits) - _LISTED} more layers whose weights do not fit")
    return "; ".join(parts)


def _assign(
    plan: Plan, source: str, missing: list[str] | None = None, skip_mismatch: bool = False
) -> list[str]:
    """Check every layer's datasets (count and shapes), then read them all, then assign: a bad
    file leaves the model unchanged. ``missing`` names the layers with weights that the file
    lacks. With ``skip_mismatch`` those, and the layers whose datasets do not fit, keep their
    weights (with a warning) rather than failing the load; returns their names."""
    missing = missing or []
    misfits = {}
    for layer, datasets, where in plan:
        problem = _misfit(layer, datasets, where)
        if problem is not None:
            misfits[layer.name] = problem
    if missing or misfits:
        report = _report(missing, list(misfits.values()))
        if not skip_mismatch:
            raise ModelFormatError(f"{source}: {report}")
        skipped = len(missing) + len(misfits)
        warnings.warn(
            f"{source}: skip_mismatch left {skipped} layer{'s' * (skipped > 1)} as "
            f"{'they were' if skipped > 1 else 'it was'}: {report}",
            UserWarning,
            stacklevel=3,
        )
    fitting = [(layer, datasets) for layer, datasets, _ in plan if layer.name not in misfits]
    values = [[np.asarray(dataset[()]) for dataset in datasets] for _, datasets in fitting]
    for (layer, _), arrays in zip(fitting, values):
        layer.set_weights(arrays)
    return [*missing, *misfits]


def _plan_by_name(layers: list[Layer], named: Named) -> tuple[Plan, list[str]]:
    """The layers found in ``named`` with their weights, and the names of the layers with
    weights that ``named`` lacks."""
    plan = [(layer, *named[layer.name]) for layer in layers if layer.name in named]
    missing = [layer.name for layer in layers if layer.weights and layer.name not in named]
    return plan, missing


def _keras3_keys(class_names: list[str]) -> list[str]:
    """Keras 3's paths for the layers of ``model.layers`` with these class names, in order."""
    counts: dict[str, int] = {}
    keys = []
    for class_name in class_names:
        base = snake_case(class_name)
        keys.append(base if base not in counts else f"{base}_{counts[base] + 1}")
        counts[base] = counts[base] + 1 if base in counts else 0
    return keys


def _keras3_prefix(h5: Any) -> str:
    if "layers" not in h5 and "_layer_checkpoint_dependencies" in h5:
        return "_layer_checkpoint_dependencies"  # tf.keras 2.13-2.15
    return "layers"


def _keras3_vars(group: Any, path: str, source: str) -> list[Any]:
    """The datasets ``0``, ``1``, ... of the ``vars`` group at ``path`` (None: no weights)."""
    if group is not None and not isinstance(group, _h5py().Group):
        raise ModelFormatError(f"{source}: {path} must be an HDF5 group")
    keys = [] if group is None else sorted(group.keys(), key=lambda k: (len(k), k))
    if keys != [str(i) for i in range(len(keys))]:
        raise ModelFormatError(
            f"{source}: {path} must hold datasets named 0, 1, ...; found {keys[:8]}"
        )
    return [_checked_dataset(_child(group, k, source), f"{path}/{k}", source) for k in keys]


def _vars_name(group: Any, path: str, expected: Any, source: str) -> Any:
    """The layer name that Keras 3 records on a ``vars`` group (3.15.1 does; not every version
    did), which must then be ``expected`` (the config's, or None if unknown); where none is
    recorded, ``expected``."""
    recorded = group.attrs.get("name")
    if recorded is None:
        return expected
    recorded = str(_decode(recorded))
    if expected is not None and recorded != expected:
        raise ModelFormatError(
            f"{source}: {path} holds the weights of layer '{recorded}' but the config puts "
            f"layer '{expected}' there; the weights file does not belong to this config"
        )
    return recorded


def _keras3_plan(
    h5: Any,
    entries: list[tuple[str, str]],
    layers: dict[str, Layer],
    source: str,
    check_names: bool,
) -> Plan:
    """Read the weights of Keras 3's ``layers/<key>/vars`` layout; ``entries`` are the
    (class name, layer name) of ``model.layers`` in Keras' order. With ``check_names``, a layer
    name recorded in the file must be the config's (it may differ for a model built apart)."""
    prefix = _keras3_prefix(h5)
    keys = _keras3_keys([class_name for class_name, _ in entries])
    plan, used = [], set()
    for key, (_, name) in zip(keys, entries):
        path = f"{prefix}/{key}/vars"
        group = _child(h5, path, source)
        if check_names and group is not None:
            _vars_name(group, path, name, source)
        found = _keras3_vars(group, path, source)
        used.update(f"/{path}/{i}" for i in range(len(found)))
        plan.append((layers[name], found, path))
    _check_no_extra(h5, prefix, used, source)
    return plan


def _keras3_named(h5: Any, config_names: dict[str, Any], source: str) -> Named:
    """The weights of each layer in Keras 3's ``layers/<key>/vars`` layout, by the layer name
    recorded there or, where none is, by ``config_names[key]`` (from a .keras archive)."""
    prefix = _keras3_prefix(h5)
    top = _child(h5, prefix, source)
    named: Named = {}
    for key in list(top) if isinstance(top, _h5py().Group) else []:
        path = f"{prefix}/{key}/vars"
        group = _child(h5, path, source)
        if group is None:  # not a layer's group
            continue
        datasets = _keras3_vars(group, path, source)
        name = _vars_name(group, path, config_names.get(key), source)
        if name is None and datasets:
            raise ModelFormatError(
                f"{source}: {path} does not record the name of its layer (not every Keras "
                "version did), so its weights cannot be matched by name; load the file by "
                "position (by_name=False), or load the .keras archive, whose config names them"
            )
        if name is not None:
            named[name] = (datasets, path)
    return named


def _check_no_extra(h5: Any, prefix: str, used: set[str], source: str) -> None:
    group = _child(h5, prefix, source)
    if group is None:
        return
    found: list[str] = []

    def collect(name: str, item: Any) -> None:
        if isinstance(item, _h5py().Dataset):
            found.append(f"{group.name}/{name}")

    group.visititems(collect)
    extra = sorted(set(found) - used)
    if extra:
        raise ModelFormatError(f"{source}: the file has weights the model lacks: {extra[:5]}")


def _legacy_named(group: Any, source: str) -> Named:
    """The weights of each layer of a Keras 2 weights group, by layer name in the file's order."""
    if "layer_names" not in group.attrs:
        raise ModelFormatError(f"{source}: {group.name} lacks the 'layer_names' attribute")
    named: Named = {}
    for name in _names(group.attrs["layer_names"]):
        layer_group = _child(group, name, source)
        if layer_group is None:
            raise ModelFormatError(
                f"{source}: layer_names lists '{name}' but {group.name} has no such group"
            )
        datasets = []
        for weight_name in _names(layer_group.attrs.get("weight_names", [])):
            dataset = _child(layer_group, weight_name, source)
            where = f"{layer_group.name}/{weight_name}"
            if dataset is None:
                raise ModelFormatError(f"{source}: weight_names lists {where}, which is missing")
            datasets.append(_checked_dataset(dataset, where, source))
        named[name] = (datasets, layer_group.name)
    return named


def _check_legacy_version(h5: Any, source: str) -> None:
    version = str(_decode(h5.attrs.get("keras_version", "2")))
    backend = str(_decode(h5.attrs.get("backend", "tensorflow")))
    if version.startswith("1."):
        raise ModelFormatError(
            f"{source} was written by Keras {version}; only Keras 2 and 3 files are supported"
        )
    if backend == "theano":  # Theano stored convolution kernels flipped
        raise ModelFormatError(f"{source} was written with the Theano backend; not supported")


# --------------------------------------------------------------------------- loading
def _load_hdf5(path: pathlib.Path) -> Model:
    source = str(path)
    with _open_h5(path, source) as h5:
        if "model_config" not in h5.attrs:
            hint = (
                " (a weights-only file: use edgelearn.io.keras.load_weights)"
                if ("layer_names" in h5.attrs or "layers" in h5)
                else ""
            )
            raise ModelFormatError(f"{source} has no 'model_config' attribute{hint}")
        _check_legacy_version(h5, source)
        model, _ = _build(_parse_json(h5.attrs["model_config"], source, "model_config"), source)
        group = _child(h5, "model_weights", source)
        if group is None:
            raise ModelFormatError(f"{source} has a model_config but no 'model_weights' group")
        named = _legacy_named(group, source)
        plan, missing = _plan_by_name(model.layers, named)
        names = {layer.name for layer in model.layers}
        extra = sorted(
            name for name, (datasets, _) in named.items() if datasets and name not in names
        )
        if extra:
            raise ModelFormatError(
                f"{source}: the file has weights for layers the model lacks: {extra[:5]}"
            )
        _assign(plan, source, missing)
    return model


def _archive_member(archive: zipfile.ZipFile, name: str, source: str, limit: int | None) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelFormatError(
            f"{source} is a zip archive without {name}; not a .keras model"
        ) from None
    bomb = info.file_size > _BOMB_FLOOR_BYTES and info.file_size > _MAX_EXPANSION * max(
        info.compress_size, 1
    )
    if bomb or (limit is not None and info.file_size > limit):
        raise ModelFormatError(
            f"{source}: {name} claims {info.file_size} bytes from {info.compress_size}; refused"
        )
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError) as error:  # bad CRC, truncated member
        raise ModelFormatError(f"{source}: cannot read {name} from the archive: {error}") from None


def _open_archive(path: pathlib.Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelFormatError(f"{path} is not a readable zip archive (.keras): {error}") from None


def _load_archive(path: pathlib.Path) -> Model:
    source = str(path)
    _h5py()  # fail early, before the archive is read
    with _open_archive(path) as archive:
        config_text = _archive_member(archive, CONFIG_FILE, source, _MAX_CONFIG_BYTES)
        model, config = _build(_parse_json(config_text, source, CONFIG_FILE), source)
        weights = _archive_member(archive, WEIGHTS_FILE, source, None)
    source = f"{source}:{WEIGHTS_FILE}"
    entries = _config_entries(config)
    layers = {layer.name: layer for layer in model.layers}
    unnamed = [name for _, name in entries if name not in layers]
    if unnamed:
        raise ModelFormatError(f"{source}: config layers without a usable 'name': {unnamed[:5]}")
    with _open_h5(io.BytesIO(weights), source) as h5:
        _assign(_keras3_plan(h5, entries, layers, source, check_names=True), source)
    return model


def load(path: str | os.PathLike[str]) -> Model:
    """Load a Keras 3 ``.keras`` archive or a Keras 2 ``.h5`` / ``.hdf5`` model file.

    The format comes from the file's first bytes (zip or HDF5), whatever its suffix.
    """
    location = pathlib.Path(path)
    if not location.is_file():
        raise FileNotFoundError(f"No Keras model file at {location}")
    kind = sniff(location)
    if kind == "zip":
        return _load_archive(location)
    if kind == "hdf5":
        return _load_hdf5(location)
    raise ModelFormatError(
        f"{location} is neither a zip archive (.keras) nor an HDF5 file (.h5): its first bytes "
        "match neither format"
    )


def load_weights(
    model: Model, path: str | os.PathLike[str], by_name: bool = False, skip_mismatch: bool = False
) -> list[str]:
    """Load Keras weights into ``model``, built; returns the names of the layers skipped.

    Reads what Keras writes with ``save_weights``: Keras 3 ``.weights.h5`` files and Keras 2
    ``.h5`` files; also a full ``.h5`` or ``.keras`` model file's weights.

    By default the model must have the file's layers: Keras 3 files are matched as Keras does,
    by class name and position in ``model.layers``, Keras 2 files by the order of the layers with
    weights. With ``by_name`` (Keras' ``by_name=True``), each layer takes the weights stored
    under its name, and the file's other layers are ignored: a backbone takes a whole model's
    weights. Keras allows that for Keras 2 ``.h5`` files only; here it also reads Keras 3 files,
    by the layer name Keras 3.15.1 records beside each layer's weights (in a ``.keras`` archive,
    by its config's names where none is recorded).

    A layer with weights the file lacks, or whose weights differ in count or shape, fails the
    load, naming every such layer, and leaves the model unchanged (Keras quietly leaves a layer
    missing from the file as it was). With ``skip_mismatch`` those layers keep their weights
    instead, with a warning that lists them, and their names are returned.

    Example:
        >>> import io, tempfile, h5py, numpy as np, edgelearn as el
        >>> path = tempfile.mkdtemp() + "/dense.weights.h5"
        >>> with h5py.File(path, "w") as h5:
        ...     h5["layers/dense/vars/0"] = np.full((2, 1), 2, np.float32)
        ...     h5["layers/dense/vars/1"] = np.ones(1, np.float32)
        ...     h5["layers/dense/vars"].attrs["name"] = "out"
        >>> model = el.Sequential([el.layers.Input((2,)), el.layers.Dense(1)])
        >>> load_weights(model, path)
        []
        >>> model.predict(np.array([[1.0, 1.0]]))
        array([[5.]], dtype=float32)
        >>> other = el.Sequential([el.layers.Input((2,)), el.layers.Dense(1, name="out"),
        ...                        el.layers.Dense(3, name="head")])
        >>> load_weights(other, path, by_name=True, skip_mismatch=True)  # warns: 'head' skipped
        ['head']
    """
    location = pathlib.Path(path)
    if not location.is_file():
        raise FileNotFoundError(f"No Keras weights file at {location}")
    source, kind = str(location), sniff(location)
    file: Any = location
    config_names: dict[str, Any] = {}
    if kind == "zip":
        with _open_archive(location) as archive:
            file = io.BytesIO(_archive_member(archive, WEIGHTS_FILE, source, None))
            if by_name:  # the config names the layers where older Keras 3 files record none
                config = _parse_json(
                    _archive_member(archive, CONFIG_FILE, source, _MAX_CONFIG_BYTES),
                    source,
                    CONFIG_FILE,
                )
                entries = _config_entries(config)
                keys = _keras3_keys([class_name for class_name, _ in entries])
                config_names = {key: name for key, (_, name) in zip(keys, entries)}
        source = f"{source}:{WEIGHTS_FILE}"
    elif kind != "hdf5":
        raise ModelFormatError(f"{source} is neither a .keras archive nor an HDF5 file")
    layers = [layer for layer in model.layers if not isinstance(layer, InputLayer)]
    with _open_h5(file, source) as h5:
        if "layer_names" not in h5.attrs and "model_weights" not in h5:  # Keras 3
            if by_name:
                plan, missing = _plan_by_name(layers, _keras3_named(h5, config_names, source))
                return _assign(plan, source, missing, skip_mismatch)
            entries = [(type(layer).__name__, layer.name) for layer in layers]
            plan = _keras3_plan(
                h5, entries, {layer.name: layer for layer in layers}, source, check_names=False
            )
            return _assign(plan, source, skip_mismatch=skip_mismatch)
        _check_legacy_version(h5, source)
        named = _legacy_named(_child(h5, "model_weights", source) or h5, source)
        if by_name:
            plan, missing = _plan_by_name(layers, named)
            return _assign(plan, source, missing, skip_mismatch)
        stored = {name: entry for name, entry in named.items() if entry[0]}
        with_weights = [layer for layer in layers if layer.weights]
        if len(stored) != len(with_weights):
            raise ModelFormatError(
                f"{source} holds weights for {len(stored)} layers ({list(stored)[:8]}) but the "
                f"model has {len(with_weights)} layers with weights "
                f"({[layer.name for layer in with_weights][:8]})"
            )
        plan = [(layer, *entry) for layer, entry in zip(with_weights, stored.values())]
        return _assign(plan, source, skip_mismatch=skip_mismatch)


def set_weights_by_name(
    model: Model, weights: Mapping[str, Sequence[Any]], source: str, skip_mismatch: bool = False
) -> list[str]:
    """Give each layer of ``model`` the arrays that ``weights`` holds under its name, in the
    layer's ``weights`` order, with the checks and errors of ``load_weights(..., by_name=True)``
    (``source`` names where the arrays came from in them); returns the names of the layers
    skipped. For weights from elsewhere than a Keras file, such as another model's
    ``{layer.name: layer.get_weights() for layer in other.layers}``.

    Example:
        >>> import numpy as np, edgelearn as el
        >>> model = el.Sequential([el.layers.Input((2,)), el.layers.Dense(1, name="out")])
        >>> set_weights_by_name(model, {"out": [np.ones((2, 1)), np.zeros(1)]}, "by hand")
        []
        >>> model.predict(np.array([[1.0, 2.0]]))
        array([[3.]], dtype=float32)
    """
    named = {
        name: ([np.asarray(array) for array in arrays], f"its layer '{name}'")
        for name, arrays in weights.items()
    }
    plan, missing = _plan_by_name(model.layers, named)
    return _assign(plan, source, missing, skip_mismatch)


__all__ = [
    "ModelFormatError",
    "load",
    "load_weights",
    "prepare_config",
    "set_weights_by_name",
    "sniff",
]
