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

from edgelearn import (
    activations,
    callbacks,
    data,
    datasets,
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

# After the core: both build on models and io. Pillow, h5py and node stay lazy inside them.
from edgelearn import applications, transfer  # noqa: E402  isort: skip

__version__ = "0.1.0"

__all__ = [
    "Model",
    "Sequential",
    "activations",
    "applications",
    "transfer",
    "io",
    "load_model",
    "callbacks",
    "data",
    "datasets",
    "engine",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "optimizers",
    "random",
    "regularizers",
]
