"""Reading and writing model files, one module per format.

Example:
    >>> import edgelearn as el
    >>> el.load_model  # doctest: +ELLIPSIS
    <function load_model at ...>
"""

from __future__ import annotations

import os
import pathlib

from edgelearn.io import tfjs
from edgelearn.io.tfjs import ModelFormatError
from edgelearn.models import Model


def load_model(path: str | os.PathLike[str]) -> Model:
    """Load a model saved by edgelearn or TensorFlow.js: a folder with ``model.json``, the
    ``model.json`` file itself, or an ``http(s)://`` URL of one."""
    text = str(path)
    if text.startswith(("http://", "https://")):
        return tfjs.load(text)
    location = pathlib.Path(path)
    if location.is_dir() or location.suffix == ".json":
        return tfjs.load(location)
    if not location.exists():
        raise FileNotFoundError(f"No model at {location}")
    raise ModelFormatError(
        f"{location}: unknown model format; expected a TF.js layers-model folder or model.json"
    )


__all__ = ["ModelFormatError", "load_model", "tfjs"]
