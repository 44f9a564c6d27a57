"""Layers with Keras names, arguments, defaults and NHWC layout, and their (de)serialisation.

Example:
    >>> import edgelearn as el
    >>> layer = el.layers.deserialize({"class_name": "Dense", "config": {"units": 3}})
    >>> el.layers.serialize(layer)["config"]["units"]
    3
"""

from __future__ import annotations

from typing import Any

from edgelearn.layers.activation import LeakyReLU, ReLU, Softmax
from edgelearn.layers.base import LAYER_CLASSES, Layer
from edgelearn.layers.convolutional import (
    Conv2D,
    Conv2DTranspose,
    DepthwiseConv2D,
    SeparableConv2D,
)
from edgelearn.layers.core import Activation, Dense, Dropout, Flatten, Input, InputLayer, Reshape
from edgelearn.layers.merging import (
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
)
from edgelearn.layers.normalization import BatchNormalization
from edgelearn.layers.pooling import (
    AveragePooling2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
)
from edgelearn.layers.reshaping import UpSampling2D, ZeroPadding2D

# Keras' short aliases.
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
Convolution2D = Conv2D
Convolution2DTranspose = Conv2DTranspose
SeparableConvolution2D = SeparableConv2D


def serialize(layer: Layer) -> dict[str, Any]:
    """The Keras JSON form of a layer: ``{"class_name": ..., "config": ...}``."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config: dict[str, Any]) -> Layer:
    """Build a layer from its Keras JSON form (written by Keras 2, Keras 3 or TensorFlow.js)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"A layer config is a dict with 'class_name' and 'config'. Received: {config!r}"
        )
    class_name = config["class_name"]
    if class_name not in LAYER_CLASSES:
        raise ValueError(
            f"Unknown layer class {class_name!r}. "
            f"Supported layers: {', '.join(sorted(LAYER_CLASSES))}"
        )
    layer_config = dict(config.get("config") or {})
    # Keys Keras 3 writes that describe serialisation rather than the layer.
    for key in ("module", "registered_name", "build_config"):
        layer_config.pop(key, None)
    return LAYER_CLASSES[class_name].from_config(layer_config)


__all__ = [
    "Activation",
    "Add",
    "Average",
    "AveragePooling2D",
    "AvgPool2D",
    "BatchNormalization",
    "Concatenate",
    "Conv2D",
    "Conv2DTranspose",
    "Convolution2D",
    "Convolution2DTranspose",
    "Dense",
    "DepthwiseConv2D",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "GlobalMaxPooling2D",
    "Input",
    "InputLayer",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "MaxPooling2D",
    "Maximum",
    "Minimum",
    "Multiply",
    "ReLU",
    "Reshape",
    "SeparableConv2D",
    "SeparableConvolution2D",
    "Softmax",
    "Subtract",
    "UpSampling2D",
    "ZeroPadding2D",
    "deserialize",
    "serialize",
]
