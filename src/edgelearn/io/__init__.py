"""Reading and writing model files, one module per format.

Example:
    >>> import edgelearn as el
    >>> el.load_model  # doctest: +ELLIPSIS
    <function load_model at ...>
"""

from __future__ import annotations

import os
import pathlib

from edgelearn.io import keras, onnx, tfjs
from edgelearn.io.tfjs import ModelFormatError
from edgelearn.models import Model

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
    if location.suffix.lower() in _KERAS_SUFFIXES or keras.sniff(location) is not None:
        return keras.load(location)
    raise ModelFormatError(
        f"{location}: unknown model format; expected a TF.js layers-model folder or model.json, "
        "a Keras .keras archive or a Keras .h5 file"
    )


__all__ = ["ModelFormatError", "keras", "load_model", "onnx", "tfjs"]
