"""edgelearn: machine learning at the edge and in the browser from Python.

A Keras-compatible API (layers, Sequential, compile/fit/evaluate/predict) on NumPy alone.

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> model = el.Sequential([el.layers.Input((2,)), el.layers.Dense(1, activation="sigmoid")])
    >>> model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    >>> model.predict(np.zeros((3, 2))).shape
    (3, 1)
"""

import importlib
from typing import Any

from edgelearn import (
    activations,
    callbacks,
    data,
    engine,
    initializers,
    io,
    layers,
    losses,
    metrics,
    optimizers,
    random,
    regularizers,
)
from edgelearn.io import load_model
from edgelearn.models import Model, Sequential

# Imported at first use (``el.datasets``, ``import edgelearn.applications``): a process that
# loads a model and predicts does not pay for data set downloads, pre-trained networks and
# transfer learning (about a third of ``import edgelearn``; benchmarks/cold_start.py).
_LAZY = ("applications", "datasets", "transfer")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"edgelearn.{name}")
    raise AttributeError(f"module 'edgelearn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__version__ = "0.1.0"

__all__ = [
    "Model",
    "Sequential",
    "activations",
    "applications",
    "callbacks",
    "data",
    "datasets",
    "engine",
    "initializers",
    "io",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "optimizers",
    "random",
    "regularizers",
    "transfer",
]
