"""Layers that change the spatial size of NHWC images: ZeroPadding2D and UpSampling2D.

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> x = np.zeros((1, 4, 4, 3), dtype=np.float32)
    >>> el.layers.ZeroPadding2D(((1, 2), (0, 1)))(x).shape, el.layers.UpSampling2D(2)(x).shape
    ((1, 7, 5, 3), (1, 8, 8, 3))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgelearn.engine import functions as F
from edgelearn.layers.base import Layer, normalize_tuple, register
from edgelearn.layers.convolutional import check_data_format


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and value >= 0


def _padding_pairs(padding: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """``p``, ``(ph, pw)`` or ``((top, bottom), (left, right))`` -> the last form."""
    if _is_count(padding):
        return (int(padding),) * 2, (int(padding),) * 2
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        if all(_is_count(p) for p in padding):
            return (int(padding[0]),) * 2, (int(padding[1]),) * 2
        pairs = all(isinstance(p, (tuple, list)) and len(p) == 2 for p in padding)
        if pairs and all(_is_count(p) for pair in padding for p in pair):
            (top, bottom), (left, right) = padding
            return (int(top), int(bottom)), (int(left), int(right))
    raise ValueError(
        "ZeroPadding2D expects padding as a non-negative int, a tuple of 2 (height, width) or a "
        f"tuple of 2 tuples ((top, bottom), (left, right)). Received: padding={padding!r}"
    )


class _ImageLayer(Layer):
    """4-D NHWC inputs only."""

    samplewise = True

    def check_input_shape(self, input_shape):
        if len(input_shape) != 4:
            raise self.input_error("4-D input (batch, height, width, channels)", input_shape)


@register
class ZeroPadding2D(_ImageLayer):
    """Adds rows and columns of zeros around each image.

    Example:
        >>> import numpy as np
        >>> import edgelearn as el
        >>> el.layers.ZeroPadding2D(1)(np.ones((1, 1, 1, 1), dtype=np.float32)).numpy()[0, :, :, 0]
        array([[0., 0., 0.],
               [0., 1., 0.],
               [0., 0., 0.]], dtype=float32)
    """

    def __init__(self, padding: Any = (1, 1), data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.padding = _padding_pairs(padding)
        self.data_format = check_data_format("ZeroPadding2D", data_format)

    def call(self, inputs, training=False):
        return F.Pad2D.apply(inputs, padding=self.padding)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        (top, bottom), (left, right) = self.padding
        return (
            n,
            None if h is None else h + top + bottom,
            None if w is None else w + left + right,
            c,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "padding": [list(self.padding[0]), list(self.padding[1])],
            "data_format": self.data_format,
        }


@register
class UpSampling2D(_ImageLayer):
    """Scales height and width by the integer factors ``size``.

    'nearest' repeats each pixel. 'bilinear' is TF.js's UpSampling2D exactly: output pixel r
    interpolates the input at ``r / size`` (TF 1's ``align_corners=False`` without half-pixel
    centres), so the last rows and columns repeat the edge. Keras 3 samples at
    ``(r + 0.5) / size - 0.5`` instead; bilinear outputs of the two differ.

    Example:
        >>> import numpy as np
        >>> import edgelearn as el
        >>> x = np.array([0.0, 2.0], dtype=np.float32).reshape(1, 1, 2, 1)
        >>> el.layers.UpSampling2D((1, 2), interpolation="bilinear")(x).numpy().ravel()
        array([0., 1., 2., 2.], dtype=float32)
    """

    def __init__(
        self,
        size: int | tuple[int, int] = (2, 2),
        data_format: str | None = None,
        interpolation: str = "nearest",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.size = normalize_tuple(size, 2, "size", "UpSampling2D")
        self.data_format = check_data_format("UpSampling2D", data_format)
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(
                "UpSampling2D supports interpolation 'nearest' or 'bilinear'. "
                f"Received: interpolation={interpolation!r}"
            )
        self.interpolation = interpolation

    def call(self, inputs, training=False):
        return F.UpSampling2D.apply(inputs, size=self.size, interpolation=self.interpolation)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        sh, sw = self.size
        return (n, None if h is None else h * sh, None if w is None else w * sw, c)

    def get_config(self):
        return {
            **super().get_config(),
            "size": list(self.size),
            "data_format": self.data_format,
            "interpolation": self.interpolation,
        }
