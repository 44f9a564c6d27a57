"""Batch normalisation (and a ReLU after it) folded into the convolution before them, at inference.

A BatchNormalization at inference is ``x * scale + shift`` per channel. Right after a linear
Conv2D or DepthwiseConv2D it folds into that layer's kernel and bias, so the normalisation's
passes over the activations (MobileNets have one after every convolution) disappear; a ReLU
layer after it (MobileNets' ReLU6) is applied with the bias in the same pass, in place, and a
ZeroPadding2D before a depthwise convolution is read in place instead of copied (functional
models). Models fold only when nothing records a graph (``predict``, ``no_grad``) and
``training`` is False, and only where each output goes to the next layer alone: training and
gradients always see the layers as they are. The kernel is scaled on every call, so nothing is
cached that could go stale when weights change; that pass over the kernel costs less than the
normalisation's passes over the output even where the kernel is the larger (MobileNetV2's last
layers at batch 1). :class:`edgelearn.runtime.Predictor`, a snapshot of a model for inference,
folds once instead (:mod:`edgelearn.models.inference`). Measured on nsfwjs' MobileNetV2
(benchmarks/README.md).

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> model = el.Sequential([el.layers.Input((8, 8, 3)), el.layers.Conv2D(4, 3),
    ...                        el.layers.BatchNormalization(), el.layers.ReLU(6.0)])
    >>> model.predict(np.ones((1, 8, 8, 3))).shape  # one convolution and one in-place pass
    (1, 6, 6, 4)
"""

from __future__ import annotations

import math

from edgelearn import activations
from edgelearn.engine import Tensor
from edgelearn.layers import (
    BatchNormalization,
    Conv2D,
    DepthwiseConv2D,
    Layer,
    ReLU,
    ZeroPadding2D,
)


def can_fold(layer: Layer, norm: Layer | None, rank: int) -> bool:
    """Whether ``norm`` applied to the output (of ``rank`` dimensions) of ``layer`` folds."""
    return (
        isinstance(layer, (Conv2D, DepthwiseConv2D))
        and layer.activation is activations.linear
        and type(norm) is BatchNormalization
        and norm.axis in (-1, rank - 1)
    )


def clip_bounds(layer: Layer | None) -> tuple[float, float] | None:
    """``(low, high)`` if ``layer`` is a ReLU that only clips (no slope, no threshold)."""
    if type(layer) is not ReLU or layer.negative_slope or layer.threshold:
        return None
    return 0.0, math.inf if layer.max_value is None else layer.max_value


def folds_padding(padding: Layer, layer: Layer) -> bool:
    """Whether ``padding``'s zeros fold into ``layer`` (a depthwise convolution reads padded
    input in place, without the padded copy)."""
    return type(padding) is ZeroPadding2D and type(layer) is DepthwiseConv2D


def call_folded(
    layer: Conv2D | DepthwiseConv2D,
    norm: BatchNormalization,
    x: Tensor,
    clip: tuple[float, float] | None = None,
    padding: ZeroPadding2D | None = None,
) -> Tensor:
    """``norm(layer(padding(x)))`` at inference as one convolution, clipped to ``clip`` if
    given."""
    weights = layer.folded_weights(*norm.inference_affine(x.dtype))
    if padding is None:
        return layer.call_folded(x, *weights, clip)
    return layer.call_folded(x, *weights, clip, pads=padding.padding)
