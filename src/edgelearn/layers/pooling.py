"""Pooling layers (NHWC).

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> el.layers.MaxPooling2D(2, strides=2)(np.zeros((1, 24, 24, 8), dtype=np.float32)).shape
    (1, 12, 12, 8)
"""

from __future__ import annotations

from typing import Any

from edgelearn.engine import functions as F
from edgelearn.engine import kernels
from edgelearn.layers.base import Layer, normalize_tuple, register
from edgelearn.layers.convolutional import check_data_format, check_padding


class _Pooling2D(Layer):
    samplewise = True
    _primitive: type[F.Function]

    def __init__(
        self,
        pool_size: int | tuple[int, int] = (2, 2),
        strides: int | tuple[int, int] | None = None,
        padding: str = "valid",
        data_format: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        layer = type(self).__name__
        self.pool_size = normalize_tuple(pool_size, 2, "pool_size", layer)
        self.strides = normalize_tuple(
            self.pool_size if strides is None else strides, 2, "strides", layer
        )
        self.padding = check_padding(layer, padding)
        self.data_format = check_data_format(layer, data_format)

    def check_input_shape(self, input_shape):
        if len(input_shape) != 4:
            raise self.input_error("4-D input (batch, height, width, channels)", input_shape)
        if self.padding == "valid" and any(
            size is not None and size < k for size, k in zip(input_shape[1:3], self.pool_size)
        ):
            raise self.input_error(
                f"height and width of at least {self.pool_size} with padding='valid'", input_shape
            )

    def call(self, inputs, training=False):
        return self._primitive.apply(
            inputs, pool_size=self.pool_size, strides=self.strides, padding=self.padding
        )

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        out = [
            None if size is None else kernels.output_length(size, k, s, self.padding)
            for size, k, s in zip((h, w), self.pool_size, self.strides)
        ]
        return (n, out[0], out[1], c)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "data_format": self.data_format,
        }


@register
class MaxPooling2D(_Pooling2D):
    """Maximum over each window; ties send the gradient to the first maximum, like TensorFlow."""

    _primitive = F.MaxPool2D


@register
class AveragePooling2D(_Pooling2D):
    """Mean over each window; with padding='same' the padded pixels are not counted."""

    _primitive = F.AvgPool2D


class _GlobalPooling2D(Layer):
    """Reduces height and width: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with keepdims."""

    samplewise = True

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = check_data_format(type(self).__name__, data_format)
        self.keepdims = bool(keepdims)

    def check_input_shape(self, input_shape):
        if len(input_shape) != 4:
            raise self.input_error("4-D input (batch, height, width, channels)", input_shape)

    def compute_output_shape(self, input_shape):
        n, _, _, c = input_shape
        return (n, 1, 1, c) if self.keepdims else (n, c)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


@register
class GlobalAveragePooling2D(_GlobalPooling2D):
    """Mean over height and width: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with keepdims."""

    def call(self, inputs, training=False):
        return F.Mean.apply(inputs, axis=(1, 2), keepdims=self.keepdims)


@register
class GlobalMaxPooling2D(_GlobalPooling2D):
    """Maximum over height and width: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with keepdims.

    The gradient goes to the first maximum of each channel in row-major order. (TensorFlow splits
    it between tied maxima and TF.js gives it to each of them; ties are rare in real data.)

    Example:
        >>> import numpy as np
        >>> import edgelearn as el
        >>> x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
        >>> el.layers.GlobalMaxPooling2D()(x).numpy()
        array([[6., 7.]], dtype=float32)
    """

    def call(self, inputs, training=False):
        return F.GlobalMaxPool.apply(inputs, keepdims=self.keepdims)
