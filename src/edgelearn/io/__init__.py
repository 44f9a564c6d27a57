"""Reading and writing model files, one module per format.

Example:
    >>> import edgelearn as el
    >>> el.load_model  # doctest: +ELLIPSIS
    <function load_model at ...>
"""

from __future__ import annotations

import importlib
import os
import pathlib
from typing import Any

from edgelearn.io import tfjs
from edgelearn.io.tfjs import ModelFormatError
from edgelearn.models import Model

# Imported at first use (``el.io.keras``, ``import edgelearn.io.onnx``): loading a TF.js model
# does not pay for the other formats.
_LAZY = ("keras", "onnx")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"edgelearn.io.{name}")
    raise AttributeError(f"module 'edgelearn.io' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_model(path: str | os.PathLike[str]) -> Model:
    """Load a model saved by edgelearn, TensorFlow.js or Keras.

    ``path`` is a TF.js layers-model folder, its ``model.json`` or an ``http(s)://`` URL of one;
    or a Keras 3 ``.keras`` archive or Keras 2 ``.h5`` / ``.hdf5`` file (recognised by suffix or
    by the zip / HDF5 signature at the start of the file; reading them needs h5py).
    """
    text = str(path)
    if text.startswith(("http://", "https://")):
        return tfjs.load(text)
    location = pathlib.Path(path)
    if location.is_dir() or location.suffix == ".json":
        return tfjs.load(location)
    if not location.exists():
        raise FileNotFoundError(f"No model at {location}")
    from edgelearn.io import keras

    if location.suffix.lower() in _KERAS_SUFFIXES or keras.sniff(location) is not None:
        return keras.load(location)
    raise ModelFormatError(
        f"{location}: unknown model format; expected a TF.js layers-model folder or model.json, "
        "a Keras .keras archive or a Keras .h5 file"
    )


__all__ = ["ModelFormatError", "keras", "load_model", "onnx", "tfjs"]
