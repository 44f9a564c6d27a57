"""MobileNet (v1), as ``keras.applications.MobileNet`` builds it, with ImageNet weights.

The graph, layer names and hyper-parameters are Keras 3's (``keras/src/applications/
mobilenet.py``): ``conv1`` (3x3, stride 2, 'same'), ``conv1_bn``, ``conv1_relu``, then 13
depthwise separable blocks (``conv_pad_N`` before the stride-2 ones, ``conv_dw_N``,
``conv_dw_N_bn``, ``conv_dw_N_relu``, ``conv_pw_N``, ``conv_pw_N_bn``, ``conv_pw_N_relu``), and
for ``include_top`` a global average pooling kept 4-D, ``dropout``, the 1x1 convolution
``conv_preds``, ``reshape_2`` and the ``predictions`` activation. Keras 2 named the last two
``reshape_1`` + ``act_softmax`` around a separate Reshape; none of these layers has weights, so
weights map by layer name across versions.

``weights``: None (random initialization), ``"imagenet"`` (the official Keras applications
file for that alpha, size and top, downloaded once into
``~/.cache/edgelearn/models/keras-applications``: Keras publishes no hash for it) or the path of a
TF.js / Keras model whose layers of the same names have the same weight shapes. Feed the
ImageNet weights :func:`preprocess_input` (pixels scaled to [-1, 1]).

Example:
    >>> import numpy as np
    >>> from edgelearn.applications import MobileNet
    >>> model = MobileNet((128, 128, 3), alpha=0.25, include_top=False, weights=None,
    ...                   pooling="max")
    >>> model.predict(np.zeros((1, 128, 128, 3), np.float32), verbose=0).shape
    (1, 256)
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import numpy as np

from edgelearn import layers
from edgelearn.applications.mobilenet_v2 import (
    DownloadError,
    _check_alpha,
    _check_head,
    _check_pretrained_top,
    _check_weights_argument,
    _fetch,
    _image_input,
    _load_weights_by_name,
    _log_weights,
    _obtain_input_shape,
    decode_predictions,
)
from edgelearn.home import cache_dir
from edgelearn.layers.graph import KerasTensor
from edgelearn.models import Model

BASE_WEIGHT_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
IMAGENET_ALPHAS = (0.25, 0.5, 0.75, 1.0)
IMAGENET_SIZES = (128, 160, 192, 224)
# Keras' file names spell alpha with two digits.
_ALPHA_TEXT = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}


def preprocess_input(x: Any) -> np.ndarray:
    """Scale images with pixels in [0, 255] to [-1, 1] (``x / 127.5 - 1``), as float32; Keras'
    ``mobilenet.preprocess_input`` (mode "tf"). The input is not modified.

    Example:
        >>> preprocess_input(np.array([0, 51, 255], np.uint8))
        array([-1. , -0.6,  1. ], dtype=float32)
    """
    return np.asarray(x, dtype=np.float32) / np.float32(127.5) - np.float32(1)


def _conv_block(
    inputs: KerasTensor, filters: int, alpha: float, strides: tuple[int, int]
) -> KerasTensor:
    x = layers.Conv2D(
        int(filters * alpha), 3, padding="same", use_bias=False, strides=strides, name="conv1"
    )(inputs)
    x = layers.BatchNormalization(name="conv1_bn")(x)
    return layers.ReLU(6.0, name="conv1_relu")(x)


def _depthwise_conv_block(
    inputs: KerasTensor,
    pointwise_conv_filters: int,
    alpha: float,
    depth_multiplier: int,
    strides: int,
    block_id: int,
) -> KerasTensor:
    x = inputs
    if strides != 1:
        # Keras pads one row and column after, whatever the parity of the size.
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block_id}")(x)
    x = layers.DepthwiseConv2D(
        3,
        padding="same" if strides == 1 else "valid",
        depth_multiplier=depth_multiplier,
        strides=strides,
        use_bias=False,
        name=f"conv_dw_{block_id}",
    )(x)
    x = layers.BatchNormalization(name=f"conv_dw_{block_id}_bn")(x)
    x = layers.ReLU(6.0, name=f"conv_dw_{block_id}_relu")(x)
    x = layers.Conv2D(
        int(pointwise_conv_filters * alpha),
        1,
        padding="same",
        use_bias=False,
        name=f"conv_pw_{block_id}",
    )(x)
    x = layers.BatchNormalization(name=f"conv_pw_{block_id}_bn")(x)
    return layers.ReLU(6.0, name=f"conv_pw_{block_id}_relu")(x)


# (pointwise filters, stride) of blocks 1..13.
_BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


def MobileNet(
    input_shape: tuple[int | None, int | None, int] | None = None,
    alpha: float = 1.0,
    depth_multiplier: int = 1,
    dropout: float = 1e-3,
    include_top: bool = True,
    weights: str | os.PathLike[str] | None = "imagenet",
    input_tensor: KerasTensor | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str | None = None,
) -> Model:
    """Build MobileNet (Howard et al. 2017) exactly as ``keras.applications.MobileNet``.

    Args:
        input_shape: (height, width, 3); height and width at least 32 (None with
            ``include_top=False`` for any size). Default (224, 224, 3), or (None, None, 3)
            without the top. ImageNet weights exist for square 128, 160, 192 and 224.
        alpha: width multiplier; ImageNet weights exist for 0.25, 0.5, 0.75 and 1.0.
        depth_multiplier: channels out of each depthwise filter; 1 with ImageNet weights.
        dropout: rate of the dropout before the top's convolution.
        include_top: end with the classifier (``conv_preds`` and ``predictions``).
        weights: None, "imagenet" or the path of a model (weights matched by layer name).
        input_tensor: a symbolic tensor to build on instead of a new Input.
        pooling: None (4-D feature maps), "avg" or "max" (2-D features), without the top only.
        classes: size of the top; 1000 with ImageNet weights.
        classifier_activation: the top's activation; None or "softmax" with ImageNet weights.
        name: the model's name; default ``mobilenet_{alpha:.2f}_{rows}`` as in Keras.

    Example:
        >>> model = MobileNet(weights=None)
        >>> len(model.layers), model.count_params(), model.output_shape
        (91, 4253864, (None, 1000))
    """
    function = "MobileNet"
    weights = _check_weights_argument(function, weights, ("imagenet",))
    alpha = _check_alpha(function, alpha)
    if (
        isinstance(depth_multiplier, bool)
        or not isinstance(depth_multiplier, (int, np.integer))
        or depth_multiplier <= 0
    ):
        raise ValueError(
            f"MobileNet expects a positive integer depth_multiplier. "
            f"Received: depth_multiplier={depth_multiplier!r}"
        )
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"MobileNet expects 0 <= dropout < 1. Received: dropout={dropout!r}")
    _check_head(function, include_top, pooling, classes)
    if include_top:
        _check_pretrained_top(function, weights, classes, classifier_activation)
    if weights == "imagenet" and (alpha not in IMAGENET_ALPHAS or depth_multiplier != 1):
        raise ValueError(
            f"MobileNet ImageNet weights exist for alpha in {IMAGENET_ALPHAS} with "
            f"depth_multiplier=1. Received: alpha={alpha}, depth_multiplier={depth_multiplier}"
        )
    shape = _obtain_input_shape(
        function,
        input_shape,
        input_tensor,
        include_top,
        pretrained=weights == "imagenet",
        imagenet_top=include_top and weights == "imagenet",
        sizes=IMAGENET_SIZES,
    )
    rows = shape[0]
    # ImageNet backbones are size-independent: other sizes take the 224 file, as in Keras.
    weight_rows = rows if rows in IMAGENET_SIZES and rows == shape[1] else 224
    weights_path: pathlib.Path | None = None
    if weights == "imagenet":
        file_name = (
            f"mobilenet_{_ALPHA_TEXT[alpha]}_{weight_rows}_tf{'' if include_top else '_no_top'}.h5"
        )
        try:
            weights_path = _fetch(
                BASE_WEIGHT_PATH + file_name, cache_dir("models", "keras-applications") / file_name
            )
        except DownloadError as error:
            raise DownloadError(
                f"MobileNet weights='imagenet': the ImageNet weights are not cached and could "
                f"not be downloaded ({error}). Use weights=None for random initialization"
            ) from None

    img_input, inputs = _image_input(shape, input_tensor)
    x = _conv_block(img_input, 32, alpha, strides=(2, 2))
    for block_id, (filters, strides) in enumerate(_BLOCKS, start=1):
        x = _depthwise_conv_block(x, filters, alpha, int(depth_multiplier), strides, block_id)
    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True, name="global_average_pooling2d")(x)
        x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Conv2D(classes, 1, padding="same", name="conv_preds")(x)
        x = layers.Reshape((classes,), name="reshape_2")(x)
        x = layers.Activation(classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="global_max_pooling2d")(x)
    model_rows = weight_rows if weights == "imagenet" else rows
    model = Model(inputs, x, name=name or f"mobilenet_{alpha:0.2f}_{model_rows}")

    if weights_path is not None:
        _load_weights_by_name(model, weights_path)
        _log_weights(function, "imagenet", f" ({weights_path.name})")
    elif weights is not None:
        _load_weights_by_name(model, weights)
        _log_weights(function, str(weights))
    else:
        _log_weights(function, None)
    model.pretrained_weights = None if weights is None else str(weights)
    return model


__all__ = [
    "IMAGENET_ALPHAS",
    "IMAGENET_SIZES",
    "MobileNet",
    "decode_predictions",
    "preprocess_input",
]
